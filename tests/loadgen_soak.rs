//! `mafalda loadgen --soak` against a real node: participants that follow
//! the room's events, rejoin when the node drops them, and a report of the
//! media gaps they saw.
//!
//! Without a cluster, two nodes do not share rooms, so the soaks run
//! against one node behind two target URLs.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use mafalda::ids::WorkerSlot;
use mafalda::loadgen::scenario::Tracks;
use mafalda::loadgen::soak::{run, SoakConfig, SoakReport};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn soak_config(
    targets: Vec<String>,
    room: &str,
    seconds: u64,
    ready: Option<PathBuf>,
) -> SoakConfig {
    SoakConfig {
        targets,
        room: room.into(),
        publishers: 1,
        subscribers: 2,
        tracks: Tracks {
            audio: true,
            video: true,
        },
        duration: Duration::from_secs(seconds),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        recv_sockets: 1,
        ready_file: ready,
        max_gap_ms: Some(5000.0),
    }
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mafalda-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The time written in the ready file, once it is there.
async fn wait_ready(path: &Path) -> f64 {
    eventually(
        "every subscriber to receive every stream",
        TIMEOUT,
        async || {
            let text = std::fs::read_to_string(path).ok()?;
            text.trim().parse().ok()
        },
    )
    .await
}

fn participant<'a>(
    report: &'a SoakReport,
    name: &str,
) -> &'a mafalda::loadgen::soak::ParticipantReport {
    report
        .participants
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} in the report"))
}

/// A node kills its only worker mid-soak: every participant gets
/// `reconnect` and its socket closes; each joins again through the other
/// URL (the worker is respawned meanwhile: the first attempts may be
/// refused), the publisher publishes again with the same generators, the
/// subscribers consume the new producers, and the media comes back within
/// the limit.
#[actix_rt::test]
async fn a_soak_rejoins_through_a_dead_worker() {
    let node = start_node(test_config(1)).await;
    let url = format!("ws://{}/ws", node.http_addr);
    let dir = scratch("soak-worker");
    let ready = dir.join("ready");
    let config = soak_config(
        vec![url.clone(), url.clone()],
        "soak-worker",
        6,
        Some(ready.clone()),
    );
    let soak = actix_rt::spawn(run(config));

    let ready_ms = wait_ready(&ready).await;
    assert!(node.server.kill_worker(WorkerSlot(0)).await.expect("node"));
    let report = soak.await.expect("soak task").expect("soak runs");
    eprintln!("{report}");
    eprintln!("{}", serde_json::to_string_pretty(&report).expect("json"));

    // The assignment: participant i through target i mod 2, publishers first.
    for (name, target) in [("pub-0", 0), ("sub-0", 1), ("sub-1", 0)] {
        let p = participant(&report, name);
        assert_eq!(p.joins[0].target, Some(target), "{name}");
        assert_eq!(p.joins[0].cause, "start");
        assert!(p.rejoins >= 1, "{name} rejoined: {p:?}");
        assert_eq!(p.joins.len(), p.rejoins as usize + 1);
        let again = &p.joins[1];
        assert!(again.cause.starts_with("reconnect"), "{again:?}");
        assert!(again.at_ms > ready_ms, "{again:?}");
        // One of the two (the other first, but while the worker respawns
        // the attempts go round).
        assert!(again.target.is_some(), "{again:?}");
        let media_count = if name.starts_with("pub") { 2 } else { 1 };
        assert_eq!(again.media.len(), media_count, "{again:?}");
    }
    assert_eq!(report.ready_ms, Some(ready_ms));
    assert_eq!(report.pairs.len(), 4, "2 subscribers x (audio, video)");
    for pair in &report.pairs {
        let sub = participant(&report, &pair.subscriber);
        let rejoined = sub.joins[sub.joins.len() - 1].at_ms;
        let last = pair.last_ms.expect("packets arrived");
        assert!(last > rejoined, "packets after the rejoin: {pair:?}");
        assert!(
            report.duration_ms - last < 1000.0,
            "still flowing at the end: {pair:?}"
        );
        assert!(pair.consumers >= 2, "{pair:?}");
        assert!(pair.received > 50, "{pair:?}");
        let gap = pair.max_gap_ms.expect("a gap");
        assert!(gap < 5000.0, "{pair:?}");
    }
    for sub in ["sub-0", "sub-1"] {
        let silence = participant(&report, sub).max_silence_ms.expect("received");
        assert!(silence < 5000.0, "{sub}: {silence}");
    }
    assert!(report.passed, "{:?}", report.failures);
    wait_idle(&node).await;
    node.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for a draining node: it refuses every `join` with
/// `draining` and the URL to go to instead.
async fn draining_node(to: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    actix_rt::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let to = to.clone();
            actix_rt::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = ws.next().await {
                    let request: Value = serde_json::from_str(&text).unwrap_or_default();
                    let reply = json!({"response": true, "id": request["id"], "ok": false,
                        "error": {"code": "draining", "message": "this node drains", "url": to}});
                    if ws.send(Message::Text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("ws://{addr}/ws")
}

/// Participants whose first target drains join where it says: the
/// publisher and `sub-1` (target 0) end up on the node, listed as target
/// 1, and every stream flows.
#[actix_rt::test]
async fn a_soak_follows_a_draining_node_to_another() {
    let node = start_node(test_config(1)).await;
    let url = format!("ws://{}/ws", node.http_addr);
    let draining = draining_node(url.clone()).await;
    let report = run(soak_config(
        vec![draining, url.clone()],
        "soak-drain",
        2,
        None,
    ))
    .await
    .expect("soak runs");
    eprintln!("{report}");
    for name in ["pub-0", "sub-0", "sub-1"] {
        let p = participant(&report, name);
        assert_eq!(p.rejoins, 0, "{p:?}");
        assert_eq!(p.joins[0].url, url, "{p:?}");
        assert_eq!(p.joins[0].target, Some(1), "{p:?}");
    }
    assert!(report.ready_ms.is_some());
    assert!(report.passed, "{:?}", report.failures);
    assert!(report
        .pairs
        .iter()
        .all(|p| p.received > 0 && p.consumers == 1));
    wait_idle(&node).await;
    node.stop().await;
}
