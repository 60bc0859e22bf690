//! `/metrics` scraped and parsed with a Prometheus text-format parser: its
//! figures agree with `/api/status` while a participant publishes, and
//! after everyone left; signalling requests are counted by method and
//! result.

mod common;

use common::*;
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;

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
