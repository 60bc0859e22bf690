//! Spill-over between clustered nodes on loopback: a node whose workers
//! are all at their watermark places new participants on its peers (chosen
//! from gossiped load, an exact ask and the peer's admission), while their
//! signalling stays on it. Real mediasoup, real QUIC, real RTP.

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use mafalda::config::Config;
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::SignallingTarget;
use mafalda::node::RunningNode;
use mafalda::room::wire::AsJson;
use mafalda::signalling::SignalError;
use mafalda::spill::wire::{SessionEvent, SessionRequest, SpillError, SpillJoin, SESSIONS_ACTOR};
use mafalda::spill::OpenOrigin;
use serde_json::json;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Producers + consumers a test node's one worker holds before it is full.
const CAPACITY: u32 = 8;

fn small(
    name: &str,
    dir: &std::path::Path,
    seeds: Vec<std::net::SocketAddr>,
    max_peers: u32,
) -> Config {
    let mut c = clustered(name, dir, seeds);
    c.placement.worker_capacity = CAPACITY;
    c.placement.watermark = 1.0;
    c.placement.worker_max_peers = max_peers;
    c
}

/// Nodes `names`, each with a one-worker capacity of [`CAPACITY`] (and
/// `max_peers`), all seeing each other alive.
async fn nodes(names: &[&str], max_peers: u32) -> (Vec<RunningNode>, std::path::PathBuf) {
    let dir = certs(names);
    let first = start_node(small(names[0], &dir, vec![], max_peers)).await;
    let seed = cluster(&first).node().addr();
    let mut all = vec![first];
    for n in &names[1..] {
        all.push(start_node(small(n, &dir, vec![seed], max_peers)).await);
    }
    eventually(
        "every node to see every other alive, with its load",
        Duration::from_secs(15),
        async || {
            all.iter()
                .all(|n| {
                    let m = cluster(n).members();
                    m.iter()
                        .filter(|m| m.state == "alive" && m.load.is_some())
                        .count()
                        == names.len() - 1
                })
                .then_some(())
        },
    )
    .await;
    (all, dir)
}

