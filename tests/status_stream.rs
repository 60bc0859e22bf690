//! `GET /api/status/stream` (Server-Sent Events): every event is the JSON
//! of `/api/status`, one a second, live; any origin may read both; a
//! client that goes away frees its place, the number of streams is
//! bounded, and the node stops at once with a stream open. `/dashboard`
//! serves the bundled page, or says it is not built.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use mafalda::api::stream::MAX_STREAMS;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw HTTP/1.1 response read from a socket: its head, then its chunked
/// body decoded as it arrives.
struct Response {
    socket: TcpStream,
    head: String,
    /// Bytes read past what was decoded.
    raw: Vec<u8>,
    /// Decoded body not yet consumed.
    body: String,
    eof: bool,
}

impl Response {
    async fn get(addr: SocketAddr, path: &str) -> Self {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nOrigin: http://elsewhere\r\n\r\n");
        socket.write_all(request.as_bytes()).await.expect("write");
        let mut r = Response {
            socket,
            head: String::new(),
            raw: Vec::new(),
            body: String::new(),
            eof: false,
        };
        while !r.raw.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(r.read_more().await, "the connection closed before the head");
        }
        let end = r.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        r.head = String::from_utf8(r.raw.drain(..end).collect()).expect("utf-8 head");
        r
    }

    fn status(&self) -> u16 {
        self.head[9..12].parse().expect("a status code")
    }

    /// A header's value (name in lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.eq_ignore_ascii_case(name)).then(|| v.trim())
        })
    }

    /// Reads what the socket has; false at its end.
    async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = self.socket.read(&mut buf).await.expect("read");
        self.raw.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// Decodes the complete chunks read so far into `body` (or takes the
    /// bytes as they are when the body is not chunked).
    fn decode(&mut self) {
        if self.header("transfer-encoding") != Some("chunked") {
            let bytes: Vec<u8> = self.raw.drain(..).collect();
            self.body
                .push_str(std::str::from_utf8(&bytes).expect("utf-8 body"));
            return;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end]).expect("chunk size");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("a hex chunk size");
            let needed = line_end + 2 + size + 2;
            if self.raw.len() < needed {
                return;
            }
            if size == 0 {
                self.eof = true;
            }
            let chunk = &self.raw[line_end + 2..line_end + 2 + size];
            self.body
                .push_str(std::str::from_utf8(chunk).expect("utf-8 body"));
            self.raw.drain(..needed);
        }
    }

    /// The next event's fields (`field: value` lines), or `None` when the
    /// stream ended.
    async fn next_event(&mut self) -> Option<Vec<(String, String)>> {
        loop {
            self.decode();
            if let Some(end) = self.body.find("\n\n") {
                let event: String = self.body.drain(..end + 2).collect();
                return Some(
                    event
                        .lines()
                        .filter_map(|l| l.split_once(": "))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                );
            }
            if self.eof || !self.read_more().await {
                return None;
            }
        }
    }

    /// The next event's data, parsed.
    async fn next_status(&mut self) -> Value {
        let event = tokio::time::timeout(TIMEOUT, self.next_event())
            .await
            .expect("an event within the timeout")
            .expect("the stream goes on");
        let data = event
            .iter()
            .find(|(k, _)| k == "data")
            .unwrap_or_else(|| panic!("an event without data: {event:?}"));
        serde_json::from_str(&data.1).expect("the data is JSON")
    }
}

fn keys(v: &Value) -> Vec<&String> {
    let mut k: Vec<_> = v.as_object().expect("an object").keys().collect();
    k.sort();
    k
}

