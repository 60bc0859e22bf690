//! Plain HTTP routes: health, status, the cluster's signalling URLs, drain,
//! the dashboard and the static demo.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::ApiState;
use crate::server::NodeGone;

/// `GET /healthz`
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The node's status as `/api/status` serves it (and
/// `/api/status/stream` pushes it): [`Server::status`](crate::server::Server::status),
/// with the cluster's members and the drain state.
pub async fn status_json(state: &ApiState) -> Result<serde_json::Value, NodeGone> {
    let status = state.server.status().await?;
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        if let Some(cluster) = &state.cluster {
            obj.insert(
                "cluster".into(),
                serde_json::json!({
                    "node": cluster.node().id().to_string(),
                    "addr": cluster.node().addr(),
                    "members": cluster.members(),
                }),
            );
        }
        obj.insert("drain".into(), serde_json::json!(state.drain.state()));
        obj.insert("detail".into(), serde_json::json!(true));
    }
    Ok(body)
}

/// `GET /api/status`: the counts for anyone; the rooms, workers and
/// members for operators ([`is_operator`]). Any origin may read it (the
/// dashboard served by one node reads every node's, with `?token=`).
pub async fn status(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let operator = is_operator(&req, &state);
    match status_json(&state).await {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(if operator { body } else { public_status(body) }),
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("node actor unavailable: {e}")),
    }
}

/// How long `GET /api/nodes` waits for each member's answer.
const NODES_ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// `GET /api/nodes`: where a client may join, as signalling URLs: this
/// node's first (unless it is draining or its URL is unknown), then those
/// of the other members that are alive and not draining, asked at once
/// (see [`Cluster::peer_signalling_urls`](crate::cluster::Cluster::peer_signalling_urls)).
/// The demo page keeps the list to rejoin through another node when its
/// own goes away.
pub async fn nodes(state: web::Data<ApiState>) -> HttpResponse {
    let own = state.config.http.signalling_url();
    let mut nodes: Vec<String> = own
        .iter()
        .filter(|_| !state.server.env().draining())
        .cloned()
        .collect();
    if let Some(cluster) = &state.cluster {
        for (_, url) in cluster.peer_signalling_urls(NODES_ASK_TIMEOUT).await {
            if !nodes.contains(&url) {
                nodes.push(url);
            }
        }
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "node": state.config.node.name,
            "url": own,
            "nodes": nodes,
        }))
}

/// `POST /api/drain`: starts the node's graceful drain ([`crate::drain`]).
/// `GET /api/dev-token?room=R&identity=I[&grant=...]`: a token for anyone,
/// in `[auth] mode = "dev"` only (404 otherwise). Grants as
/// `mafalda token --grant` (publish and subscribe when none is given).
pub async fn dev_token(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if state.config.auth.mode != crate::config::AuthMode::Dev {
        return HttpResponse::NotFound().body("no dev tokens: [auth] mode is not \"dev\"\n");
    }
    let mut room = None;
    let mut identity = None;
    let mut grants = crate::auth::Grants::default();
    let mut any_grant = false;
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "room" => room = Some(v.into_owned()),
            "identity" => identity = Some(v.into_owned()),
            "grant" => {
                if let Err(e) = crate::auth::add_grant(&mut grants, &v) {
                    return HttpResponse::BadRequest().body(format!("{e}\n"));
                }
                any_grant = true;
            }
            _ => {}
        }
    }
    let limits = &state.config.signalling;
    let (Some(room), Some(identity)) = (room, identity) else {
        return HttpResponse::BadRequest().body("needs ?room=...&identity=...\n");
    };
    if room.is_empty()
        || identity.is_empty()
        || room.chars().count() > limits.max_room_name_chars
        || identity.chars().count() > limits.max_display_name_chars
    {
        return HttpResponse::BadRequest()
            .body("room and identity: non-empty, within the signalling limits\n");
    }
    if !any_grant {
        grants = crate::auth::Grants::participant();
    }
    let ttl = std::time::Duration::from_secs(state.config.auth.dev_token_ttl_s.max(1));
    match state.auth.issue(&room, &identity, ttl, grants) {
        Ok(token) => HttpResponse::Ok().json(serde_json::json!({
            "token": token,
            "room": room,
            "identity": identity,
            "expiresIn": ttl.as_secs(),
        })),
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

/// Operators only (see [`is_operator`]).
pub async fn drain(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if !is_operator(&req, &state) {
        return HttpResponse::Forbidden()
            .content_type("text/plain")
            .body("operator endpoint: present http.admin_token (Authorization: Bearer), or come from http.admin_networks\n");
    }
    let started = state.drain.start();
    HttpResponse::Accepted().json(serde_json::json!({
        "drain": state.drain.state(),
        "started": started,
        "deadlineMs": state.config.drain.deadline_ms,
    }))
}

/// The first value of query parameter `name`.
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether the client is an operator: it presents `http.admin_token`
/// (`Authorization: Bearer`, or `?token=`), or comes from one of
/// `http.admin_networks` (loopback by default).
pub fn is_operator(req: &HttpRequest, state: &ApiState) -> bool {
    let http = &state.config.http;
    if let Some(token) = &http.admin_token {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let query = query_param(req, "token");
        if [bearer, query]
            .iter()
            .flatten()
            .any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
        {
            return true;
        }
    }
    req.peer_addr()
        .is_some_and(|a| http.admin_networks.iter().any(|n| n.contains(a.ip())))
}

/// The part of a status that anyone may read: the node's counts, without
/// its rooms, workers and members.
pub fn public_status(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = body.as_object_mut() {
        for detail in ["workerDetails", "roomDetails", "cluster"] {
            obj.remove(detail);
        }
        obj.insert("detail".into(), serde_json::json!(false));
    }
    body
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /` when the demo has not been built.
pub async fn demo_missing(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain")
        .body(format!(
            "The browser demo is not built: {} does not exist. Run `make web`.\n",
            state.config.http.static_dir.display()
        ))
}

/// `GET /dashboard`: the cluster dashboard page, `dashboard.html` of the
/// bundled web pages (its script and style come from `/`).
pub async fn dashboard(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let path = state.config.http.static_dir.join("dashboard.html");
    match actix_files::NamedFile::open_async(&path).await {
        Ok(file) => file.into_response(&req),
        Err(_) => HttpResponse::NotFound()
            .content_type("text/plain")
            .body(format!(
                "The dashboard is not built: {} does not exist. Run `make web`.\n",
                path.display()
            )),
    }
}

/// Registers the routes on an actix-web app.
pub fn configure(cfg: &mut web::ServiceConfig, state: &ApiState) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/api/status", web::get().to(status))
        .route(
            "/api/status/stream",
            web::get().to(super::stream::status_stream),
        )
        .route("/api/nodes", web::get().to(nodes))
        .route("/api/dev-token", web::get().to(dev_token))
        .route("/api/drain", web::post().to(drain))
        .route("/metrics", web::get().to(super::metrics::metrics))
        .route("/ws", web::get().to(super::ws::upgrade))
        .route("/dashboard", web::get().to(dashboard));
    let dir = &state.config.http.static_dir;
    if dir.join("index.html").is_file() {
        cfg.service(actix_files::Files::new("/", dir).index_file("index.html"));
    } else {
        cfg.route("/", web::get().to(demo_missing));
    }
}
