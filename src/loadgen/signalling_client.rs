//! A minimal client of Mafalda's JSON signalling API, for loadgen: one
//! WebSocket per participant, plain RTP transports only.
//!
//! A reader task routes responses to their requests by id and drains events
//! (a client that stops reading is evicted by the node as too slow).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::media::{rtp_parameters, subscriber_rtp_capabilities, StreamSpec};
use super::target::{send_addr, TargetError};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// One participant connected over the signalling API.
pub struct SignallingPeer {
    sink: Sink,
    pending: Pending,
    next_id: u64,
    reader: tokio::task::JoinHandle<()>,
    recv_transport: Option<String>,
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

impl SignallingPeer {
    /// Connects to `url` and joins `room` as `name`.
    pub async fn join(url: &str, room: &str, name: &str) -> Result<Self, TargetError> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(sig)?;
        let (sink, mut stream) = ws.split();
        let pending: Pending = Arc::default();
        let routes = Arc::clone(&pending);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
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
                }
                // Events are read and dropped: loadgen subscribes by itself.
            }
            // The socket closed: fail every waiting request.
            routes.lock().clear();
        });
        let mut peer = Self {
            sink,
            pending,
            next_id: 1,
            reader,
            recv_transport: None,
        };
        peer.request("join", json!({"room": room, "displayName": name}))
            .await?;
        Ok(peer)
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
        let port = field(&t, "port")?
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| TargetError::Signalling(format!("bad port: {t}")))?;
        let to = send_addr(&str_field(&t, "ip")?, port)?;
        let kind = match spec.kind.media_kind() {
            mediasoup::types::rtp_parameters::MediaKind::Audio => "audio",
            mediasoup::types::rtp_parameters::MediaKind::Video => "video",
        };
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

    /// Receives `producer_id` at `sink`; returns the consumer's SSRC.
    pub async fn subscribe(
        &mut self,
        producer_id: &str,
        sink: SocketAddr,
    ) -> Result<u32, TargetError> {
        let transport = match &self.recv_transport {
            Some(t) => t.clone(),
            None => {
                let t = self
                    .request("createPlainTransport", json!({"direction": "recv"}))
                    .await?;
                let id = str_field(&t, "id")?;
                self.request(
                    "connectPlainTransport",
                    json!({"transportId": id, "ip": sink.ip(), "port": sink.port()}),
                )
                .await?;
                self.recv_transport = Some(id.clone());
                id
            }
        };
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
        self.request("resumeConsumer", json!({"consumerId": field(&c, "id")?}))
            .await?;
        Ok(ssrc)
    }

    /// Leaves and closes the socket.
    pub async fn close(mut self) {
        let _ = self.request("leave", Value::Null).await;
        let _ = self.sink.close().await;
        self.reader.abort();
    }
}
