//! Shared helpers for integration tests: an in-process node on port 0 and a
//! small signalling client.
#![allow(dead_code, missing_docs)]

pub mod across;
pub mod cluster;
pub mod facade;

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mafalda::config::Config;
use mafalda::node::RunningNode;
use mafalda::server::NodeStatus;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// The one way tests wait for a state (not every test binary uses both).
#[allow(unused_imports)]
pub use mafalda::mafalda_actors::testing::{eventually, eventually_ok};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn test_config(workers: usize) -> Config {
    let mut c = Config::default();
    c.node.name = "test-node".into();
    c.http.static_dir = "/nonexistent".into();
    c.workers.count = workers;
    c.rtc.enable_tcp = false;
    c.signalling.max_message_bytes = 16 * 1024;
    c.auth.keys = vec![test_key()];
    c
}

/// The signing key of every test node.
pub fn test_key() -> mafalda::auth::AuthKey {
    mafalda::auth::AuthKey {
        kid: "test".into(),
        secret: "a secret for the tests, never for production".into(),
    }
}

/// Every grant.
pub fn all_grants() -> mafalda::auth::Grants {
    mafalda::auth::Grants {
        publish: mafalda::auth::Publish::All(true),
        subscribe: true,
        plain: true,
        rename: true,
    }
}

/// A token of the test key for `identity` in `room` with `grants`.
pub fn token_with(room: &str, identity: &str, grants: mafalda::auth::Grants) -> String {
    mafalda::auth::Keys::new(vec![test_key()])
        .issue(room, identity, Duration::from_secs(3600), grants)
        .expect("token")
}

/// A token of the test key for `identity` in `room` with every grant.
pub fn token(room: &str, identity: &str) -> String {
    token_with(room, identity, all_grants())
}

pub async fn start_node(config: Config) -> RunningNode {
    // Load generators in tests sign their participants' tokens with it.
    mafalda::loadgen::tokens::use_keys(test_key());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    RunningNode::start(config, listener)
        .await
        .expect("node starts")
}

/// The body of `GET path` on `addr` (plain HTTP/1.1, connection closed).
/// The status line of `GET path`.
pub async fn http_status(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    text.lines().next().unwrap_or_default().to_owned()
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8(buf).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

pub async fn status(node: &RunningNode) -> NodeStatus {
    node.server.status().await.expect("status")
}

/// Waits (bounded) until every per-peer resource count is zero.
pub async fn wait_idle(node: &RunningNode) -> NodeStatus {
    eventually_ok(
        "every resource to be released (else: a leak)",
        TIMEOUT,
        async || {
            let s = status(node).await;
            let idle = s.peers == 0
                && s.transports == 0
                && s.producers == 0
                && s.consumers == 0
                && s.rooms == 0
                && s.routers == 0;
            if idle {
                Ok(s)
            } else {
                Err(s)
            }
        },
    )
    .await
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pub events: VecDeque<Value>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_url(&format!("ws://{addr}/ws")).await
    }

    /// Connects to a WebSocket URL (e.g. with `?token=`).
    pub async fn connect_url(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Self {
            ws,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Next text message that is a response (events are buffered).
    pub async fn next_response(&mut self) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.next_json(deadline).await;
            if v.get("response") == Some(&Value::Bool(true)) {
                return v;
            }
            self.events.push_back(v);
        }
    }

    /// Next text message, arriving before `deadline`.
    async fn next_json(&mut self, deadline: Instant) -> Value {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("message within timeout")
                .expect("socket open")
                .expect("no socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("server sends JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends a request and returns the whole response envelope.
    pub async fn request(&mut self, method: &str, data: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"id": id, "method": method, "data": data}).to_string();
        self.ws.send(Message::Text(text)).await.expect("send");
        let r = self.next_response().await;
        assert_eq!(r["id"], json!(id), "response id matches: {r}");
        r
    }

    /// Sends a request that must succeed and returns its data.
    pub async fn ok(&mut self, method: &str, data: Value) -> Value {
        let r = self.request(method, data).await;
        assert_eq!(r["ok"], json!(true), "{method} failed: {r}");
        r["data"].clone()
    }

    /// Sends a request that must fail with `code`.
    pub async fn fails(&mut self, method: &str, data: Value, code: &str) -> Value {
        let r = self.request(method, data).await;
        assert_eq!(r["ok"], json!(false), "{method} should fail: {r}");
        assert_eq!(r["error"]["code"], json!(code), "{method}: {r}");
        r
    }

    /// Waits for an event by name (events already buffered count).
    pub async fn event(&mut self, name: &str) -> Value {
        if let Some(pos) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(pos).expect("present")["data"].clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.next_json(deadline).await;
            if v["event"] == name {
                return v["data"].clone();
            }
            self.events.push_back(v);
        }
    }

    /// Waits for the server to close the socket; returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame<'static>> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("close within timeout")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.into_owned()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn join(&mut self, room: &str, name: &str) -> Value {
        self.ok(
            "join",
            json!({"room": room, "displayName": name, "token": token(room, name)}),
        )
        .await
    }
}

