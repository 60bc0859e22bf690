//! A minimal client of Mafalda's JSON signalling API, for loadgen: one
//! WebSocket per participant, plain RTP transports only.
//!
//! A reader task routes responses to their requests by id and drains events
//! (a client that stops reading is evicted by the node as too slow). A
//! participant that listens ([`SignallingPeer::join_listening`]) gets the
//! events, typed, on a channel that ends when the socket closes, fails, or
//! stays silent for [`SILENT_NODE`] (a node pings every 10 s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::events::{redirect_url, JoinReply, ServerEvent};
use super::media::{rtp_parameters, subscriber_rtp_capabilities, StreamSpec};
use super::target::{send_addr, TargetError};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening the WebSocket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A node that sends nothing at all (not even its pings, every 10 s) for
/// this long is taken for dead: the reader stops.
pub const SILENT_NODE: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// The receiving plain transport of a participant.
#[derive(Debug, Clone)]
struct RecvTransport {
    id: String,
    /// Where the node sends from (its announced address).
    media: SocketAddr,
}

/// A consumer made by [`SignallingPeer::consume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// The consumer's id.
    pub id: String,
    /// The SSRC its RTP arrives with.
    pub ssrc: u32,
}

/// A participant that joined and listens to its events.
#[derive(Debug)]
pub struct Listening {
    /// The session.
    pub peer: SignallingPeer,
    /// The room as the node knew it at the join.
    pub reply: JoinReply,
    /// Its events, in order; ends when the socket does.
    pub events: mpsc::UnboundedReceiver<ServerEvent>,
}

/// One participant connected over the signalling API.
pub struct SignallingPeer {
    sink: Sink,
    pending: Pending,
    next_id: u64,
    reader: tokio::task::JoinHandle<()>,
    recv_transport: Option<RecvTransport>,
}

impl std::fmt::Debug for SignallingPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignallingPeer")
            .field("next_id", &self.next_id)
            .field("recv_transport", &self.recv_transport)
            .finish_non_exhaustive()
    }
}

fn sig(e: impl std::fmt::Display) -> TargetError {
    TargetError::Signalling(e.to_string())
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a Value, TargetError> {
    v.get(name)
        .ok_or_else(|| TargetError::Signalling(format!("reply without `{name}`: {v}")))
}

fn str_field(v: &Value, name: &'static str) -> Result<String, TargetError> {
    field(v, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| TargetError::Signalling(format!("`{name}` is not a string: {v}")))
}

fn port_field(v: &Value) -> Result<u16, TargetError> {
    field(v, "port")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| TargetError::Signalling(format!("bad port: {v}")))
}

/// The protocol's name of a media kind (`audio` or `video`).
pub fn kind_name(kind: mediasoup::types::rtp_parameters::MediaKind) -> &'static str {
    match kind {
        mediasoup::types::rtp_parameters::MediaKind::Audio => "audio",
        mediasoup::types::rtp_parameters::MediaKind::Video => "video",
    }
}