#[actix_rt::test]
async fn the_stream_pushes_the_status_json_every_second() {
    let node = start_node(test_config(2)).await;
    let mut alice = Client::connect(node.http_addr).await;
    alice.join("dash-room", "alice").await;

    let plain = Response::get(node.http_addr, "/api/status").await;
    assert_eq!(plain.status(), 200, "{}", plain.head);
    assert_eq!(plain.header("access-control-allow-origin"), Some("*"));
    let served: Value = serde_json::from_str(&http_get(node.http_addr, "/api/status").await)
        .expect("/api/status is JSON");

    let mut stream = Response::get(node.http_addr, "/api/status/stream").await;
    assert_eq!(stream.status(), 200, "{}", stream.head);
    assert_eq!(
        stream.header("content-type"),
        Some("text/event-stream"),
        "{}",
        stream.head
    );
    assert_eq!(stream.header("access-control-allow-origin"), Some("*"));
    assert_eq!(stream.header("cache-control"), Some("no-store"));

    // The first event at once, telling EventSource when to reconnect.
    let first = stream.next_event().await.expect("a first event");
    assert!(first.iter().any(|(k, _)| k == "retry"), "{first:?}");
    let data = &first.iter().find(|(k, _)| k == "data").expect("data").1;
    let s: Value = serde_json::from_str(data).expect("JSON");
    let t_first = Instant::now();

    // The same document as /api/status: same fields, same figures (the
    // room and its participant did not change in between).
    assert_eq!(keys(&s), keys(&served));
    for field in ["node", "workers", "rooms", "peers", "routers", "drain"] {
        assert_eq!(s[field], served[field], "{field}");
    }
    let slots = |v: &Value| -> Vec<Value> {
        v["workerDetails"]
            .as_array()
            .expect("workerDetails")
            .iter()
            .map(|w| w["slot"].clone())
            .collect()
    };
    assert_eq!(slots(&s), slots(&served));
    assert_eq!(s["roomDetails"], served["roomDetails"]);
    let room = &s["roomDetails"][0];
    assert_eq!(room["room"], "dash-room");
    assert_eq!(room["peers"], 1);
    let routers = room["routers"].as_array().expect("routers");
    assert_eq!(routers.len(), 1, "{room}");
    assert_eq!(routers[0]["peers"], 1);
    assert!(
        routers[0]["router"]
            .as_str()
            .is_some_and(|r| r.starts_with("test-node/w")),
        "{room}"
    );

    // Live: a second participant shows in a later event, a second or so
    // apart.
    let second = stream.next_status().await;
    let gap = t_first.elapsed();
    assert!(
        gap >= Duration::from_millis(500) && gap <= Duration::from_millis(2500),
        "events {gap:?} apart"
    );
    assert_eq!(keys(&second), keys(&served));
    let mut bob = Client::connect(node.http_addr).await;
    bob.join("dash-room", "bob").await;
    eventually("an event with both participants", TIMEOUT, async || {
        let s = stream.next_status().await;
        (s["peers"] == 2 && s["roomDetails"][0]["peers"] == 2).then_some(())
    })
    .await;

    // A client that goes away frees its place.
    assert_eq!(node.status_streams(), 1);
    drop(stream);
    eventually("the stream's place to be freed", TIMEOUT, async || {
        (node.status_streams() == 0).then_some(())
    })
    .await;

    // The node stops at once with a stream open, and the stream ends.
    let mut stream = Response::get(node.http_addr, "/api/status/stream").await;
    stream.next_status().await;
    drop(alice);
    drop(bob);
    let t_stop = Instant::now();
    node.stop().await;
    assert!(
        t_stop.elapsed() < Duration::from_secs(4),
        "stopping took {:?} with a stream open",
        t_stop.elapsed()
    );
    let rest = tokio::time::timeout(TIMEOUT, async {
        while stream.next_event().await.is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end with the node");
}

#[actix_rt::test]
async fn streams_are_bounded_and_the_dashboard_is_served() {
    let dir = std::env::temp_dir().join(format!("mafalda-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("dashboard.html"),
        "<!doctype html><title>Mafalda cluster</title>",
    )
    .expect("write");
    let mut config = test_config(1);
    config.http.static_dir = dir.clone();
    let node = start_node(config).await;

    let page = http_get(node.http_addr, "/dashboard").await;
    assert!(page.contains("<title>Mafalda cluster</title>"), "{page}");

    let mut open = Vec::new();
    for _ in 0..MAX_STREAMS {
        let r = Response::get(node.http_addr, "/api/status/stream").await;
        assert_eq!(r.status(), 200, "{}", r.head);
        open.push(r);
    }
    let refused = Response::get(node.http_addr, "/api/status/stream").await;
    assert_eq!(refused.status(), 503, "{}", refused.head);
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(node.status_streams(), MAX_STREAMS);
    open.pop();
    eventually("a place for a new stream", TIMEOUT, async || {
        let mut r = Response::get(node.http_addr, "/api/status/stream").await;
        if r.status() != 200 {
            return None;
        }
        Some(r.next_status().await)
    })
    .await;
    drop(open);
    node.stop().await;

    // Without the page: a 404 that says so.
    let mut config = test_config(1);
    config.http.static_dir = dir.join("missing");
    let node = start_node(config).await;
    let r = Response::get(node.http_addr, "/dashboard").await;
    assert_eq!(r.status(), 404, "{}", r.head);
    node.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
