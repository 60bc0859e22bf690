//! `/metrics` scraped and parsed with a Prometheus text-format parser: its
//! figures agree with `/api/status` while a participant publishes, and
//! after everyone left; signalling requests are counted by method and
//! result; refused joins by reason; RTP per worker rises while media flows
//! and never goes down; two clustered nodes count spills, admissions,
//! fabric traffic and round-trip times per peer, and members' state; and
//! between them serve every metric family documented in
//! `docs/operations.md`, and no other.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::*;
use common::*;
use mafalda::config::{Config, PlacementMode};
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::SignallingTarget;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn scrape(node: &mafalda::node::RunningNode) -> Scrape {
    let text = http_get(node.http_addr, "/metrics").await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("prometheus text format")
}

fn sample<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
}

fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(s, name, labels).map(|x| &x.value) {
        Some(Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v)) => *v,
        other => panic!("no {name}{labels:?} in the scrape: {other:?}"),
    }
}

/// The value of `name{labels}`, 0 when the scrape has no such sample yet.
fn value_or_zero(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(s, name, labels).map_or(0.0, |_| value(s, name, labels))
}

/// The sum of every `name` sample whose labels include `labels`.
fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn agrees(m: &Scrape, s: &mafalda::server::NodeStatus) {
    for (name, want) in [
        ("mafalda_rooms", s.rooms),
        ("mafalda_peers", s.peers),
        ("mafalda_producers", s.producers),
        ("mafalda_consumers", s.consumers),
        ("mafalda_transports", s.transports),
    ] {
        assert_eq!(value(m, name, &[]), want as f64, "{name} vs /api/status");
    }
    assert_eq!(value(m, "mafalda_workers", &[]), s.workers as f64);
    for w in &s.worker_details {
        let l = [("worker", &*w.slot.to_string())];
        assert_eq!(
            value(m, "mafalda_worker_consumers", &l),
            w.counts.consumers as f64
        );
        let cpu = value(m, "mafalda_worker_cpu_ratio", &l);
        assert!((0.0..=1.5).contains(&cpu), "worker CPU in cores: {cpu}");
    }
}

#[actix_rt::test]
async fn metrics_agree_with_the_status_and_count_requests() {
    let node = start_node(test_config(2)).await;
    let mut a = Client::connect(node.http_addr).await;
    a.join("metrics-room", "a").await;
    publish_video(&mut a, 1111).await;
    let mut b = Client::connect(node.http_addr).await;
    b.join("metrics-room", "b").await;
    b.fails("fly", json!({}), "unknown_method").await;

    // While the room is live: the same figures as /api/status.
    let s = status(&node).await;
    assert!(s.peers == 2 && s.producers >= 1, "{s:?}");
    let m = scrape(&node).await;
    agrees(&m, &s);
    assert!(
        value(
            &m,
            "mafalda_signalling_requests_total",
            &[("method", "join"), ("result", "ok")]
        ) >= 2.0
    );
    assert_eq!(
        value(
            &m,
            "mafalda_signalling_requests_total",
            &[("method", "unknown"), ("result", "unknown_method")]
        ),
        1.0
    );
    assert_eq!(
        value(&m, "mafalda_pipe_links", &[("scope", "cross_node")]),
        0.0
    );

    // Everyone leaves: back to zero, in both.
    drop((a, b));
    let s = wait_idle(&node).await;
    let m = scrape(&node).await;
    agrees(&m, &s);
    assert_eq!(value(&m, "mafalda_peers", &[]), 0.0);
    node.stop().await;
}

/// Every metric family `/metrics` declares (`# TYPE` lines), as its
/// samples are named: counters with `_total`.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| match l.split_once(' ') {
            Some((name, "counter")) => format!("{name}_total"),
            Some((name, _)) => name.to_owned(),
            None => l.to_owned(),
        })
        .collect()
}

