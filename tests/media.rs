//! Media through a room that spans workers, measured by `mafalda loadgen`'s
//! engine: real RTP (Opus and VP8 shaped) into real mediasoup workers
//! through the `mafalda::sfu` facade and the signalling API, received on
//! real UDP sockets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mafalda::config::{Config, PlacementMode};
use mafalda::ids::WorkerSlot;
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::{FacadeTarget, SignallingTarget, Target};
use mafalda::loadgen::{ReceiverSnapshot, StreamKind};
use mafalda::node::RunningNode;
use mafalda::sfu::Sfu;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const BOTH: Tracks = Tracks {
    audio: true,
    video: true,
};

fn spread(workers: usize, fanout: u32) -> Config {
    let mut c = test_config(workers);
    c.placement.mode = PlacementMode::Spread;
    c.placement.pipe_fanout = fanout;
    c
}

/// Polls the session's receiver until `check` holds (bounded).
async fn wait_media<T: Target>(
    session: &Session<T>,
    what: &str,
    check: impl Fn(&ReceiverSnapshot) -> bool,
) -> ReceiverSnapshot {
    eventually_ok(what, TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if check(&s) {
            Ok(s)
        } else {
            Err(s.totals)
        }
    })
    .await
}

/// A loadgen session (audio and video, one receive socket) on room `room`
/// of `node`, driven through the facade.
async fn facade_session(node: &RunningNode, room: &str) -> Session<FacadeTarget> {
    let target = FacadeTarget::new(Sfu::from_node(node), room)
        .await
        .expect("room");
    Session::new(target, BOTH, LOCALHOST, 1).expect("engine")
}

fn all_flowing(s: &ReceiverSnapshot) -> bool {
    !s.streams.is_empty() && s.streams.iter().all(|st| st.packets > 0)
}

/// The worker slot a join landed on, from the peer counts before and after.
async fn slot_of_next_join<F, Fut, R>(node: &RunningNode, join: F) -> (R, usize)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let before = status(node).await;
    let r = join().await;
    (r, placed_on(&before, &status(node).await))
}

/// Two publishers and four subscribers on four workers, with a pipe fan-out
/// of 1 so that media crosses chains of pipes: every subscriber receives
/// every stream, without loss, and a late joiner's keyframe request travels
/// up the chain to the sender, so its video starts within a second.
#[actix_rt::test]
async fn every_subscriber_receives_every_stream_down_pipe_chains() {
    let node = start_node(spread(4, 1)).await;
    let mut session = facade_session(&node, "media-chain").await;
    session.add_publisher().await.expect("publisher 1");
    session.add_publisher().await.expect("publisher 2");
    for _ in 0..4 {
        session.add_subscriber().await.expect("subscriber");
    }
    assert_eq!(session.streams(), 16);
    wait_media(&session, "every stream to flow", all_flowing).await;
    let s = status(&node).await;
    for w in &s.worker_details {
        // Chains: no worker forwards any of the 4 producers to more than
        // one other (direct pipes would take 3 out of each publisher's
        // worker per producer: 6).
        assert!(w.counts.pipe_consumers <= 4, "{s:?}");
    }
    assert!(
        s.worker_details
            .iter()
            .map(|w| w.counts.pipe_producers)
            .sum::<i64>()
            >= 4,
        "media crosses workers: {s:?}"
    );

    let w = session
        .measure(Duration::from_millis(200), Duration::from_secs(2))
        .await;
    assert!(w.expected > 0 && w.received > 0, "{w:?}");
    assert!(w.loss_pct < 1.0, "loss over pipe chains: {w:?}");
    let snap = session.receiver().snapshot();
    for st in &snap.streams {
        assert!(st.window_packets > 0, "stream {} stalled", st.label);
    }

    // A late joiner: its video can only start with a keyframe (mediasoup
    // holds video back until one comes), and the streams' periodic
    // keyframes are 5 s apart, so video within a second means its request
    // crossed the pipes to the sender.
    let requests_before = session.sender().snapshot().totals.keyframe_requests;
    let joined = Instant::now();
    let late = session.add_subscriber().await.expect("late joiner");
    let prefix = format!("{late}<-");
    // Both publishers' video.
    let snap = wait_media(&session, "the late joiner's video", |s| {
        let video: Vec<_> = s
            .streams
            .iter()
            .filter(|st| st.label.starts_with(&prefix) && st.label.ends_with(":Vp8"))
            .collect();
        video.len() == 2 && video.iter().all(|st| st.packets > 0)
    })
    .await;
    let first_video = joined.elapsed();
    assert!(
        first_video < Duration::from_secs(1),
        "late joiner waited {first_video:?} for video"
    );
    let late_streams: Vec<_> = snap
        .streams
        .iter()
        .filter(|st| st.label.starts_with(&prefix))
        .collect();
    assert_eq!(late_streams.len(), 4, "{late_streams:?}");
    assert!(
        session.sender().snapshot().totals.keyframe_requests > requests_before,
        "the sender got the late joiner's keyframe request"
    );

    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}

