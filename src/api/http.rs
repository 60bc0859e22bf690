//! Plain HTTP routes: health, status and the static demo.

use actix_web::{web, HttpResponse};

use super::ApiState;

/// `GET /healthz`
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// `GET /api/status`
pub async fn status(state: web::Data<ApiState>) -> HttpResponse {
    match state.server.status().await {
        Ok(status) => {
            let mut body = serde_json::to_value(&status).unwrap_or_default();
            if let (Some(cluster), Some(obj)) = (&state.cluster, body.as_object_mut()) {
                obj.insert(
                    "cluster".into(),
                    serde_json::json!({
                        "node": cluster.node().id().to_string(),
                        "addr": cluster.node().addr(),
                        "members": cluster.members(),
                    }),
                );
            }
            HttpResponse::Ok().json(body)
        }
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("node actor unavailable: {e}")),
    }
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

/// Registers the routes on an actix-web app.
pub fn configure(cfg: &mut web::ServiceConfig, state: &ApiState) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/api/status", web::get().to(status))
        .route("/metrics", web::get().to(super::metrics::metrics))
        .route("/ws", web::get().to(super::ws::upgrade));
    let dir = &state.config.http.static_dir;
    if dir.join("index.html").is_file() {
        cfg.service(actix_files::Files::new("/", dir).index_file("index.html"));
    } else {
        cfg.route("/", web::get().to(demo_missing));
    }
}
