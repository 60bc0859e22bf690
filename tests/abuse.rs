//! Abuse next to honest peers: 20,000 mutated signalling messages on
//! joined sockets and a churn of 500 connections, while a publisher and
//! two subscribers (loadgen over signalling) keep their media flowing.
//! The node must stay up, answer `/healthz` within a second throughout,
//! disconnect no honest peer, never answer `internal`, keep its memory
//! bounded, and release everything once everyone left.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::SignallingTarget;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const HOSTILE_SOCKETS: usize = 10;
const MESSAGES_PER_SOCKET: usize = 2_000;
const CHURN: usize = 500;
const CHURN_AT_ONCE: usize = 25;

/// This process's resident set size (the node runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Valid requests of every kind, the seeds of the mutations.
fn seeds() -> Vec<String> {
    let id = "5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44";
    [
        json!({"id": 1, "method": "getRouterRtpCapabilities"}),
        json!({"id": 2, "method": "createWebRtcTransport", "data": {"direction": "send", "enableSctp": true}}),
        json!({"id": 3, "method": "connectWebRtcTransport", "data": {"transportId": id, "dtlsParameters": client_dtls()}}),
        json!({"id": 4, "method": "produce", "data": {"transportId": id, "kind": "video", "rtpParameters": vp8_rtp_parameters(5)}}),
        json!({"id": 5, "method": "consume", "data": {"transportId": id, "producerId": id, "rtpCapabilities": client_rtp_capabilities()}}),
        json!({"id": 6, "method": "createPlainTransport", "data": {"direction": "recv", "comedia": true}}),
        json!({"id": 7, "method": "connectPlainTransport", "data": {"transportId": id, "ip": "127.0.0.1", "port": 9}}),
        json!({"id": 8, "method": "setConsumerPreferredLayers", "data": {"consumerId": id, "spatialLayer": 2}}),
        json!({"id": 9, "method": "produceData", "data": {"transportId": id, "sctpStreamParameters": {"streamId": 1, "ordered": true}}}),
        json!({"id": 10, "method": "restartIce", "data": {"transportId": id}}),
        json!({"id": 11, "method": "closeTransport", "data": {"transportId": id}}),
        json!({"id": 12, "method": "pauseProducer", "data": {"producerId": id}}),
    ]
    .iter()
    .map(|v| v.to_string())
    .collect()
}

/// Fragments spliced into messages.
const FRAGMENTS: &[&str] = &[
    "null",
    "true",
    "-1",
    "1e309",
    "18446744073709551616",
    "\"\"",
    "[]",
    "{}",
    "\"\\u0000\"",
    "\"💥\"",
    "\"join\"",
    "\"leave\"",
    "{\"a\":",
    "]]]]",
    "\"send\"",
    "0.5",
    "\"recv\"",
];