impl SignallingPeer {
    /// Connects to `url`; events go to `events` when given, else nowhere.
    async fn connect(
        url: &str,
        events: Option<mpsc::UnboundedSender<ServerEvent>>,
    ) -> Result<Self, TargetError> {
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| TargetError::Signalling(format!("connecting to {url} timed out")))?
            .map_err(sig)?;
        let (sink, mut stream) = ws.split();
        let pending: Pending = Arc::default();
        let routes = Arc::clone(&pending);
        let reader = tokio::spawn(async move {
            while let Ok(Some(Ok(msg))) = tokio::time::timeout(SILENT_NODE, stream.next()).await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if v.get("response") == Some(&Value::Bool(true)) {
                    let waiter = v
                        .get("id")
                        .and_then(Value::as_u64)
                        .and_then(|id| routes.lock().remove(&id));
                    if let Some(w) = waiter {
                        let _ = w.send(v);
                    }
                } else if let (Some(tx), Some(event)) = (&events, ServerEvent::parse(&v)) {
                    // A listener that went away drops its events.
                    let _ = tx.send(event);
                }
            }
            // The socket closed (or the node went silent): fail every
            // waiting request; dropping `events` ends the listener's stream.
            routes.lock().clear();
        });
        Ok(Self {
            sink,
            pending,
            next_id: 1,
            reader,
            recv_transport: None,
        })
    }

    /// The `join` data, with a token for it (see [`super::tokens`]).
    async fn join_data(url: &str, room: &str, name: &str) -> Result<Value, TargetError> {
        let token = super::tokens::token_for(url, room, name).await?;
        Ok(json!({"room": room, "displayName": name, "token": token}))
    }

    /// Connects to `url` and joins `room` as `name`; events are dropped.
    pub async fn join(url: &str, room: &str, name: &str) -> Result<Self, TargetError> {
        let data = Self::join_data(url, room, name).await?;
        let mut peer = Self::connect(url, None).await?;
        peer.request("join", data).await?;
        Ok(peer)
    }

    /// Connects to `url` and joins `room` as `name`, keeping the join
    /// reply and listening to the events. A refused join (e.g. `draining`)
    /// is [`TargetError::Refused`], with the URL the node named, if any.
    pub async fn join_listening(
        url: &str,
        room: &str,
        name: &str,
    ) -> Result<Listening, TargetError> {
        let (tx, events) = mpsc::unbounded_channel();
        let join = Self::join_data(url, room, name).await?;
        let mut peer = Self::connect(url, Some(tx)).await?;
        let data = match peer.request("join", join).await {
            Ok(data) => data,
            // Dropping the peer closes the socket.
            Err(e) => return Err(e),
        };
        Ok(Listening {
            peer,
            reply: JoinReply::parse(&data),
            events,
        })
    }

    /// Sends one request and returns its `data`, or the error it got.
    pub async fn request(&mut self, method: &str, data: Value) -> Result<Value, TargetError> {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        let text = json!({"id": id, "method": method, "data": data}).to_string();
        if let Err(e) = self.sink.send(Message::Text(text)).await {
            self.pending.lock().remove(&id);
            return Err(sig(e));
        }
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, rx)
            .await
            .map_err(|_| TargetError::Signalling(format!("`{method}` timed out")))?
            .map_err(|_| TargetError::Signalling("the node closed the socket".into()))?;
        if reply.get("ok") == Some(&Value::Bool(true)) {
            Ok(reply.get("data").cloned().unwrap_or(Value::Null))
        } else {
            let error = reply.get("error").unwrap_or(&Value::Null);
            let text = |k: &str| {
                error
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            Err(TargetError::Refused {
                method: method.to_owned(),
                code: text("code"),
                message: text("message"),
                url: redirect_url(error),
            })
        }
    }

    /// Publishes a stream on a plain transport of its own (`comedia`);
    /// returns the producer id and where to send RTP.
    pub async fn publish(
        &mut self,
        spec: &StreamSpec,
    ) -> Result<(String, SocketAddr), TargetError> {
        let t = self
            .request(
                "createPlainTransport",
                json!({"direction": "send", "comedia": true}),
            )
            .await?;
        let to = send_addr(&str_field(&t, "ip")?, port_field(&t)?)?;
        let kind = kind_name(spec.kind.media_kind());
        let produced = self
            .request(
                "produce",
                json!({
                    "transportId": field(&t, "id")?,
                    "kind": kind,
                    "rtpParameters": serde_json::to_value(rtp_parameters(spec)).map_err(sig)?,
                }),
            )
            .await?;
        Ok((str_field(&produced, "id")?, to))
    }

    /// Creates the receiving plain transport, connected to `sink`, unless
    /// there is one; returns the address the node sends media from.
    pub async fn recv_transport(&mut self, sink: SocketAddr) -> Result<SocketAddr, TargetError> {
        Ok(self.receiving(sink).await?.media)
    }

    async fn receiving(&mut self, sink: SocketAddr) -> Result<RecvTransport, TargetError> {
        if let Some(t) = &self.recv_transport {
            return Ok(t.clone());
        }
        let t = self
            .request("createPlainTransport", json!({"direction": "recv"}))
            .await?;
        let id = str_field(&t, "id")?;
        let media = send_addr(&str_field(&t, "ip")?, port_field(&t)?)?;
        self.request(
            "connectPlainTransport",
            json!({"transportId": id, "ip": sink.ip(), "port": sink.port()}),
        )
        .await?;
        let t = RecvTransport { id, media };
        self.recv_transport = Some(t.clone());
        Ok(t)
    }

    /// Receives `producer_id` at `sink` (on the receiving transport, made
    /// on first use) and resumes the consumer.
    pub async fn consume(
        &mut self,
        producer_id: &str,
        sink: SocketAddr,
    ) -> Result<Consumed, TargetError> {
        let transport = self.receiving(sink).await?.id;
        let caps = serde_json::to_value(subscriber_rtp_capabilities()).map_err(sig)?;
        let c = self
            .request(
                "consume",
                json!({"transportId": transport, "producerId": producer_id, "rtpCapabilities": caps}),
            )
            .await?;
        let ssrc = c
            .pointer("/rtpParameters/encodings/0/ssrc")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| TargetError::Signalling(format!("consumer without SSRC: {c}")))?;
        let id = str_field(&c, "id")?;
        self.request("resumeConsumer", json!({"consumerId": id}))
            .await?;
        Ok(Consumed { id, ssrc })
    }

    /// Receives `producer_id` at `sink`; returns the consumer's SSRC.
    pub async fn subscribe(
        &mut self,
        producer_id: &str,
        sink: SocketAddr,
    ) -> Result<u32, TargetError> {
        Ok(self.consume(producer_id, sink).await?.ssrc)
    }

    /// Leaves and closes the socket.
    pub async fn close(mut self) {
        let _ = self.request("leave", Value::Null).await;
        let _ = self.sink.close().await;
        self.reader.abort();
    }
}

/// A peer dropped without [`close`](SignallingPeer::close) closes its
/// socket (the node treats that as a `leave`).
impl Drop for SignallingPeer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
