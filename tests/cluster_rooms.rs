//! A room spanning two nodes: the room's home (found by the home rule)
//! relays the room map between the nodes' shards, a producer on node A is
//! offered to B's peers, and B's subscribers receive it through a
//! cross-node pipe (QUIC handshake, mediasoup PipeTransports on each
//! node's fabric address). Real RTP measured by the loadgen engine; then
//! pause, resume and close across nodes, and bad fabric input.

mod common;

use std::time::Duration;

use common::across::{all_flowing, Across};
use common::cluster::*;
use common::*;
use mafalda::ids::{PeerId, RoomId, RouterLoc, WorkerSlot};
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::FacadeTarget;
use mafalda::node::RunningNode;
use mafalda::registry::ROOMS_ACTOR;
use mafalda::room::fabric::{PipeTuple, RoomCall, ShardCall, ShardError};
use mafalda::room::wire::AsJson;
use mafalda::room::ProducerInfo;
use mafalda::room::RoomError;
use mafalda::sfu::{Sfu, SfuError};
use mafalda_actors::NodeId;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn two_nodes(tag: &str) -> (RunningNode, RunningNode, std::path::PathBuf) {
    let (na, nb) = (format!("{tag}-a"), format!("{tag}-b"));
    let dir = certs(&[&na, &nb]);
    let a = start_node(clustered(&na, &dir, vec![])).await;
    let b = start_node(clustered(&nb, &dir, vec![cluster(&a).node().addr()])).await;
    eventually(
        "the nodes to see each other",
        Duration::from_secs(15),
        async || {
            let ok = cluster(&a)
                .members()
                .iter()
                .any(|m| m.node == nb && m.state == "alive")
                && cluster(&b)
                    .members()
                    .iter()
                    .any(|m| m.node == na && m.state == "alive");
            ok.then_some(())
        },
    )
    .await;
    (a, b, dir)
}

fn pipes(s: &mafalda::server::NodeStatus) -> (i64, i64, i64) {
    let w = &s.worker_details[0].counts;
    (w.pipe_transports, w.pipe_producers, w.pipe_consumers)
}