/// A worker dies while media flows: the subscriber on it is cut off (and
/// told to reconnect), the others keep receiving without loss.
#[actix_rt::test]
async fn a_dead_worker_leaves_the_other_subscribers_media_flowing() {
    let node = start_node(spread(3, 4)).await;
    let mut session = facade_session(&node, "media-death").await;
    let (publisher, wp) = slot_of_next_join(&node, || session.add_publisher()).await;
    publisher.expect("publisher");
    let mut subs = Vec::new();
    for _ in 0..3 {
        let (sub, slot) = slot_of_next_join(&node, || session.add_subscriber()).await;
        subs.push((sub.expect("subscriber"), slot));
    }
    wait_media(&session, "every stream to flow", all_flowing).await;
    let (victim, dead) = *subs
        .iter()
        .find(|(_, slot)| *slot != wp)
        .expect("a subscriber away from the publisher");
    let survivors: Vec<String> = subs
        .iter()
        .filter(|(_, slot)| *slot != dead)
        .map(|(peer, _)| format!("{peer}<-"))
        .collect();
    assert_eq!(survivors.len(), 2);

    assert!(node
        .server
        .kill_worker(WorkerSlot(dead))
        .await
        .expect("server"));
    // The victim's streams stop; the survivors' keep flowing, without loss.
    let victim_prefix = format!("{victim}<-");
    let killed_at = Instant::now();
    wait_media(&session, "the victim's streams to stop", |s| {
        s.streams
            .iter()
            .filter(|st| st.label.starts_with(&victim_prefix))
            .all(|st| st.silent_ms.is_some_and(|ms| ms > 300.0))
    })
    .await;
    assert!(killed_at.elapsed() < TIMEOUT);
    session.receiver().reset_window();
    let snap = wait_media(&session, "a second of the survivors' media", |s| {
        s.streams
            .iter()
            .filter(|st| survivors.iter().any(|p| st.label.starts_with(p)))
            .all(|st| st.window_packets >= 40)
    })
    .await;
    for st in snap
        .streams
        .iter()
        .filter(|st| survivors.iter().any(|p| st.label.starts_with(p)))
    {
        assert!(
            st.window.lost <= 1,
            "{} lost packets after the kill: {:?}",
            st.label,
            st.window
        );
    }
    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}

/// Sampled measurement (`--measure-one-in`): the target forwards to every
/// subscriber, measured or not, and the measured ones see every stream
/// without loss; the delivered rate is scaled from the sample.
#[actix_rt::test]
async fn sampled_measurement_still_loads_every_subscriber() {
    let node = start_node(spread(2, 4)).await;
    let mut session = facade_session(&node, "media-sampled").await;
    session.measure_one_in(4).expect("drain sockets");
    session.add_publisher().await.expect("publisher");
    for _ in 0..20 {
        session.add_subscriber().await.expect("subscriber");
    }
    let (all, measured) = (session.all_streams(), session.streams());
    assert_eq!(all, 40);
    // The first four subscribers are always measured; all twenty would be
    // a one-in-4^16 draw.
    assert!((8..40).contains(&measured), "measured {measured} of 40");
    let s = status(&node).await;
    let pipes: i64 = s
        .worker_details
        .iter()
        .map(|w| w.counts.pipe_consumers)
        .sum();
    assert_eq!(
        s.consumers - pipes,
        40,
        "a consumer for every subscriber: {s:?}"
    );
    wait_media(&session, "the measured streams to flow", all_flowing).await;
    let w = session
        .measure(Duration::from_millis(200), Duration::from_secs(2))
        .await;
    assert_eq!((w.streams, w.measured_streams), (40, measured));
    assert!(w.received > 0 && w.loss_pct < 1.0, "{w:?}");
    let scaled = w.measured_pps * 40.0 / measured as f64;
    assert!((w.delivered_pps - scaled).abs() < 1e-6, "{w:?}");
    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}

