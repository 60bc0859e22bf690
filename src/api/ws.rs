//! One WebSocket signalling session per connection.
//!
//! The session task reads requests, forwards them to the peer's
//! [`RoomActor`], writes one response per request, and relays the room's
//! events. Requests are handled one at a time, in order. Any exit (close
//! frame, error, idle timeout, being removed from the room) leaves the room,
//! which closes every resource the peer owned.

use std::time::{Duration, Instant};

use actix::{Addr, MailboxError};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::ApiState;
use crate::ids::{PeerId, RoomId};
use crate::room::{
    ActOnProducer, ConnectTransport, Consume, CreateTransport, GetRtpCapabilities, Join, Leave,
    Produce, ProducerAction, RoomActor, RoomError, Toggle, ToggleConsumer,
};
use crate::server::GetOrCreateRoom;
use crate::signalling::{
    error_response, event_message, ok_response, parse_request, validate_join, ErrorCode, Event,
    JoinRequest, Request, SignalError,
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

struct Joined {
    room: Addr<RoomActor>,
    peer_id: PeerId,
    events: mpsc::Receiver<Event>,
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

fn mailbox(_e: MailboxError) -> SignalError {
    SignalError::new(ErrorCode::UnknownRoom, "the room is closed")
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
                            if session.text(event_message(&event)).await.is_err() { break None; }
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
        if let Some(j) = self.joined.take() {
            j.room.do_send(Leave { peer_id: j.peer_id });
        }
        let _ = session.close(close).await;
        tracing::debug!("session ended");
    }

    async fn handle_text(&mut self, text: &str) -> Outcome {
        let (id, request) = match parse_request(text) {
            Ok(v) => v,
            Err(f) => return Outcome::Reply(error_response(f.id, &f.error)),
        };
        let method = request.method();
        let leave = matches!(request, Request::Leave);
        let result = self.dispatch(request).await;
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

    async fn join(&mut self, join: JoinRequest) -> Result<Value, SignalError> {
        let limits = &self.state.config.signalling;
        validate_join(
            &join,
            limits.max_room_name_chars,
            limits.max_display_name_chars,
        )?;
        let room_id = RoomId::new(join.room);
        // A room that is closing as we join is replaced by a fresh one.
        for _ in 0..5 {
            let room = self
                .state
                .server
                .send(GetOrCreateRoom {
                    room: room_id.clone(),
                })
                .await
                .map_err(|_| SignalError::new(ErrorCode::Internal, "node actor unavailable"))?
                .map_err(|e| SignalError::new(ErrorCode::Capacity, e.to_string()))?;
            let (tx, rx) = mpsc::channel(self.state.config.signalling.max_pending_events);
            match room
                .send(Join {
                    display_name: join.display_name.clone(),
                    events: tx,
                })
                .await
            {
                Ok(Ok(reply)) => {
                    self.span.record("room", room_id.as_str());
                    self.span
                        .record("peer", tracing::field::display(reply.peer_id));
                    self.joined = Some(Joined {
                        room,
                        peer_id: reply.peer_id,
                        events: rx,
                    });
                    return Ok(to_value(&reply));
                }
                Ok(Err(RoomError::RoomClosed)) | Err(_) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(Err(e)) => return Err(e.to_signal()),
            }
        }
        Err(SignalError::new(
            ErrorCode::Internal,
            "the room kept closing while joining; try again",
        ))
    }

    async fn dispatch(&mut self, mut request: Request) -> Result<Value, SignalError> {
        let already = || {
            SignalError::new(
                ErrorCode::AlreadyJoined,
                "this socket already joined a room",
            )
        };
        let joined = self.joined.as_ref().map(|j| (j.room.clone(), j.peer_id));
        let (room, peer_id) = match (request, joined) {
            (Request::Join(j), None) => return self.join(j).await,
            (Request::Join(_), Some(_)) => return Err(already()),
            (_, None) => return Err(SignalError::new(ErrorCode::NotJoined, "send `join` first")),
            (r, Some(joined)) => {
                request = r;
                joined
            }
        };
        let producer = |producer_id, action| ActOnProducer {
            peer_id,
            producer_id,
            action,
        };
        let consumer = |consumer_id, action| ToggleConsumer {
            peer_id,
            consumer_id,
            action,
        };
        match request {
            Request::Join(_) => Err(already()),
            Request::GetRouterRtpCapabilities => {
                let caps = ask(&room, GetRtpCapabilities).await?;
                Ok(json!({ "routerRtpCapabilities": caps }))
            }
            Request::CreateWebRtcTransport(r) => {
                ask(
                    &room,
                    CreateTransport {
                        peer_id,
                        direction: r.direction,
                    },
                )
                .await
            }
            Request::ConnectWebRtcTransport(r) => {
                let msg = ConnectTransport {
                    peer_id,
                    transport_id: r.transport_id,
                    dtls_parameters: r.dtls_parameters,
                };
                ask(&room, msg).await
            }
            Request::Produce(r) => {
                let msg = Produce {
                    peer_id,
                    transport_id: r.transport_id,
                    kind: r.kind,
                    rtp_parameters: r.rtp_parameters,
                };
                ask(&room, msg).await
            }
            Request::Consume(r) => {
                let msg = Consume {
                    peer_id,
                    transport_id: r.transport_id,
                    producer_id: r.producer_id,
                    rtp_capabilities: r.rtp_capabilities,
                };
                ask(&room, msg).await
            }
            Request::ResumeConsumer(r) => ask(&room, consumer(r.consumer_id, Toggle::Resume)).await,
            Request::PauseConsumer(r) => ask(&room, consumer(r.consumer_id, Toggle::Pause)).await,
            Request::PauseProducer(r) => {
                ask(&room, producer(r.producer_id, ProducerAction::Pause)).await
            }
            Request::ResumeProducer(r) => {
                ask(&room, producer(r.producer_id, ProducerAction::Resume)).await
            }
            Request::CloseProducer(r) => {
                ask(&room, producer(r.producer_id, ProducerAction::Close)).await
            }
            Request::Leave => {
                if let Some(j) = self.joined.take() {
                    j.room.do_send(Leave { peer_id: j.peer_id });
                }
                Ok(json!({}))
            }
        }
    }
}

/// Sends one request to the room and renders its reply as response data
/// (`{}` for requests that return nothing).
async fn ask<M, T>(room: &Addr<RoomActor>, msg: M) -> Result<Value, SignalError>
where
    M: actix::Message<Result = Result<T, RoomError>> + Send + 'static,
    T: serde::Serialize + Send + 'static,
    RoomActor: actix::Handler<M>,
{
    let reply = room
        .send(msg)
        .await
        .map_err(mailbox)?
        .map_err(|e| e.to_signal())?;
    match to_value(&reply) {
        Value::Null => Ok(json!({})),
        v => Ok(v),
    }
}
