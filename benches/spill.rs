//! Spill time, side by side with a local join, in one run.
//!
//! Two clustered nodes in this process on loopback (real QUIC + mTLS, one
//! mediasoup worker each). Node A's worker is full after
//! `LOCAL_SUBSCRIBERS` subscribers of one publisher (audio + video). Each
//! round opens a fresh room through A's signalling, adds the publisher
//! and `LOCAL_SUBSCRIBERS` subscribers (served by A), then two more (A is
//! full: both are spilled to B). For every subscriber it measures the time
//! from sending `join` to the first RTP packet of its streams arriving
//! (any stream, and all of them): *local* (A's subscribers), *spill,
//! first* (the join that crosses the watermark: placement on B, the room's
//! shard on B, the cross-node pipe A→B) and *spill, next* (B already
//! receives the streams). Medians over `SPILL_ROUNDS` rounds (default 10).
//!
//! `cargo bench --bench spill`; prints its figures.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use mafalda::config::Config;
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::SignallingTarget;
use mafalda::node::RunningNode;
use mafalda_actors::{tls, NodeId};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The nodes' token key; the bench's participants' tokens are signed with it.
const BENCH_SECRET: &str = "a secret for the spill bench, never for production";
/// Subscribers node A serves before it is full.
const LOCAL_SUBSCRIBERS: usize = 4;
/// Subscribers after that (spilled).
const SPILLED_SUBSCRIBERS: usize = 2;

fn config(name: &str, certs: &Path, seeds: Vec<SocketAddr>) -> Config {
    let mut c = Config::default();
    c.node.name = name.into();
    c.auth.keys = vec![mafalda::auth::AuthKey {
        kid: "bench".into(),
        secret: BENCH_SECRET.into(),
    }];
    c.http.static_dir = "/nonexistent".into();
    c.workers.count = 1;
    c.rtc.enable_tcp = false;
    c.log.level = "warn".into();
    // The publisher's 2 producers and 2 consumers per subscriber.
    c.placement.worker_capacity = (2 + 2 * LOCAL_SUBSCRIBERS) as u32;
    c.placement.watermark = 1.0;
    c.cluster.enabled = true;
    c.cluster.listen = "127.0.0.1:0".parse().expect("addr");
    c.cluster.seeds = seeds;
    c.cluster.ca = certs.join("ca.pem");
    c.cluster.cert = certs.join(format!("{name}.pem"));
    c.cluster.key = certs.join(format!("{name}.key"));
    c.cluster.probe_period_ms = 300;
    c.cluster.suspect_to_down_ms = 900;
    c.cluster.load_publish_ms = 200;
    c
}

async fn start(config: Config) -> RunningNode {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    RunningNode::start(config, listener).await.expect("node")
}

/// Adds a subscriber; answers the time from its `join` to the first packet
/// of any of its streams and of all of them.
async fn timed_subscriber(
    session: &mut Session<SignallingTarget>,
    streams_before: usize,
) -> (Duration, Duration) {
    let t0 = Instant::now();
    session.add_subscriber().await.expect("subscriber");
    let mut first = None;
    loop {
        let active = session.receiver().snapshot().totals.active_streams;
        if first.is_none() && active > streams_before {
            first = Some(t0.elapsed());
        }
        if active >= streams_before + 2 {
            return (first.unwrap_or_else(|| t0.elapsed()), t0.elapsed());
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no media");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn main() {
    mafalda::loadgen::tokens::use_keys(mafalda::auth::AuthKey {
        kid: "bench".into(),
        secret: BENCH_SECRET.into(),
    });
    let rounds: usize = std::env::var("SPILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("mafalda-bench-spill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    tls::write_ca(&dir).expect("ca");
    for n in ["spill-a", "spill-b"] {
        let id = NodeId::new(n).expect("name");
        tls::write_node_cert(&dir, &dir.join("ca.pem"), &dir.join("ca.key"), &id).expect("cert");
    }
    actix_rt::System::new().block_on(async {
        let a = start(config("spill-a", &dir, vec![])).await;
        let seed = a.cluster.as_ref().expect("cluster").node().addr();
        let b = start(config("spill-b", &dir, vec![seed])).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !a
            .cluster
            .as_ref()
            .expect("cluster")
            .members()
            .iter()
            .any(|m| m.state == "alive" && m.load.is_some())
        {
            assert!(Instant::now() < deadline, "the nodes do not see each other");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let url = format!("ws://{}/ws", a.http_addr);
        let (mut local, mut spill_first, mut spill_next) = (Vec::new(), Vec::new(), Vec::new());
        let (mut local_all, mut first_all) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let tracks = Tracks {
                audio: true,
                video: true,
            };
            let target = SignallingTarget::new(url.clone(), format!("spill-bench-{round}"));
            let mut session = Session::new(target, tracks, LOCALHOST, 2).expect("engine");
            session.add_publisher().await.expect("publisher");
            for i in 0..LOCAL_SUBSCRIBERS + SPILLED_SUBSCRIBERS {
                // Placement counts consumers as they are made: let the
                // last subscriber's show before the next join.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (any, all) = timed_subscriber(&mut session, 2 * i).await;
                match i {
                    i if i < LOCAL_SUBSCRIBERS => {
                        local.push(any);
                        local_all.push(all);
                    }
                    i if i == LOCAL_SUBSCRIBERS => {
                        spill_first.push(any);
                        first_all.push(all);
                    }
                    _ => spill_next.push(any),
                }
            }
            let on_b = b.server.status().await.expect("status").peers;
            assert_eq!(
                on_b, SPILLED_SUBSCRIBERS as i64,
                "round {round}: the spilled subscribers are not on B"
            );
            session.finish().await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while a.server.status().await.expect("status").peers
                + b.server.status().await.expect("status").peers
                > 0
            {
                assert!(Instant::now() < deadline, "participants did not leave");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let (l, f, n) = (median(local), median(spill_first), median(spill_next));
        println!("spill time (join to first packet), median of {rounds} rounds, side by side:");
        println!(
            "  local join (A not full)        {l:7.1} ms   all streams {:7.1} ms",
            median(local_all)
        );
        println!(
            "  spilled, first (A -> B)        {f:7.1} ms   all streams {:7.1} ms",
            median(first_all)
        );
        println!("  spilled, next (pipe exists)    {n:7.1} ms");
        println!("  ratio spilled first / local    {:7.2}x", f / l);
        a.stop().await;
        b.stop().await;
    });
    let _ = std::fs::remove_dir_all(dir);
}