#[actix_rt::test]
async fn a_producer_on_one_node_reaches_subscribers_on_another() {
    let (a, b, dir) = two_nodes("span").await;
    let room = RoomId::new("spanning");
    // The room's shard on B exists once a participant is there.
    let b_keeper = join_on(&b, &room, "keeper").await;
    let target = Across::new(
        vec![
            FacadeTarget::new(Sfu::from_node(&a), room.as_str())
                .await
                .unwrap(),
            FacadeTarget::new(Sfu::from_node(&b), room.as_str())
                .await
                .unwrap(),
        ],
        vec![0],
        vec![1],
    );
    let tracks = Tracks {
        audio: true,
        video: true,
    };
    let mut session = Session::new(target, tracks, LOCALHOST, 1).expect("engine");
    session.add_publisher().await.expect("publisher on A");
    for _ in 0..3 {
        session.add_subscriber().await.expect("subscriber on B");
    }
    assert_eq!(session.streams(), 6);
    eventually_ok("media across nodes", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if all_flowing(&s) {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    // One link (a pipe transport on each node) carries both streams to the
    // three subscribers: two pipe consumers on A, two pipe producers on B.
    let (sa, sb) = (status(&a).await, status(&b).await);
    assert_eq!(pipes(&sa), (1, 0, 2), "A: {sa:?}");
    assert_eq!(pipes(&sb), (1, 2, 0), "B: {sb:?}");
    // Status shows the room's home, its shard, and the link between them.
    let (ra, rb) = (&sa.room_details[0], &sb.room_details[0]);
    let (an, bn) = (sa.node.clone(), sb.node.clone());
    let (home, shard) = if ra.role == "home" {
        (ra, rb)
    } else {
        (rb, ra)
    };
    assert_eq!((home.role, shard.role), ("home", "shard"), "{ra:?} {rb:?}");
    assert_eq!(shard.home, home.home, "both name the same home");
    assert_eq!(home.shards.len(), 1, "{home:?}");
    assert_eq!((ra.peers, ra.remote_peers), (1, 4), "{ra:?}");
    assert_eq!((rb.peers, rb.remote_peers), (4, 1), "{rb:?}");
    assert_eq!((ra.producers, rb.remote_producers), (2, 2));
    assert_eq!(ra.links_out.len(), 1, "{ra:?}");
    assert_eq!(ra.links_out[0].hops, 2);
    assert!(ra.links_out[0].from.starts_with(&an) && ra.links_out[0].to.starts_with(&bn));
    assert_eq!(rb.links_in.len(), 1, "{rb:?}");
    assert!(rb.links_in[0].from.starts_with(&an));
    let w = session
        .measure(Duration::from_millis(300), Duration::from_secs(2))
        .await;
    assert!(w.expected > 0 && w.received > 0, "{w:?}");
    assert!(w.loss_pct < 1.0, "loss across nodes: {w:?}");

    // A late joiner on B: mediasoup holds its video back until a keyframe,
    // which it asks for across the pipe, up to the sender on A.
    let requests_before = session.sender().snapshot().totals.keyframe_requests;
    let late = session.add_subscriber().await.expect("late joiner on B");
    let prefix = format!("{late}<-");
    eventually_ok("the late joiner's video", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        let video = s.streams.iter().any(|st| {
            st.label.starts_with(&prefix) && st.label.ends_with(":Vp8") && st.packets > 0
        });
        if video {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    assert!(
        session.sender().snapshot().totals.keyframe_requests > requests_before,
        "the late joiner's keyframe request crossed the nodes to the sender"
    );

    // Everyone leaves: the pipes close on both nodes, and nothing leaks.
    session.finish().await;
    drop(b_keeper);
    wait_idle(&a).await;
    wait_idle(&b).await;
    let (sa, sb) = (status(&a).await, status(&b).await);
    assert_eq!((pipes(&sa), pipes(&sb)), ((0, 0, 0), (0, 0, 0)));
    b.stop().await;
    a.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A participant `name` of `room` through node `n`.
async fn join_on(n: &RunningNode, room: &RoomId, name: &str) -> mafalda::sfu::Participant {
    Sfu::from_node(n)
        .room(room.as_str())
        .await
        .expect("room")
        .join(name)
        .await
        .expect("join")
}

#[actix_rt::test]
async fn fan_out_across_nodes_is_a_tree() {
    // With a fan-out of 1, node A feeds one node; the third node gets the
    // stream through the second, not from A.
    let (nodes, dir) = three_nodes("tree", |c| c.placement.pipe_fanout = 1).await;
    let room = RoomId::new("tree");
    let facade = |n: &RunningNode| FacadeTarget::new(Sfu::from_node(n), room.as_str());
    let target = Across::new(
        vec![
            facade(&nodes[0]).await.unwrap(),
            facade(&nodes[1]).await.unwrap(),
            facade(&nodes[2]).await.unwrap(),
        ],
        vec![0],
        vec![1, 2],
    );
    let tracks = Tracks {
        audio: false,
        video: true,
    };
    let mut session = Session::new(target, tracks, LOCALHOST, 1).expect("engine");
    session.add_publisher().await.expect("publisher on A");
    // Subscribers on B, then C, then B and C again.
    for _ in 0..4 {
        session.add_subscriber().await.expect("subscriber");
    }
    eventually_ok("media on B and C", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if s.streams.len() == 4 && s.streams.iter().all(|st| st.packets > 0) {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    let w = session
        .measure(Duration::from_millis(300), Duration::from_secs(2))
        .await;
    assert!(w.received > 0 && w.loss_pct < 1.0, "{w:?}");
    let views: Vec<_> = futures::future::join_all(nodes.iter().map(status)).await;
    let (va, vb, vc) = (
        &views[0].room_details[0],
        &views[1].room_details[0],
        &views[2].room_details[0],
    );
    let (na, nb) = (&views[0].node, &views[1].node);
    // A feeds B only; B feeds C; C takes it from B.
    assert_eq!(va.links_out.len(), 1, "A: {va:?}");
    assert!(va.links_out[0].to.starts_with(nb.as_str()), "A: {va:?}");
    assert_eq!(vb.links_out.len(), 1, "B: {vb:?}");
    assert!(
        vb.links_in.iter().any(|l| l.from.starts_with(na.as_str())),
        "B: {vb:?}"
    );
    assert_eq!(vc.links_in.len(), 1, "C: {vc:?}");
    assert!(vc.links_in[0].from.starts_with(nb.as_str()), "C: {vc:?}");

    session.finish().await;
    idle_then_stop(nodes, &dir).await;
}

#[actix_rt::test]
async fn bad_room_calls_get_typed_errors() {
    let (a, b, dir) = two_nodes("bad").await;
    let room = RoomId::new("guarded");
    let keeper = join_on(&b, &room, "keeper").await;
    let (a_id, b_id) = (
        cluster(&a).node().id().clone(),
        cluster(&b).node().id().clone(),
    );
    let to_b = cluster(&a)
        .node()
        .actor_ref::<RoomCall>(&b_id, ROOMS_ACTOR)
        .unwrap();
    let call = |room: &RoomId, call| RoomCall {
        room: room.clone(),
        from: a_id.clone(),
        call,
        trace: None,
    };
    let ask = async |c: ShardCall| to_b.ask(call(&room, c)).await.expect("fabric ask");
    let b_router = RouterLoc::new(b_id.clone(), WorkerSlot(0));
    let a_router = RouterLoc::new(a_id.clone(), WorkerSlot(0));
    let tuple = PipeTuple {
        ip: LOCALHOST,
        port: 9,
    };
    // A room B does not host.
    let r = to_b
        .ask(call(
            &RoomId::new("nowhere"),
            ShardCall::ProducerGone {
                producer_id: "5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        r.unwrap_err(),
        ShardError::UnknownRoom(RoomId::new("nowhere"))
    );
    // A link from a router B's room does not have (the keeper's is on B's
    // only worker, so slot 7 is unknown).
    let r = ask(ShardCall::OpenLink {
        from: RouterLoc::new(b_id.clone(), WorkerSlot(7)),
        to: a_router.clone(),
        tuple,
        srtp: None,
    })
    .await;
    assert!(matches!(r, Err(ShardError::UnknownRouter(_))), "{r:?}");
    // Garbage SRTP parameters.
    let r = ask(ShardCall::OpenLink {
        from: b_router.clone(),
        to: a_router.clone(),
        tuple,
        srtp: Some(AsJson::from_raw(b"{\"cryptoSuite\": 3}".to_vec())),
    })
    .await;
    assert!(matches!(r, Err(ShardError::BadParameters(_))), "{r:?}");
    // A caller naming another node as its own router's.
    let r = ask(ShardCall::OpenLink {
        from: b_router.clone(),
        to: RouterLoc::new(NodeId::new("someone-else").unwrap(), WorkerSlot(0)),
        tuple,
        srtp: None,
    })
    .await;
    assert!(matches!(r, Err(ShardError::WrongNode(_))), "{r:?}");
    // A bad tuple: port 0.
    let r = ask(ShardCall::OpenLink {
        from: b_router.clone(),
        to: a_router.clone(),
        tuple: PipeTuple {
            ip: LOCALHOST,
            port: 0,
        },
        srtp: None,
    })
    .await;
    assert!(matches!(r, Err(ShardError::BadTuple(_))), "{r:?}");
    // A hop over a link never opened, and of a producer B does not have.
    let r = ask(ShardCall::OpenHop {
        from: b_router.clone(),
        to: RouterLoc::new(a_id.clone(), WorkerSlot(3)),
        producer_id: "5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap(),
    })
    .await;
    assert!(matches!(r, Err(ShardError::UnknownLink(..))), "{r:?}");
    // An announced producer said to live on B itself.
    let r = ask(ShardCall::ProducerAnnounced {
        info: ProducerInfo {
            producer_id: "5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap(),
            peer_id: PeerId::new(),
            kind: mediasoup::prelude::MediaKind::Audio,
            paused: false,
        },
        loc: b_router.clone(),
    })
    .await;
    assert!(matches!(r, Err(ShardError::WrongNode(_))), "{r:?}");
    // None of it left anything behind, and B still serves the room.
    let s = status(&b).await;
    assert_eq!((s.peers, pipes(&s)), (1, (0, 0, 0)), "{s:?}");
    drop(keeper);
    wait_idle(&b).await;
    b.stop().await;
    a.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next event matching `want` (others are skipped), within `TIMEOUT`.
async fn next_event(
    events: &mut tokio::sync::mpsc::Receiver<mafalda::sfu::Event>,
    what: &str,
    want: impl Fn(&mafalda::sfu::Event) -> bool,
) -> mafalda::sfu::Event {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {TIMEOUT:?}"))
            .expect("event queue open");
        if want(&e) {
            return e;
        }
    }
}

#[actix_rt::test]
async fn pause_resume_and_close_cross_nodes() {
    use common::facade::{caps, publish};
    use mafalda::sfu::{ConsumerOptions, Direction, Event};

    let (a, b, dir) = two_nodes("flow").await;
    let room = RoomId::new("flow");
    let publisher = join_on(&a, &room, "publisher").await;
    let b_room = Sfu::from_node(&b).room(room.as_str()).await.unwrap();
    let viewer = b_room.join("viewer").await.unwrap();
    let mut events = viewer.take_events().unwrap();
    let prober = b_room.join("prober").await.unwrap();
    // The room's map reaches B by itself: A's room reports its peer and
    // producer, and the room's home relays them.
    if !viewer
        .join_info()
        .peers
        .iter()
        .any(|p| p.peer_id == publisher.id())
    {
        next_event(
            &mut events,
            "peerJoined of A's peer",
            |e| matches!(e, Event::PeerJoined(i) if i.peer_id == publisher.id()),
        )
        .await;
    }
    let producer = publish(&publisher, 4242).await;
    next_event(
        &mut events,
        "newProducer",
        |e| matches!(e, Event::NewProducer(i) if i.producer_id == producer.id()),
    )
    .await;
    let recv = viewer
        .create_webrtc_transport(Direction::Recv)
        .await
        .unwrap();
    let consumer = recv
        .consume(ConsumerOptions::new(producer.id(), caps()))
        .await
        .expect("consume across nodes");
    assert!(!consumer.producer_paused());
    let probe_recv = prober
        .create_webrtc_transport(Direction::Recv)
        .await
        .unwrap();
    // The pipe producer on B follows the producer on A: a consumer made
    // on B sees what A's producer is.
    let seen_paused = async |want: bool| {
        eventually(
            "B's pipe producer to follow A's producer",
            TIMEOUT,
            async || {
                let c = probe_recv
                    .consume(ConsumerOptions::new(producer.id(), caps()))
                    .await
                    .expect("probe consume");
                (c.producer_paused() == want).then_some(())
            },
        )
        .await
    };
    producer.pause().await.unwrap();
    next_event(
        &mut events,
        "producerPaused",
        |e| matches!(e, Event::ProducerPaused { producer_id } if *producer_id == producer.id()),
    )
    .await;
    seen_paused(true).await;
    producer.resume().await.unwrap();
    next_event(
        &mut events,
        "producerResumed",
        |e| matches!(e, Event::ProducerResumed { producer_id } if *producer_id == producer.id()),
    )
    .await;
    seen_paused(false).await;

    // The producer closes on A: the hop closes on both nodes, B's consumer
    // of it is closed, and B's peers are told the producer is gone.
    producer.close().await.unwrap();
    let (mut consumer_closed, mut producer_closed) = (false, false);
    while !(consumer_closed && producer_closed) {
        match next_event(&mut events, "consumerClosed and producerClosed", |e| {
            matches!(
                e,
                Event::ConsumerClosed { .. } | Event::ProducerClosed { .. }
            )
        })
        .await
        {
            Event::ConsumerClosed { consumer_id, .. } if consumer_id == consumer.id() => {
                consumer_closed = true
            }
            Event::ProducerClosed { producer_id } if producer_id == producer.id() => {
                producer_closed = true
            }
            _ => {}
        }
    }
    for n in [&a, &b] {
        eventually_ok("the pipes to close", TIMEOUT, async || {
            let s = status(n).await;
            if pipes(&s) == (0, 0, 0) {
                Ok(())
            } else {
                Err(s)
            }
        })
        .await;
    }
    drop((
        publisher, producer, viewer, prober, recv, probe_recv, consumer, events,
    ));
    idle_then_stop(vec![a, b], &dir).await;
}

#[actix_rt::test]
async fn a_shard_that_vanishes_mid_handshake_gives_a_typed_error_and_leaks_nothing() {
    use common::facade::{caps, publish};
    use mafalda::sfu::{ConsumerOptions, Direction, Event};

    let (a, b, dir) = two_nodes("gone").await;
    let room = RoomId::new("gone");
    let publisher = join_on(&a, &room, "publisher").await;
    let viewer = join_on(&b, &room, "viewer").await;
    let mut events = viewer.take_events().unwrap();
    let producer = publish(&publisher, 777).await;
    next_event(
        &mut events,
        "newProducer",
        |e| matches!(e, Event::NewProducer(i) if i.producer_id == producer.id()),
    )
    .await;
    let recv = viewer
        .create_webrtc_transport(Direction::Recv)
        .await
        .unwrap();
    // Node A goes away before B opens the pipe: the consume cannot
    // complete, and says why (the pipe handshake finds no one, or B has
    // heard the producer is gone).
    let pid = producer.id();
    a.stop().await;
    let r = recv.consume(ConsumerOptions::new(pid, caps())).await;
    assert!(
        matches!(
            r,
            Err(SfuError::Room(
                RoomError::Remote(_) | RoomError::UnknownProducer(_)
            ))
        ),
        "{r:?}"
    );
    // B holds no pipe for it, and everything goes once B's peer leaves.
    let s = status(&b).await;
    assert_eq!(pipes(&s), (0, 0, 0), "{s:?}");
    drop((publisher, producer, viewer, recv, events));
    wait_idle(&b).await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_room_with_two_homes_converges_to_one_after_they_meet() {
    use common::facade::publish;
    use mafalda::sfu::Event;

    // Two nodes that do not know each other yet (the two sides of a
    // partition): the room opens on both, and each is its home.
    let dir = certs(&["split-a", "split-b"]);
    let a = start_node(clustered("split-a", &dir, vec![])).await;
    let b = start_node(clustered("split-b", &dir, vec![])).await;
    let room = RoomId::new("split");
    let join = |n: &RunningNode, name: &'static str| {
        let sfu = Sfu::from_node(n);
        let room = room.clone();
        async move {
            let p = sfu
                .room(room.as_str())
                .await
                .unwrap()
                .join(name)
                .await
                .unwrap();
            let events = p.take_events().unwrap();
            (p, events)
        }
    };
    let (pa, mut ea) = join(&a, "on-a").await;
    let (pb, mut eb) = join(&b, "on-b").await;
    let producer_a = publish(&pa, 9001).await;
    let producer_b = publish(&pb, 9002).await;
    let role = async |n: &RunningNode| role_in(&status(n).await);
    for n in [&a, &b] {
        eventually_ok("each side hosts the room", TIMEOUT, async || {
            match role(n).await {
                ("home", _) => Ok(()),
                other => Err(other),
            }
        })
        .await;
    }

    // The partition heals: the nodes meet, and the room converges to one
    // home, the one the split-brain rule picks.
    cluster(&b)
        .node()
        .join(cluster(&a).node().addr())
        .await
        .expect("b joins a");
    let (a_id, b_id) = (
        cluster(&a).node().id().clone(),
        cluster(&b).node().id().clone(),
    );
    eventually_ok(
        "one home for the room",
        Duration::from_secs(20),
        async || {
            let (ra, rb) = (role(&a).await, role(&b).await);
            let one_home = match (ra.0, rb.0) {
                ("home", "shard") => rb.1.as_deref() == Some(a_id.as_str()),
                ("shard", "home") => ra.1.as_deref() == Some(b_id.as_str()),
                _ => false,
            };
            if one_home {
                Ok(())
            } else {
                Err((ra, rb))
            }
        },
    )
    .await;
    let view = cluster(&a).home_view();
    let survivor = mafalda::home::survivor(&room, &a_id, &b_id, &view).clone();
    let home = if role(&a).await.0 == "home" {
        a_id.clone()
    } else {
        b_id.clone()
    };
    assert_eq!(home, survivor, "the split-brain rule picks the survivor");
    // Each side's participant now sees the other and its producer.
    next_event(
        &mut ea,
        "peerJoined of B's peer",
        |e| matches!(e, Event::PeerJoined(i) if i.peer_id == pb.id()),
    )
    .await;
    next_event(
        &mut ea,
        "newProducer of B's peer",
        |e| matches!(e, Event::NewProducer(i) if i.producer_id == producer_b.id()),
    )
    .await;
    next_event(
        &mut eb,
        "peerJoined of A's peer",
        |e| matches!(e, Event::PeerJoined(i) if i.peer_id == pa.id()),
    )
    .await;
    next_event(
        &mut eb,
        "newProducer of A's peer",
        |e| matches!(e, Event::NewProducer(i) if i.producer_id == producer_a.id()),
    )
    .await;

    drop((pa, pb, producer_a, producer_b, ea, eb));
    idle_then_stop(vec![a, b], &dir).await;
}