/// One mutation of `seed`: characters changed, ranges dropped or doubled,
/// fragments spliced in, methods swapped.
fn mutate(rng: &mut StdRng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..rng.gen_range(1..4) {
        if chars.is_empty() {
            break;
        }
        let at = rng.gen_range(0..chars.len());
        match rng.gen_range(0..5) {
            0 => chars[at] = char::from(rng.gen_range(0x20u8..0x7f)),
            1 => {
                let end = (at + rng.gen_range(1..12)).min(chars.len());
                chars.drain(at..end);
            }
            2 => {
                let end = (at + rng.gen_range(1..30)).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            3 => {
                let f = FRAGMENTS[rng.gen_range(0..FRAGMENTS.len())];
                chars.splice(at..at, f.chars());
            }
            _ => {
                let text: String = chars.iter().collect();
                let swapped = text.replacen(
                    "\"method\":\"",
                    ["\"method\":\"x", "\"method\":\"join", "\"method\":\"leave"]
                        [rng.gen_range(0..3)],
                    1,
                );
                chars = swapped.chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    replies: AtomicU64,
    internal: AtomicU64,
    reconnects: AtomicU64,
}

/// A joined socket that sends `MESSAGES_PER_SOCKET` mutations, reading
/// every reply; when the node closes it (a mutation may be a second
/// `join`'s `leave`, or too big) it joins again and goes on.
async fn hostile(addr: std::net::SocketAddr, n: usize, tally: Arc<Tally>) {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let seeds = seeds();
    let mut sent = 0;
    while sent < MESSAGES_PER_SOCKET {
        let name = format!("hostile-{n}");
        let url = format!("ws://{addr}/ws?token={}", token("abused", &name));
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let join =
            json!({"id": 0, "method": "join", "data": {"room": "abused", "displayName": name}});
        ws.send(Message::Text(join.to_string()))
            .await
            .expect("join");
        loop {
            if sent >= MESSAGES_PER_SOCKET {
                break;
            }
            let seed = &seeds[rng.gen_range(0..seeds.len())];
            let msg = mutate(&mut rng, seed);
            if ws.send(Message::Text(msg)).await.is_err() {
                break;
            }
            sent += 1;
            tally.sent.fetch_add(1, Ordering::Relaxed);
            // Read what is there (replies, events) without waiting long.
            let mut open = true;
            while let Ok(next) = tokio::time::timeout(Duration::from_millis(1), ws.next()).await {
                match next {
                    Some(Ok(Message::Text(t))) => {
                        tally.replies.fetch_add(1, Ordering::Relaxed);
                        if t.contains("\"code\":\"internal\"") {
                            tally.internal.fetch_add(1, Ordering::Relaxed);
                            eprintln!("internal error for a mutated message: {t}");
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        open = false;
                        break;
                    }
                }
            }
            if !open {
                break;
            }
        }
        if sent < MESSAGES_PER_SOCKET {
            tally.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connections that come and go: some join and vanish, some never join,
/// some send garbage first.
async fn churn(addr: std::net::SocketAddr, k: usize) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await else {
        return;
    };
    match k % 3 {
        0 => {
            let name = format!("churn-{k}");
            let join = json!({"id": 1, "method": "join", "data": {"room": "churning", "displayName": name, "token": token("churning", &name)}});
            let _ = ws.send(Message::Text(join.to_string())).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
        }
        1 => {
            let _ = ws.send(Message::Text("{\"id\":".into())).await;
        }
        _ => {}
    }
    // Half close politely, half just vanish.
    if k % 2 == 0 {
        let _ = ws.close(None).await;
    }
}

#[actix_rt::test]
async fn hostile_clients_next_to_honest_peers() {
    let mut config = test_config(2);
    config.placement.mode = mafalda::config::PlacementMode::Spread;
    // Every mutated message reaches the parser and the room (the request
    // rate limit would otherwise answer most of them `limit_exceeded`).
    config.limits.requests_per_second = 1_000_000;
    config.limits.request_burst = 1_000_000;
    let node = start_node(config).await;
    let addr = node.http_addr;

    // Honest peers: a publisher and two subscribers, over signalling.
    let target = SignallingTarget::new(format!("ws://{addr}/ws"), "honest");
    let tracks = Tracks {
        audio: true,
        video: true,
    };
    let mut session = Session::new(target, tracks, LOCALHOST, 2).expect("engine");
    session.add_publisher().await.expect("publisher");
    session.add_subscriber().await.expect("subscriber 1");
    session.add_subscriber().await.expect("subscriber 2");
    eventually_ok("honest media", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if !s.streams.is_empty() && s.streams.iter().all(|st| st.packets > 20) {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    let honest_room = |s: &mafalda::server::NodeStatus| {
        s.room_details
            .iter()
            .find(|r| r.room.as_str() == "honest")
            .map_or(0, |r| r.peers)
    };
    let rss_before = rss_bytes();

    // /healthz answers within a second throughout.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let prober = {
        let (stop, worst) = (Arc::clone(&stop), Arc::clone(&worst));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = tokio::time::timeout(Duration::from_secs(2), http_get(addr, "/healthz"))
                    .await
                    .is_ok();
                let ms = if ok {
                    t.elapsed().as_millis() as u64
                } else {
                    u64::MAX
                };
                worst.fetch_max(ms, Ordering::Relaxed);
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), std::future::pending::<()>())
                        .await;
            }
        })
    };

    let tally = Arc::new(Tally::default());
    let hostiles: Vec<_> = (0..HOSTILE_SOCKETS)
        .map(|n| tokio::spawn(hostile(addr, n, Arc::clone(&tally))))
        .collect();
    let churner = tokio::spawn(async move {
        let mut k = 0;
        while k < CHURN {
            let wave: Vec<_> = (k..(k + CHURN_AT_ONCE).min(CHURN))
                .map(|i| tokio::spawn(churn(addr, i)))
                .collect();
            k += wave.len();
            for w in wave {
                let _ = w.await;
            }
        }
    });
    for h in hostiles {
        h.await.expect("hostile client");
    }
    churner.await.expect("churn");
    stop.store(true, Ordering::Relaxed);
    prober.await.expect("prober");

    let sent = tally.sent.load(Ordering::Relaxed);
    assert!(
        sent >= (HOSTILE_SOCKETS * MESSAGES_PER_SOCKET) as u64,
        "{sent} sent"
    );
    assert!(tally.replies.load(Ordering::Relaxed) > 0);
    assert_eq!(
        tally.internal.load(Ordering::Relaxed),
        0,
        "`internal` replies"
    );
    let worst_ms = worst.load(Ordering::Relaxed);
    assert!(worst_ms < 1_000, "/healthz took {worst_ms} ms at worst");
    eprintln!(
        "{sent} mutated messages ({} replies, {} reconnects), {CHURN} connections churned, /healthz at worst {worst_ms} ms",
        tally.replies.load(Ordering::Relaxed),
        tally.reconnects.load(Ordering::Relaxed)
    );

    // The honest peers are all still there, and their media still flows.
    assert_eq!(
        honest_room(&status(&node).await),
        3,
        "an honest peer was disconnected"
    );
    session.receiver().reset_window();
    eventually_ok("honest media after the abuse", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if s.totals.window_s >= 1.0 && s.streams.iter().all(|st| st.packets > 40) {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < 50 * 1024 * 1024,
        "RSS grew by {} MiB",
        grown / (1024 * 1024)
    );

    // Everyone leaves: every count returns to zero.
    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}
