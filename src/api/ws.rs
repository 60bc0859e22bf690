//! One WebSocket signalling session per connection.
//!
//! The session task reads requests, forwards them to the peer's
//! [`RoomActor`](crate::room::RoomActor) through the embedding facade (the
//! session holds one [`Participant`]), writes one response per request, and
//! relays the room's events. Requests are handled one at a time, in order.
//! Any exit (close frame, error, idle timeout, being removed from the room)
//! drops the participant, which leaves the room and closes every resource
//! the peer owned.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::frame_guard::FrameGuard;
use super::guard::{origin_allowed, Bucket, Refused, Slot};
use super::requests::on_participant;
use super::ApiState;
use crate::registry::RoomPeerNodes;
use crate::room;
use crate::sfu::{Participant, Sfu};
use crate::signalling::{
    error_response, event_message, ok_response, parse_request, validate_join, ErrorCode, Event,
    JoinReply, JoinRequest, Request, SignalError,
};
use crate::spill::{join_elsewhere, redirect_url, RemoteSession, SpillOutcome};

/// How often the server pings an idle client.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent for this long is gone.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /ws`: upgrades and spawns the session.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, actix_web::Error> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = header(actix_web::http::header::HOST);
    let origin = header(actix_web::http::header::ORIGIN);
    if !origin_allowed(origin, host, &state.config.http.allowed_origins) {
        let refused = Refused::Origin(origin.unwrap_or_default().chars().take(200).collect());
        tracing::info!(reason = %refused, "websocket refused");
        state.metrics.request("connect", "forbidden");
        return Ok(HttpResponse::Forbidden().body(format!("{refused}\n")));
    }
    let limits = &state.config.limits;
    let ip = req
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let slot = match state
        .connections
        .admit(ip, limits.connections_per_ip, limits.connections)
    {
        Ok(slot) => slot,
        Err(refused) => {
            tracing::info!(reason = %refused, "websocket refused");
            state.metrics.request("connect", "limit_exceeded");
            return Ok(HttpResponse::ServiceUnavailable().body(format!("{refused}\n")));
        }
    };
    let url_token = super::http::query_param(&req, "token");
    let max = state.config.signalling.max_message_bytes;
    // Frames are refused at their header when they declare more than
    // `max` (see `frame_guard`): nothing of them is buffered.
    let (guard, oversized) = FrameGuard::new(body.into_inner(), max);
    let mut guarded = guard.into_payload();
    let body = <web::Payload as actix_web::FromRequest>::from_request(&req, &mut guarded).await?;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let span = tracing::info_span!(
        "session",
        node = %state.config.node.name,
        room = tracing::field::Empty,
        peer = tracing::field::Empty,
        remote = ?req.peer_addr(),
    );
    actix_web::rt::spawn(
        SignallingSession::new(state.get_ref().clone(), span.clone(), slot, url_token)
            .run(session, stream, oversized)
            .instrument(span),
    );
    Ok(response)
}

/// The session's place in a room; dropping it leaves the room.
enum Joined {
    /// On this node's workers.
    Local {
        participant: Participant,
        events: mpsc::Receiver<room::Event>,
    },
    /// On another node's, this node full (spill-over, [`crate::spill`]).
    Remote(RemoteSession),
}

impl Joined {
    /// The next event frame for the client; `None` once the room dropped
    /// the participant.
    async fn next_event(&mut self) -> Option<String> {
        match self {
            Joined::Local { events, .. } => {
                events.recv().await.map(|e| event_message(&Event::from(e)))
            }
            Joined::Remote(session) => session.next_event().await,
        }
    }
}

/// An error code as the wire spells it (`bad_request`, …).
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

struct SignallingSession {
    state: ApiState,
    span: tracing::Span,
    joined: Option<Joined>,
    /// The token given on the URL (`?token=`), if any.
    url_token: Option<String>,
    /// What the joined participant's token grants.
    grants: Option<crate::auth::Grants>,
    /// Its requests' token bucket (`limits.requests_per_second`).
    bucket: Bucket,
    /// Its place among the node's connections, freed when it ends.
    _slot: Slot,
}