pub fn client_dtls() -> Value {
    json!({"role": "client", "fingerprints": [{"algorithm": "sha-256",
        "value": "E5:F5:CA:A7:2D:93:E6:16:AC:21:09:9F:23:51:62:8C:D0:66:E9:0C:22:54:2B:82:0C:DF:E0:C5:2C:7E:CD:53"}]})
}

pub fn vp8_rtp_parameters(ssrc: u32) -> Value {
    json!({
        "mid": "0",
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {},
             "rtcpFeedback": [{"type": "goog-remb", "parameter": ""}, {"type": "transport-cc", "parameter": ""},
                              {"type": "ccm", "parameter": "fir"}, {"type": "nack", "parameter": ""},
                              {"type": "nack", "parameter": "pli"}]},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}, "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}},
            {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2, "encrypt": false, "parameters": {}}
        ],
        "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": ssrc + 1}}],
        "rtcp": {"cname": "test", "reducedSize": true}
    })
}

pub fn opus_rtp_parameters(ssrc: u32) -> Value {
    json!({
        "mid": "1",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                    "parameters": {"minptime": 10, "useinbandfec": 1},
                    "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]}],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}}],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "test", "reducedSize": true}
    })
}

pub fn client_rtp_capabilities() -> Value {
    json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000, "channels": 2,
             "parameters": {}, "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}]},
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000,
             "parameters": {}, "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"},
                                                {"type": "ccm", "parameter": "fir"}, {"type": "transport-cc", "parameter": ""}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102, "clockRate": 90000,
             "parameters": {"apt": 101}, "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1, "preferredEncrypt": false, "direction": "sendrecv"},
            {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1, "preferredEncrypt": false, "direction": "sendrecv"}
        ]
    })
}

/// Capabilities that can only receive audio.
pub fn audio_only_capabilities() -> Value {
    json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000, "channels": 2,
             "parameters": {}, "rtcpFeedback": []}
        ],
        "headerExtensions": []
    })
}

/// Joins, creates a send transport, connects it and produces VP8; returns
/// (transport id, producer id).
pub async fn publish_video(c: &mut Client, ssrc: u32) -> (String, String) {
    let t = c
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    let tid = t["id"].as_str().expect("transport id").to_owned();
    c.ok(
        "connectWebRtcTransport",
        json!({"transportId": tid, "dtlsParameters": client_dtls()}),
    )
    .await;
    let p = c
        .ok(
            "produce",
            json!({"transportId": tid, "kind": "video", "rtpParameters": vp8_rtp_parameters(ssrc)}),
        )
        .await;
    (tid, p["id"].as_str().expect("producer id").to_owned())
}

/// The worker slot whose peer count went up between two status snapshots
/// (exactly one must have).
pub fn placed_on(before: &NodeStatus, after: &NodeStatus) -> usize {
    let grew: Vec<usize> = before
        .worker_details
        .iter()
        .zip(&after.worker_details)
        .filter(|(b, a)| a.counts.peers > b.counts.peers)
        .map(|(b, _)| b.slot)
        .collect();
    assert_eq!(grew.len(), 1, "one worker got the peer: {after:?}");
    grew[0]
}
