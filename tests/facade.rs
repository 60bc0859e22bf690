//! The mediasoup-like facade (`mafalda::sfu`) against real mediasoup
//! workers, with participants spread over two workers (so consumers receive
//! through pipes).

mod common;

use common::facade::*;
use common::*;
use mafalda::room::RoomError;
use mafalda::server::NodeStatus;
use mafalda::sfu::{ConsumerOptions, Direction, Event, ProducerOptions, Sfu, SfuError};
use mediasoup::prelude::{MediaKind, ProducerId};
use mediasoup::types::rtp_parameters::RtpCapabilities;
use tokio::sync::mpsc;

fn pipes(s: &NodeStatus) -> i64 {
    s.worker_details
        .iter()
        .map(|w| w.counts.pipe_producers)
        .sum()
}

/// The next event matching `want` (others are skipped), within `TIMEOUT`.
async fn event_where(events: &mut mpsc::Receiver<Event>, want: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("event within timeout")
            .expect("event queue open");
        if want(&e) {
            return e;
        }
    }
}

#[actix_rt::test]
async fn join_produce_consume_pause_and_close_over_two_workers() {
    let node = start_node(spread_config(2)).await;
    let sfu = Sfu::from_node(&node);
    let room = sfu.room("facade-1").await.expect("room");
    let a = room.join("A").await.expect("A joins");
    let mut a_events = a.take_events().expect("events");
    assert!(a.take_events().is_none(), "events are taken once");
    let b = room.join("B").await.expect("B joins");
    let mut b_events = b.take_events().expect("events");
    assert_eq!(b.join_info().peers.len(), 1);
    let joined = event_where(&mut a_events, |e| matches!(e, Event::PeerJoined(_))).await;
    assert!(matches!(joined, Event::PeerJoined(info) if info.peer_id == b.id()));

    // Spread: one participant per worker.
    let s = sfu.status().await.expect("status");
    assert_eq!(s.peers, 2);
    assert!(
        s.worker_details.iter().all(|w| w.counts.peers == 1),
        "{s:?}"
    );

    let producer = publish(&a, 1000).await;
    assert_eq!(producer.kind(), MediaKind::Video);
    let pid = producer.id();
    let new = event_where(&mut b_events, |e| matches!(e, Event::NewProducer(_))).await;
    assert!(matches!(new, Event::NewProducer(info) if info.producer_id == pid));
    assert!(room.can_consume(&pid, &caps()).await.expect("can_consume"));
    let audio_only: RtpCapabilities =
        serde_json::from_value(audio_only_capabilities()).expect("caps");
    assert!(!room.can_consume(&pid, &audio_only).await.expect("ask"));
    let unknown: ProducerId = "8e7d1e14-5b8c-4f5e-9a51-0d4b2c7f3a10".parse().expect("id");
    assert!(!room.can_consume(&unknown, &caps()).await.expect("ask"));

    let recv = b
        .create_webrtc_transport(Direction::Recv)
        .await
        .expect("recv transport");
    recv.connect(dtls()).await.expect("connect");
    // A send transport cannot consume, nor can a receive transport produce.
    assert!(matches!(
        recv.produce(ProducerOptions::new(MediaKind::Video, vp8(3000)))
            .await,
        Err(SfuError::Room(RoomError::WrongDirection(..)))
    ));
    let consumer = recv
        .consume(ConsumerOptions::new(pid, caps()))
        .await
        .expect("consume");
    assert_eq!(consumer.producer_id(), pid);
    assert_eq!(consumer.kind(), MediaKind::Video);
    assert!(!consumer.rtp_parameters().encodings.is_empty());
    consumer.resume().await.expect("resume");
    consumer.pause().await.expect("pause");
    consumer.resume().await.expect("resume");
    let s = sfu.status().await.expect("status");
    assert_eq!(pipes(&s), 1, "the producer is piped to B's worker: {s:?}");
    // The node's counts include the pipe's producer and consumer.
    assert_eq!((s.producers, s.consumers), (2, 2), "{s:?}");

    producer.pause().await.expect("pause producer");
    event_where(
        &mut b_events,
        |e| matches!(e, Event::ProducerPaused { producer_id } if *producer_id == pid),
    )
    .await;
    producer.resume().await.expect("resume producer");
    event_where(
        &mut b_events,
        |e| matches!(e, Event::ProducerResumed { producer_id } if *producer_id == pid),
    )
    .await;

    producer.close().await.expect("close producer");
    // The room announces the close, then mediasoup closes the consumer.
    event_where(
        &mut b_events,
        |e| matches!(e, Event::ProducerClosed { producer_id } if *producer_id == pid),
    )
    .await;
    event_where(
        &mut b_events,
        |e| matches!(e, Event::ConsumerClosed { consumer_id, .. } if *consumer_id == consumer.id()),
    )
    .await;
    assert!(matches!(
        consumer.resume().await,
        Err(SfuError::Room(RoomError::UnknownConsumer(_)))
    ));
    assert!(matches!(
        producer.pause().await,
        Err(SfuError::Room(RoomError::UnknownProducer(_)))
    ));

    // Dropping A's every handle (the producer holds one) leaves.
    let a_id = a.id();
    drop((a, producer));
    let left = event_where(&mut b_events, |e| matches!(e, Event::PeerLeft { .. })).await;
    assert!(matches!(left, Event::PeerLeft { peer_id } if peer_id == a_id));
    drop((b, recv, consumer, a_events));
    let s = wait_idle(&node).await;
    assert_eq!(pipes(&s), 0);
    node.stop().await;
}