/// The metric names `docs/operations.md`'s "Metrics" table lists.
fn documented_metrics() -> BTreeSet<String> {
    let path = format!("{}/docs/operations.md", env!("CARGO_MANIFEST_DIR"));
    let md = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = md
        .split("\n## ")
        .find(|s| s.starts_with("Metrics\n"))
        .expect("a Metrics section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `mafalda_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("mafalda_{name}"))
        .collect()
}

#[actix_rt::test]
async fn refused_joins_are_counted_by_reason() {
    let node = start_node(test_config(1)).await;
    let mut c = Client::connect(node.http_addr).await;
    for (join, code) in [
        (
            json!({"room": "r", "displayName": "a", "protocolVersion": 99}),
            "unsupported_version",
        ),
        (json!({"room": "", "displayName": "a"}), "bad_request"),
    ] {
        c.fails("join", join, code).await;
    }
    // Data that does not parse as a join at all.
    c.send_raw(Message::Text(
        json!({"id": 100, "method": "join", "data": {"room": 1}}).to_string(),
    ))
    .await;
    let r = c.next_response().await;
    assert_eq!(r["error"]["code"], json!("bad_request"), "{r}");
    c.join("refusals", "a").await;
    c.fails(
        "join",
        json!({"room": "x", "displayName": "a"}),
        "already_joined",
    )
    .await;

    let m = scrape(&node).await;
    let refused =
        |reason: &str| value_or_zero(&m, "mafalda_joins_refused_total", &[("reason", reason)]);
    assert_eq!(refused("unsupported_version"), 1.0);
    assert_eq!(refused("bad_request"), 2.0);
    assert_eq!(refused("already_joined"), 1.0);
    assert_eq!(sum(&m, "mafalda_joins_refused_total", &[]), 4.0);
    // The join whose data did not parse is a `join` request too.
    assert_eq!(
        value(
            &m,
            "mafalda_signalling_requests_total",
            &[("method", "join"), ("result", "bad_request")]
        ),
        2.0
    );
    assert_eq!(value(&m, "mafalda_joins_spilled_total", &[]), 0.0);
    drop(c);
    wait_idle(&node).await;
    node.stop().await;
}

/// The RTP samples of a scrape: (metric, worker, kind) and value.
fn rtp_samples(m: &Scrape) -> Vec<((String, String, String), f64)> {
    m.samples
        .iter()
        .filter(|x| x.metric.starts_with("mafalda_worker_rtp_"))
        .map(|x| {
            let label = |k: &str| x.labels.get(k).unwrap_or_default().to_owned();
            let v = match x.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            ((x.metric.clone(), label("worker"), label("kind")), v)
        })
        .collect()
}

#[actix_rt::test]
async fn rtp_counters_rise_with_media_and_never_go_down() {
    let mut config = test_config(2);
    config.placement.mode = PlacementMode::Spread;
    config.workers.stats_interval_ms = 200;
    let node = start_node(config).await;
    let target = SignallingTarget::new(format!("ws://{}/ws", node.http_addr), "rtp-metrics");
    let tracks = Tracks {
        audio: true,
        video: true,
    };
    let mut session = Session::new(target, tracks, LOCALHOST, 2).expect("engine");
    session.add_publisher().await.expect("publisher");
    for _ in 0..3 {
        session.add_subscriber().await.expect("subscriber");
    }
    // Spread over two workers: some subscriber is on the other worker than
    // the publisher, so media also crosses a pipe.
    let s = status(&node).await;
    assert!(s.worker_details.iter().all(|w| w.counts.peers > 0), "{s:?}");
    const IN: &str = "mafalda_worker_rtp_received_packets_total";
    const OUT: &str = "mafalda_worker_rtp_sent_packets_total";
    let flowing = eventually(
        "RTP counted in and out, by clients and pipes",
        TIMEOUT,
        async || {
            let m = scrape(&node).await;
            let all = [IN, OUT].iter().all(|name| {
                ["client", "pipe"]
                    .iter()
                    .all(|kind| sum(&m, name, &[("kind", kind)]) > 0.0)
            });
            all.then_some(m)
        },
    )
    .await;
    // Bytes go with packets (an RTP header alone is 12 bytes).
    for (name, bytes) in [
        (IN, "mafalda_worker_rtp_received_bytes_total"),
        (OUT, "mafalda_worker_rtp_sent_bytes_total"),
    ] {
        assert!(sum(&flowing, bytes, &[]) >= 12.0 * sum(&flowing, name, &[]));
    }
    // Still rising while media flows.
    let before = sum(&flowing, OUT, &[("kind", "client")]);
    eventually("more RTP sent", TIMEOUT, async || {
        let m = scrape(&node).await;
        (sum(&m, OUT, &[("kind", "client")]) > before).then_some(())
    })
    .await;
    let during = rtp_samples(&scrape(&node).await);

    // Everyone leaves: the producers and consumers close, their counts stay.
    session.finish().await;
    wait_idle(&node).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = scrape(&node).await;
    for (key, was) in &during {
        let labels = [("worker", key.1.as_str()), ("kind", key.2.as_str())];
        let now = value(&after, &key.0, &labels);
        assert!(now >= *was, "{key:?} went down from {was} to {now}");
    }
    assert!(sum(&after, OUT, &[("kind", "client")]) > before);
    node.stop().await;
}

/// A clustered node whose one worker is full with one participant.
fn one_seat(name: &str, dir: &std::path::Path, seeds: Vec<std::net::SocketAddr>) -> Config {
    let mut c = clustered(name, dir, seeds);
    c.placement.worker_max_peers = 1;
    c.placement.watermark = 1.0;
    c
}

#[actix_rt::test]
async fn two_nodes_count_spills_admissions_fabric_traffic_and_members() {
    let names = ["mx-a", "mx-b"];
    let dir = certs(&names);
    let a = start_node(one_seat(names[0], &dir, vec![])).await;
    let seed = cluster(&a).node().addr();
    let b = start_node(clustered(names[1], &dir, vec![seed])).await;
    for n in [&a, &b] {
        eventually(
            "each node to see the other alive, with its load",
            TIMEOUT,
            async || {
                let m = cluster(n).members();
                m.iter()
                    .any(|m| m.state == "alive" && m.load.is_some())
                    .then_some(())
            },
        )
        .await;
    }

    // The first participant fills A; the second is placed on B.
    let mut first = Client::connect(a.http_addr).await;
    first.join("mx-room", "first").await;
    let mut second = Client::connect(a.http_addr).await;
    second.join("mx-room", "second").await;
    let (ma, mb) = (scrape(&a).await, scrape(&b).await);
    assert_eq!(value(&ma, "mafalda_joins_spilled_total", &[]), 1.0);
    assert_eq!(
        value(
            &mb,
            "mafalda_spill_admissions_total",
            &[("outcome", "admitted")]
        ),
        1.0
    );

    // Fabric traffic with the peer, at both ends; the round-trip time of
    // the live link; the peer is up.
    for (m, peer) in [(&ma, names[1]), (&mb, names[0])] {
        let p = [("peer", peer)];
        assert!(value(m, "mafalda_fabric_link_rtt_seconds", &p) > 0.0);
        assert_eq!(value(m, "mafalda_fabric_link_up", &p), 1.0);
        assert!(value(m, "mafalda_fabric_sent_bytes_total", &p) > 0.0);
        assert!(value(m, "mafalda_fabric_received_bytes_total", &p) > 0.0);
        assert_eq!(
            value(m, "mafalda_cluster_member_up", &[("member", peer)]),
            1.0
        );
    }
    // A asked B (its exact load, the admission); B answered.
    let asks = [("peer", names[1]), ("kind", "ask")];
    assert!(value(&ma, "mafalda_fabric_sent_messages_total", &asks) > 0.0);
    let asks = [("peer", names[0]), ("kind", "ask")];
    assert!(value(&mb, "mafalda_fabric_received_messages_total", &asks) > 0.0);

    // B drains: a join there is refused; A, full, finds no peer to take
    // the next one and serves it itself.
    assert!(b.drain.start());
    let mut refused = Client::connect(b.http_addr).await;
    refused
        .fails(
            "join",
            json!({"room": "mx-room", "displayName": "late", "token": token("mx-room", "late")}),
            "draining",
        )
        .await;
    let mut third = Client::connect(a.http_addr).await;
    third.join("mx-room", "third").await;
    let (ma, mb) = (scrape(&a).await, scrape(&b).await);
    assert_eq!(
        value(
            &mb,
            "mafalda_joins_refused_total",
            &[("reason", "draining")]
        ),
        1.0
    );
    assert_eq!(value(&ma, "mafalda_joins_spill_missed_total", &[]), 1.0);
    assert_eq!(value(&ma, "mafalda_joins_spilled_total", &[]), 1.0);

    // Between them, the two nodes now serve every metric family (a family
    // without any sample is left out of the text): each one is in
    // docs/operations.md, and each one documented there is served.
    let mut served = families(&http_get(a.http_addr, "/metrics").await);
    served.extend(families(&http_get(b.http_addr, "/metrics").await));
    let documented = documented_metrics();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "served but not in docs/operations.md: {undocumented:?}; documented but not served: {missing:?}"
    );

    // B stops: A sees it go, its link down, and its counters stay.
    let sent = value(
        &ma,
        "mafalda_fabric_sent_bytes_total",
        &[("peer", names[1])],
    );
    drop((first, second, third, refused));
    b.stop().await;
    let gone = eventually("A to see B down", Duration::from_secs(15), async || {
        let m = scrape(&a).await;
        let peer = [("peer", names[1])];
        (value(&m, "mafalda_cluster_member_up", &[("member", names[1])]) == 0.0
            && value(&m, "mafalda_fabric_link_up", &peer) == 0.0)
            .then_some(m)
    })
    .await;
    let peer = [("peer", names[1])];
    assert!(sample(&gone, "mafalda_fabric_link_rtt_seconds", &peer).is_none());
    assert!(value(&gone, "mafalda_fabric_sent_bytes_total", &peer) >= sent);
    idle_then_stop(vec![a], &dir).await;
}
