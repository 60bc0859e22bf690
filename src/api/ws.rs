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

use super::ApiState;
use crate::room::{self, ProducerAction, Toggle};
use crate::sfu::{ConsumerOptions, Participant, ProducerOptions, Sfu, SfuError};
use crate::signalling::{
    error_response, event_message, ok_response, parse_request, validate_join, ConsumeReply,
    ErrorCode, Event, JoinReply, JoinRequest, PlainTransportReply, ProduceReply, Request,
    SignalError, TransportReply,
};

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
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let max = state.config.signalling.max_message_bytes;
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
        SignallingSession::new(state.get_ref().clone(), span.clone())
            .run(session, stream)
            .instrument(span),
    );
    Ok(response)
}

/// The session's place in a room; dropping it leaves the room.
struct Joined {
    participant: Participant,
    events: mpsc::Receiver<room::Event>,
}

struct SignallingSession {
    state: ApiState,
    span: tracing::Span,
    joined: Option<Joined>,
}

enum Outcome {
    Reply(String),
    ReplyAndClose(String),
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl SignallingSession {
    fn new(state: ApiState, span: tracing::Span) -> Self {
        Self {
            state,
            span,
            joined: None,
        }
    }

    async fn run(mut self, mut session: Session, mut stream: AggregatedMessageStream) {
        let mut last_seen = Instant::now();
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let close: Option<CloseReason> = loop {
            let next_event = async {
                match self.joined.as_mut() {
                    Some(j) => j.events.recv().await,
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
                        Some(event) => {
                            if session.text(event_message(&Event::from(event))).await.is_err() { break None; }
                        }
                        None => {
                            // The room dropped us: it closed, or we were too slow.
                            self.joined = None;
                            break Some(CloseReason { code: CloseCode::Away, description: Some("removed from the room".into()) });
                        }
                    }
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
        let (id, request) = match parse_request(text) {
            Ok(v) => v,
            Err(f) => {
                self.count("unknown", f.error.code);
                return Outcome::Reply(error_response(f.id, &f.error));
            }
        };
        let method = request.method();
        let leave = matches!(request, Request::Leave);
        let result = self.dispatch(request).await;
        match &result {
            Ok(_) => self.state.metrics.request(method, "ok"),
            Err(e) => self.count(method, e.code),
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
        let code = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.state.metrics.request(method, &code);
    }

    async fn join(&mut self, join: JoinRequest) -> Result<Value, SignalError> {
        let limits = &self.state.config.signalling;
        validate_join(
            &join,
            limits.max_room_name_chars,
            limits.max_display_name_chars,
        )?;
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
        self.joined = Some(Joined {
            participant,
            events,
        });
        Ok(reply)
    }

    async fn dispatch(&mut self, mut request: Request) -> Result<Value, SignalError> {
        let already = || {
            SignalError::new(
                ErrorCode::AlreadyJoined,
                "this socket already joined a room",
            )
        };
        let joined = self.joined.as_ref().map(|j| j.participant.clone());
        let p = match (request, joined) {
            (Request::Join(j), None) => return self.join(j).await,
            (Request::Join(_), Some(_)) => return Err(already()),
            (_, None) => return Err(SignalError::new(ErrorCode::NotJoined, "send `join` first")),
            (r, Some(joined)) => {
                request = r;
                joined
            }
        };
        match request {
            Request::Join(_) => Err(already()),
            Request::GetRouterRtpCapabilities => {
                let caps = p.rtp_capabilities().await.map_err(signal)?;
                Ok(json!({ "routerRtpCapabilities": caps }))
            }
            Request::CreateWebRtcTransport(r) => {
                let t = p
                    .create_webrtc_transport(r.direction)
                    .await
                    .map_err(signal)?;
                Ok(to_value(&TransportReply {
                    id: t.id(),
                    ice_parameters: t.ice_parameters().clone(),
                    ice_candidates: t.ice_candidates().clone(),
                    dtls_parameters: t.dtls_parameters(),
                }))
            }
            Request::ConnectWebRtcTransport(r) => {
                done(p.connect_transport(r.transport_id, r.dtls_parameters).await)
            }
            Request::CreatePlainTransport(r) => {
                let t = p
                    .create_plain_transport(r.direction, r.comedia)
                    .await
                    .map_err(signal)?;
                let (ip, port) = t.local();
                Ok(to_value(&PlainTransportReply {
                    id: t.id(),
                    ip: ip.to_owned(),
                    port,
                }))
            }
            Request::ConnectPlainTransport(r) => done(
                p.connect_plain_transport(r.transport_id, std::net::SocketAddr::new(r.ip, r.port))
                    .await,
            ),
            Request::Produce(r) => {
                let options = ProducerOptions::new(r.kind, r.rtp_parameters);
                let producer = p.produce(r.transport_id, options).await.map_err(signal)?;
                Ok(to_value(&ProduceReply { id: producer.id() }))
            }
            Request::Consume(r) => {
                let options = ConsumerOptions::new(r.producer_id, r.rtp_capabilities);
                let c = p.consume(r.transport_id, options).await.map_err(signal)?;
                Ok(to_value(&ConsumeReply {
                    id: c.id(),
                    producer_id: c.producer_id(),
                    kind: c.kind(),
                    rtp_parameters: c.rtp_parameters().clone(),
                    producer_paused: c.producer_paused(),
                }))
            }
            Request::ResumeConsumer(r) => {
                done(p.toggle_consumer(r.consumer_id, Toggle::Resume).await)
            }
            Request::PauseConsumer(r) => {
                done(p.toggle_consumer(r.consumer_id, Toggle::Pause).await)
            }
            Request::PauseProducer(r) => done(
                p.act_on_producer(r.producer_id, ProducerAction::Pause)
                    .await,
            ),
            Request::ResumeProducer(r) => done(
                p.act_on_producer(r.producer_id, ProducerAction::Resume)
                    .await,
            ),
            Request::CloseProducer(r) => done(
                p.act_on_producer(r.producer_id, ProducerAction::Close)
                    .await,
            ),
            Request::Leave => {
                // Dropping the session's participant leaves the room.
                drop(p);
                self.joined = None;
                Ok(json!({}))
            }
        }
    }
}

fn signal(e: SfuError) -> SignalError {
    e.to_signal()
}

/// The response data of a request that returns nothing.
fn done(r: Result<(), SfuError>) -> Result<Value, SignalError> {
    r.map(|()| json!({})).map_err(signal)
}