/// With `rtc.key_frame_request_delay_ms`, the keyframe requests of a burst
/// of joins reach the sender as at most two (the first at once, the rest
/// merged at the end of the delay), instead of one per subscriber, and every
/// subscriber still gets video.
#[actix_rt::test]
async fn keyframe_requests_of_a_join_burst_are_merged() {
    let mut config = test_config(1);
    config.rtc.key_frame_request_delay_ms = 3000;
    let node = start_node(config).await;
    let mut session = facade_session(&node, "media-kf-burst").await;
    session.add_publisher().await.expect("publisher");
    session.add_subscriber().await.expect("first subscriber");
    wait_media(&session, "the first subscriber's media", all_flowing).await;
    let before = session.sender().snapshot().totals.keyframe_requests;
    for _ in 0..10 {
        session.add_subscriber().await.expect("subscriber");
        // Space the joins by six frames (audio and video, ~75 ms), longer
        // than a keyframe takes to come back: without the delay, each join
        // would cost its own keyframe.
        let frames = session.sender().snapshot().totals.frames;
        eventually(
            "six more frames (else: the sender stalled)",
            TIMEOUT,
            async || (session.sender().snapshot().totals.frames >= frames + 6).then_some(()),
        )
        .await;
    }
    let requests = || session.sender().snapshot().totals.keyframe_requests - before;
    wait_media(&session, "every subscriber's video", |s| {
        let video = s.streams.iter().filter(|st| st.label.ends_with(":Vp8"));
        video.clone().count() == 11 && video.clone().all(|st| st.packets > 0)
    })
    .await;
    eventually(
        "the burst's request to reach the sender",
        TIMEOUT,
        async || (requests() != 0).then_some(()),
    )
    .await;
    assert!(
        requests() <= 2,
        "10 joins asked the sender for {} keyframes",
        requests()
    );
    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}

/// The same engine over the signalling API (`createPlainTransport`,
/// `connectPlainTransport`): a node's room is loaded like any client would.
#[actix_rt::test]
async fn loadgen_drives_a_node_over_signalling() {
    let node = start_node(spread(2, 4)).await;
    let target = SignallingTarget::new(format!("ws://{}/ws", node.http_addr), "media-ws");
    let mut session = Session::new(target, BOTH, LOCALHOST, 2).expect("engine");
    session.add_publisher().await.expect("publisher");
    for _ in 0..3 {
        session.add_subscriber().await.expect("subscriber");
    }
    assert_eq!(session.streams(), 6);
    let snap = wait_media(&session, "every stream to flow", all_flowing).await;
    assert!(snap
        .streams
        .iter()
        .any(|st| st.label.ends_with(&format!(":{:?}", StreamKind::Vp8))));
    let s = status(&node).await;
    assert_eq!((s.peers, s.producers >= 2), (4, true), "{s:?}");
    // A subscriber leaves: its connection closes, the node forgets it, and
    // its streams are no longer measured.
    session.remove_subscriber().await.expect("leave");
    assert_eq!((session.subscribers(), session.streams()), (2, 4));
    eventually_ok("the node to forget the peer", TIMEOUT, async || {
        let s = status(&node).await;
        if s.peers == 3 {
            Ok(())
        } else {
            Err(s.peers)
        }
    })
    .await;
    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}
