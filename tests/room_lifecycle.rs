//! Room lifetime and the races fixed while restructuring the room: idle
//! close, joins racing a closing room, pause racing close, and a pause
//! racing the creation of a pipe hop. Real mediasoup workers throughout.

mod common;

use common::facade::*;
use common::*;
use mafalda::config::Config;
use mafalda::sfu::{ConsumerOptions, Direction, Event, Sfu};

fn config(workers: usize, idle_close_ms: u64) -> Config {
    let mut c = spread_config(workers);
    c.rooms.idle_close_ms = idle_close_ms;
    // These tests open a send transport per producer, many on one
    // participant.
    c.limits.transports_per_peer = 64;
    c
}

#[actix_rt::test]
async fn a_room_nobody_joins_closes_when_idle() {
    let node = start_node(config(1, 300)).await;
    let sfu = Sfu::from_node(&node);
    let room = sfu.room("idle").await.expect("room");
    // Asking for capabilities makes a router on the way.
    assert!(!room
        .rtp_capabilities()
        .await
        .expect("caps")
        .codecs
        .is_empty());
    assert_eq!(status(&node).await.rooms, 1);
    let s = eventually("the idle room to close", TIMEOUT, || async {
        let s = status(&node).await;
        (s.rooms == 0 && s.routers == 0).then_some(s)
    })
    .await;
    assert_eq!(s.peers, 0);
    // The handle outlives it: a join opens a fresh room of the same name.
    let p = room.join("late").await.expect("joins a fresh room");
    assert_eq!(status(&node).await.rooms, 1);
    drop(p);
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn joins_never_race_a_closing_room() {
    // The room closes the moment its last participant leaves; joins that
    // arrive meanwhile must all land, in this room or a fresh one, with no
    // retry in the facade.
    let node = start_node(config(2, 30_000)).await;
    let sfu = Sfu::from_node(&node);
    for round in 0..20 {
        let room = sfu.room("churn").await.expect("room");
        let first = room.join(format!("first-{round}")).await.expect("join");
        let joins = (0..4).map(|i| {
            let room = room.clone();
            async move { room.join(format!("j{round}-{i}")).await }
        });
        // The only participant leaves while the others are on their way.
        first.leave();
        drop(first);
        for joined in futures::future::join_all(joins).await {
            joined.expect("a join racing the room's close lands");
        }
    }
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn no_pause_event_follows_a_producer_close() {
    let node = start_node(config(2, 30_000)).await;
    let sfu = Sfu::from_node(&node);
    let room = sfu.room("pause-close").await.expect("room");
    let a = room.join("A").await.expect("A");
    let b = room.join("B").await.expect("B");
    let mut b_events = b.take_events().expect("events");
    for ssrc in 1000..1010 {
        let producer = publish(&a, ssrc).await;
        let (paused, closed) = futures::join!(producer.pause(), producer.close());
        closed.expect("close");
        // The pause either landed before the close or was refused.
        let _ = paused;
        // A marker after both: a producer that is only created.
        let marker = publish(&a, ssrc + 100).await;
        let mut after_close = false;
        loop {
            let e = tokio::time::timeout(TIMEOUT, b_events.recv())
                .await
                .expect("event within timeout")
                .expect("queue open");
            match e {
                Event::ProducerClosed { producer_id } if producer_id == producer.id() => {
                    after_close = true
                }
                Event::ProducerPaused { producer_id } if producer_id == producer.id() => {
                    assert!(!after_close, "producerPaused after producerClosed");
                }
                Event::NewProducer(info) if info.producer_id == marker.id() => break,
                _ => {}
            }
        }
        assert!(after_close, "producerClosed was sent");
        marker.close().await.expect("close marker");
    }
    drop((a, b, b_events));
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn a_pause_during_pipe_creation_reaches_the_pipe() {
    // Publisher and subscribers on different workers (spread over 2): the
    // first consume builds a pipe hop while the producer is paused. A later
    // consumer on the same worker receives through that hop and must see
    // the producer paused.
    let node = start_node(config(2, 30_000)).await;
    let sfu = Sfu::from_node(&node);
    let room = sfu.room("pause-pipe").await.expect("room");
    let a = room.join("A").await.expect("A");
    let b = room.join("B").await.expect("B");
    let c = room.join("C (so that D lands with B)").await.expect("C");
    let d = room.join("D").await.expect("D");
    let s = status(&node).await;
    assert!(
        s.worker_details.iter().all(|w| w.counts.peers == 2),
        "spread placement puts two peers on each worker: {s:?}"
    );
    let recv_b = b
        .create_webrtc_transport(Direction::Recv)
        .await
        .expect("B recv");
    let recv_d = d
        .create_webrtc_transport(Direction::Recv)
        .await
        .expect("D recv");
    for ssrc in 2000..2010 {
        let producer = publish(&a, ssrc).await;
        let (first, paused) = futures::join!(
            recv_b.consume(ConsumerOptions::new(producer.id(), caps())),
            producer.pause()
        );
        paused.expect("pause");
        // B may or may not be on the publisher's worker; either way a
        // consumer made after the pause sees it paused.
        drop(first);
        for recv in [&recv_b, &recv_d] {
            let later = recv
                .consume(ConsumerOptions::new(producer.id(), caps()))
                .await
                .expect("consume after the pause");
            assert!(
                later.producer_paused(),
                "the producer was paused before this consume (ssrc {ssrc})"
            );
        }
        producer.close().await.expect("close");
    }
    drop((a, b, c, d, recv_b, recv_d));
    wait_idle(&node).await;
    node.stop().await;
}