#[actix_rt::test]
async fn dropping_the_last_participant_handle_leaves_the_room() {
    let node = start_node(spread_config(2)).await;
    let sfu = Sfu::from_node(&node);
    let room = sfu.room("facade-2").await.expect("room");
    let a = room.join("A").await.expect("A joins");
    let b = room.join("B").await.expect("B joins");
    let mut b_events = b.take_events().expect("events");
    let producer = publish(&a, 1000).await;
    let recv = b
        .create_webrtc_transport(Direction::Recv)
        .await
        .expect("recv transport");
    recv.connect(dtls()).await.expect("connect");
    let consumer = recv
        .consume(ConsumerOptions::new(producer.id(), caps()))
        .await
        .expect("consume");
    consumer.resume().await.expect("resume");

    // A clone of the participant (inside the producer handle) keeps A in.
    let a_id = a.id();
    drop(a);
    let s = sfu.status().await.expect("status");
    assert_eq!((s.peers, s.producers - pipes(&s)), (2, 1));
    drop(producer);
    let left = event_where(&mut b_events, |e| matches!(e, Event::PeerLeft { .. })).await;
    assert!(matches!(left, Event::PeerLeft { peer_id } if peer_id == a_id));
    let closed = event_where(&mut b_events, |e| matches!(e, Event::ConsumerClosed { .. })).await;
    assert!(
        matches!(closed, Event::ConsumerClosed { consumer_id, .. } if consumer_id == consumer.id())
    );
    // Counts follow mediasoup's close callbacks, which may land just after
    // the events: wait for them (bounded).
    eventually_ok("the counts to settle", TIMEOUT, async || {
        let s = sfu.status().await.expect("status");
        if (s.peers, s.producers, s.consumers) == (1, 0, 0) {
            Ok(())
        } else {
            Err(s)
        }
    })
    .await;

    // The room closes with its last participant; a new join reopens it.
    drop((b, recv, consumer, b_events));
    wait_idle(&node).await;
    let c = room.join("C").await.expect("joins a fresh room");
    assert!(c.join_info().peers.is_empty());
    assert!(!c.rtp_capabilities().await.expect("caps").codecs.is_empty());
    drop(c);
    wait_idle(&node).await;
    node.stop().await;
}