#[actix_rt::test]
async fn a_full_node_spills_subscribers_to_its_peers() {
    let (all, dir) = nodes(&["spill-a", "spill-b", "spill-c"], 0).await;
    let url = format!("ws://{}/ws", all[0].http_addr);
    let tracks = Tracks {
        audio: true,
        video: true,
    };
    let mut session =
        Session::new(SignallingTarget::new(url, "spilling"), tracks, LOCALHOST, 4).expect("engine");
    session.add_publisher().await.expect("publisher");
    // Every subscriber joins through node A; A holds 2 producers and 3
    // subscribers' 6 consumers before it is full, B and C hold their 2
    // pipe producers and 3 subscribers each.
    let subscribers = 9;
    for i in 0..subscribers {
        session
            .add_subscriber()
            .await
            .unwrap_or_else(|e| panic!("subscriber {i}: {e}"));
        // Placement reads counts that include the last subscriber's
        // consumers.
        let expected = 2 * (i + 1);
        eventually("the subscriber's consumers to count", TIMEOUT, async || {
            let mut total = 0;
            for n in &all {
                let s = status(n).await;
                total += s.consumers - s.worker_details[0].counts.pipe_consumers;
            }
            (total as usize >= expected).then_some(())
        })
        .await;
    }
    let window = session
        .measure(Duration::from_secs(1), Duration::from_secs(2))
        .await;
    assert!(window.received > 0, "{window:?}");
    assert!(
        window.loss_pct < 1.0,
        "loss {}%: {window:?}",
        window.loss_pct
    );
    let mut peers = Vec::new();
    let mut consumers = 0;
    for n in &all {
        let s = status(n).await;
        let w = &s.worker_details[0].counts;
        peers.push(s.peers);
        consumers += s.consumers - w.pipe_consumers;
    }
    println!("peers per node: {peers:?}, client consumers: {consumers}");
    // Every subscriber's signalling is on A, but A carries the media of the
    // publisher and of the subscribers that fit, the others are served by
    // B and C.
    assert_eq!(
        peers.iter().sum::<i64>(),
        1 + subscribers as i64,
        "{peers:?}"
    );
    assert!(peers[1] >= 1 && peers[2] >= 1, "peers per node: {peers:?}");
    assert!(peers[0] <= 4, "A took more than its capacity: {peers:?}");
    // The room holds more client consumers than any node's capacity.
    assert!(
        consumers > i64::from(CAPACITY),
        "{consumers} consumers in the room"
    );
    session.finish().await;
    for n in &all {
        wait_idle(n).await;
    }
    for n in all {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn admission_refuses_when_full_or_draining_and_bad_sessions_are_typed_errors() {
    let (all, dir) = nodes(&["adm-a", "adm-b"], 1).await;
    let (a, b) = (&all[0], &all[1]);
    let fabric = cluster(a).node();
    let b_id = cluster(b).node().id().clone();
    let spill = fabric
        .actor_ref::<SpillJoin>(&b_id, SESSIONS_ACTOR)
        .expect("name");
    let join = |session| SpillJoin {
        origin: fabric.id().clone(),
        session,
        room: "admission".into(),
        display_name: "x".into(),
    };
    // A bad room name is the join's own error, returned to the client.
    let mut bad = join(1);
    bad.room = String::new();
    match spill.ask(bad).await.expect("answer") {
        Err(SpillError::Join(e)) => assert_eq!(
            serde_json::to_value(e.get().expect("decodes").code).unwrap(),
            json!("bad_request")
        ),
        other => panic!("{other:?}"),
    }
    // Draining: refused.
    b.server
        .env()
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        spill.ask(join(2)).await.expect("answer"),
        Err(SpillError::Draining)
    ));
    b.server
        .env()
        .draining
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // Admitted, then a request of a session B does not know, and garbage.
    let accepted = spill.ask(join(3)).await.expect("answer").expect("admitted");
    let reply: serde_json::Value = serde_json::from_str(&accepted.join).expect("JSON");
    assert!(reply["peerId"].is_string(), "{reply}");
    let request = fabric
        .actor_ref::<SessionRequest>(&b_id, SESSIONS_ACTOR)
        .expect("name");
    let ask = |session, frame: &str| {
        let msg = SessionRequest {
            origin: fabric.id().clone(),
            session,
            request: frame.to_owned(),
        };
        let request = request.clone();
        async move { request.ask(msg).await.expect("answer") }
    };
    let code =
        |e: AsJson<SignalError>| serde_json::to_value(e.get().expect("decodes").code).unwrap();
    const CAPS: &str = r#"{"id":1,"method":"getRouterRtpCapabilities"}"#;
    assert_eq!(code(ask(99, CAPS).await.unwrap_err()), json!("not_joined"));
    assert_eq!(
        code(ask(3, "{not json").await.unwrap_err()),
        json!("bad_request")
    );
    let caps = ask(3, CAPS).await.expect("served");
    assert!(caps.contains("routerRtpCapabilities"), "{caps}");
    assert_eq!(status(b).await.peers, 1);
    // Full: B's one worker holds its one allowed peer.
    assert!(matches!(
        spill.ask(join(4)).await.expect("answer"),
        Err(SpillError::Full { .. })
    ));
    // A leave ends the hosted participant.
    let left = ask(3, r#"{"id":2,"method":"leave"}"#).await.expect("left");
    assert_eq!(left, "{}");
    wait_idle(b).await;
    for n in all {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn a_spilled_session_reconnects_when_its_media_node_goes_and_is_dropped_when_its_signalling_node_goes(
) {
    // One participant per worker: the second joiner through A spills to B.
    let (all, dir) = nodes(&["loss-a", "loss-b", "loss-c"], 1).await;
    let (a, b, c) = (&all[0], &all[1], &all[2]);
    let mut first = Client::connect(a.http_addr).await;
    first.join("losing", "first").await;
    let mut second = Client::connect(a.http_addr).await;
    second.join("losing", "second").await;
    let t = second
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    assert!(t["iceCandidates"].is_array(), "{t}");
    let hosts: Vec<i64> = [b, c]
        .iter()
        .map(|n| n.server.env().counters.snapshot().peers)
        .collect();
    assert_eq!(status(a).await.peers, 1);
    assert_eq!(hosts.iter().sum::<i64>(), 1, "{hosts:?}");
    let (host, other) = if hosts[0] == 1 { (b, c) } else { (c, b) };
    // The media node leaves the cluster: the session is told to reconnect,
    // then closed.
    cluster(host).node().shutdown().await;
    let reconnect = second.event("reconnect").await;
    assert!(
        reconnect["reason"].as_str().unwrap_or("").contains("down"),
        "{reconnect}"
    );
    second.closed().await;
    // Joining again places it anew: on the remaining peer.
    let mut again = Client::connect(a.http_addr).await;
    again.join("losing", "second-again").await;
    eventually(
        "the rejoined participant on the other peer",
        TIMEOUT,
        async || (status(other).await.peers == 1).then_some(()),
    )
    .await;
    // Its signalling node goes: the peer drops the participant it hosted.
    cluster(a).node().shutdown().await;
    eventually(
        "the orphaned participant to be dropped",
        Duration::from_secs(15),
        async || (status(other).await.peers == 0).then_some(()),
    )
    .await;
    drop((first, again));
    for n in all {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn a_spilled_session_too_slow_for_its_events_ends_on_both_nodes() {
    let (all, dir) = nodes(&["slow-a", "slow-b"], 0).await;
    let (a, b) = (&all[0], &all[1]);
    let fabric = cluster(a).node();
    let b_id = cluster(b).node().id().clone();
    // A session of A whose media is on B, with room for one event frame,
    // that nobody reads.
    let (session, _frames) = cluster(a)
        .sessions()
        .send(OpenOrigin {
            host: b_id.clone(),
            capacity: 1,
        })
        .await
        .expect("sessions actor");
    fabric
        .actor_ref::<SpillJoin>(&b_id, SESSIONS_ACTOR)
        .expect("name")
        .ask(SpillJoin {
            origin: fabric.id().clone(),
            session,
            room: "slow".into(),
            display_name: "slow".into(),
        })
        .await
        .expect("answer")
        .expect("admitted");
    assert_eq!(status(b).await.peers, 1);
    // Two events for it: the second overflows its queue.
    let events = fabric
        .actor_ref::<SessionEvent>(fabric.id(), SESSIONS_ACTOR)
        .expect("name");
    for _ in 0..2 {
        events
            .tell(SessionEvent {
                session,
                event: r#"{"event":"peerLeft","data":{}}"#.into(),
            })
            .expect("tell");
    }
    // The session ends on A, and its participant leaves B.
    eventually(
        "the participant to leave the media node",
        TIMEOUT,
        async || (status(b).await.peers == 0).then_some(()),
    )
    .await;
    for n in all {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