enum Outcome {
    Reply(String),
    ReplyAndClose(String),
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl SignallingSession {
    fn new(state: ApiState, span: tracing::Span, slot: Slot, url_token: Option<String>) -> Self {
        let limits = &state.config.limits;
        let bucket = Bucket::new(
            limits.requests_per_second,
            limits.request_burst,
            Instant::now(),
        );
        Self {
            state,
            span,
            joined: None,
            url_token,
            grants: None,
            bucket,
            _slot: slot,
        }
    }

    async fn run(
        mut self,
        mut session: Session,
        mut stream: AggregatedMessageStream,
        oversized: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let mut last_seen = Instant::now();
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let join_by = tokio::time::Instant::now()
            + Duration::from_millis(self.state.config.limits.join_timeout_ms);
        let close: Option<CloseReason> = loop {
            let joined = self.joined.is_some();
            let join_deadline = async move {
                if joined {
                    futures::future::pending::<()>().await;
                }
                tokio::time::sleep_until(join_by).await;
            };
            let next_event = async {
                match self.joined.as_mut() {
                    Some(j) => j.next_event().await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.recv() => {
                    last_seen = Instant::now();
                    match msg {
                        None => break None,
                        Some(Err(actix_ws::ProtocolError::Overflow)) => {
                            tracing::warn!("message over the size limit: closing");
                            break Some(CloseReason {
                                code: CloseCode::Size,
                                description: Some(format!(
                                    "message larger than {} bytes",
                                    self.state.config.signalling.max_message_bytes
                                )),
                            });
                        }
                        Some(Err(_)) if FrameGuard::tripped(&oversized) => {
                            break Some(CloseReason {
                                code: CloseCode::Size,
                                description: Some(format!(
                                    "frame larger than {} bytes",
                                    self.state.config.signalling.max_message_bytes
                                )),
                            });
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "websocket protocol error: closing");
                            break Some(CloseReason { code: CloseCode::Protocol, description: Some(e.to_string()) });
                        }
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            match self.handle_text(&text).await {
                                Outcome::Reply(r) => {
                                    if session.text(r).await.is_err() { break None; }
                                }
                                Outcome::ReplyAndClose(r) => {
                                    let _ = session.text(r).await;
                                    break Some(CloseReason { code: CloseCode::Normal, description: Some("left".into()) });
                                }
                            }
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            let r = error_response(None, &SignalError::new(ErrorCode::BadRequest, "binary frames are not accepted; send JSON text"));
                            if session.text(r).await.is_err() { break None; }
                        }
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() { break None; }
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        Some(Ok(AggregatedMessage::Close(_))) => break None,
                    }
                }
                event = next_event => {
                    match event {
                        Some(frame) => {
                            if session.text(frame).await.is_err() { break None; }
                        }
                        None => {
                            // The room dropped us: it closed, or we were too slow.
                            self.joined = None;
                            break Some(CloseReason { code: CloseCode::Away, description: Some("removed from the room".into()) });
                        }
                    }
                }
                _ = join_deadline, if !joined => {
                    tracing::info!("no join in time: closing");
                    break Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some("limit `limits.join_timeout_ms` reached without a join".into()),
                    });
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() > CLIENT_TIMEOUT {
                        tracing::info!("client silent for too long: closing");
                        break Some(CloseReason { code: CloseCode::Away, description: Some("timeout".into()) });
                    }
                    if session.ping(b"").await.is_err() { break None; }
                }
            }
        };
        // Leaves the room, if still in it.
        self.joined = None;
        let _ = session.close(close).await;
        tracing::debug!("session ended");
    }

    async fn handle_text(&mut self, text: &str) -> Outcome {
        if !self.bucket.take(Instant::now()) {
            let limits = &self.state.config.limits;
            let e = SignalError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "limit `limits.requests_per_second` ({} per second, bursts of {}) reached",
                    limits.requests_per_second, limits.request_burst
                ),
            );
            let id = parse_request(text).map(|(id, _)| id).ok();
            self.count("unknown", e.code);
            return Outcome::Reply(error_response(id, &e));
        }
        let (id, request) = match parse_request(text) {
            Ok(v) => v,
            Err(f) => {
                self.count(f.method.unwrap_or("unknown"), f.error.code);
                if f.method == Some("join") {
                    self.tallies().join_refused(&code_name(f.error.code));
                }
                return Outcome::Reply(error_response(f.id, &f.error));
            }
        };
        let method = request.method();
        let leave = matches!(request, Request::Leave);
        let join = matches!(request, Request::Join(_));
        let result = self.dispatch(request, text).await;
        match &result {
            Ok(_) => self.state.metrics.request(method, "ok"),
            Err(e) => self.count(method, e.code),
        }
        if join {
            match &result {
                Ok(_) if matches!(self.joined, Some(Joined::Remote(_))) => {
                    self.tallies().join_spilled();
                }
                Ok(_) => {}
                Err(e) => self.tallies().join_refused(&code_name(e.code)),
            }
        }
        match result {
            Ok(data) => {
                let r = ok_response(id, &data);
                if leave {
                    Outcome::ReplyAndClose(r)
                } else {
                    Outcome::Reply(r)
                }
            }
            Err(e) => {
                tracing::debug!(method, code = ?e.code, message = %e.message, "request failed");
                Outcome::Reply(error_response(Some(id), &e))
            }
        }
    }

    /// Counts a failed request by its error code.
    fn count(&self, method: &str, code: ErrorCode) {
        self.state.metrics.request(method, &code_name(code));
    }

    /// The node's running totals (joins refused and spilled).
    fn tallies(&self) -> &crate::metrics::Tallies {
        &self.state.server.env().tallies
    }

    async fn join(&mut self, mut join: JoinRequest) -> Result<Value, SignalError> {
        let limits = &self.state.config.signalling;
        validate_join(
            &join,
            limits.max_room_name_chars,
            limits.max_display_name_chars,
        )?;
        // The token first: nothing is made for a join it does not admit.
        let token = join.token.take().or_else(|| self.url_token.take());
        let claims = token
            .ok_or(crate::auth::TokenError::Missing)
            .and_then(|t| self.state.auth.verify(&t, &join.room))
            .map_err(|e| {
                tracing::info!(room = %join.room, reason = %e, "join refused: token");
                SignalError::new(ErrorCode::Unauthorized, e.to_string())
            })?;
        if !claims.grants.rename {
            join.display_name = claims
                .sub
                .chars()
                .take(limits.max_display_name_chars)
                .collect();
        }
        self.grants = Some(claims.grants);
        let env = self.state.server.env();
        if let Some(cluster) = &self.state.cluster {
            if env.draining() {
                let url = redirect_url(cluster.node()).await;
                return Err(SignalError::new(
                    ErrorCode::Draining,
                    "this node is draining: join through another node",
                )
                .with_url(url));
            }
            if env.workers.headroom(&env.config.placement).full {
                let capacity = limits.max_pending_events;
                let mut prefer = self
                    .state
                    .server
                    .rooms()
                    .send(RoomPeerNodes {
                        room: crate::ids::RoomId::new(join.room.clone()),
                    })
                    .await
                    .unwrap_or_default();
                // Peers this node just spilled the room to serve it too,
                // before the room's map says so.
                if let Some(recent) = self.state.recent_spills.lock().get(&join.room) {
                    for (host, at) in recent {
                        if at.elapsed() < super::RECENT_SPILL && !prefer.contains(host) {
                            prefer.push(host.clone());
                        }
                    }
                }
                let placed =
                    join_elsewhere(cluster.node(), cluster.sessions(), &join, capacity, &prefer)
                        .await;
                match placed {
                    SpillOutcome::Placed {
                        session,
                        join: reply,
                    } => {
                        {
                            let mut recent = self.state.recent_spills.lock();
                            recent.retain(|_, hosts| {
                                hosts.retain(|(_, at)| at.elapsed() < super::RECENT_SPILL);
                                !hosts.is_empty()
                            });
                            let hosts = recent.entry(join.room.clone()).or_default();
                            hosts.retain(|(h, _)| h != session.host());
                            hosts.push((session.host().clone(), std::time::Instant::now()));
                        }
                        tracing::info!(room = %join.room, media = %session.host(), "node full: participant served by a peer");
                        self.span.record("room", join.room.as_str());
                        self.joined = Some(Joined::Remote(session));
                        return Ok(reply);
                    }
                    SpillOutcome::Failed(e) => return Err(e),
                    SpillOutcome::Stay => {
                        self.tallies().join_spill_missed();
                        tracing::info!(room = %join.room, "node full and no peer admits: serving the participant here");
                    }
                }
            }
        }
        let sfu = Sfu::new(self.state.server.clone(), &self.state.config);
        let participant = async { sfu.room(join.room).await?.join(join.display_name).await }
            .await
            .map_err(|e| e.to_signal())?;
        let events = participant
            .take_events()
            .expect("a new participant's events are untaken");
        self.span.record("room", participant.room_id().as_str());
        self.span
            .record("peer", tracing::field::display(participant.id()));
        let reply = to_value(&JoinReply::from(participant.join_info()));
        self.joined = Some(Joined::Local {
            participant,
            events,
        });
        Ok(reply)
    }

    async fn dispatch(&mut self, request: Request, frame: &str) -> Result<Value, SignalError> {
        let already = || {
            SignalError::new(
                ErrorCode::AlreadyJoined,
                "this socket already joined a room",
            )
        };
        let leave = matches!(request, Request::Leave);
        // Outside the token's grants: refused before it reaches a room.
        if let Some(Err(reason)) = self.grants.as_ref().map(|g| g.check(&request)) {
            return Err(SignalError::new(ErrorCode::Forbidden, reason));
        }
        match (request, self.joined.as_ref()) {
            (Request::Join(j), None) => self.join(j).await,
            (Request::Join(_), Some(_)) => Err(already()),
            (_, None) => Err(SignalError::new(ErrorCode::NotJoined, "send `join` first")),
            (_, Some(Joined::Remote(session))) => {
                let reply = session.request(frame).await;
                if leave {
                    self.joined = None;
                }
                reply
            }
            (Request::Leave, Some(Joined::Local { .. })) => {
                // Dropping the session's participant leaves the room.
                self.joined = None;
                Ok(json!({}))
            }
            (request, Some(Joined::Local { participant, .. })) => {
                let p = participant.clone();
                on_participant(&p, request).await
            }
        }
    }
}
