//! A room's home moving between nodes. When the home's node crashes, the
//! surviving shards re-home the room over themselves (the home rule's top
//! survivor becomes the home, the other attaches to it) and rebuild its map
//! from what each reports, while the media between them goes on; when the
//! home's node drains, it hands the home over to another node and stays on
//! as a shard, with no pipe touched. Three clustered nodes in one process
//! (real QUIC, real mediasoup), real RTP measured by the loadgen engine.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::across::{all_flowing, Across};
use common::cluster::*;
use common::facade::{caps, publish};
use common::*;
use mafalda::config::Config;
use mafalda::ids::{PeerId, RoomId};
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::FacadeTarget;
use mafalda::node::RunningNode;
use mafalda::registry::ROOMS_ACTOR;
use mafalda::room::fabric::{RoomCall, ShardCall, ShardError};
use mafalda::server::NodeStatus;
use mafalda::sfu::{ConsumerOptions, Direction, Event, Participant, Sfu};
use mafalda_actors::NodeId;
use mediasoup::prelude::ProducerId;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// How long the survivors may take to see a crashed node down and re-home.
const REHOME: Duration = Duration::from_secs(30);

/// Longest silence allowed on a stream that should not be interrupted.
const MAX_SILENCE_MS: f64 = 1000.0;

/// Every event a participant gets, kept as they come.
struct Heard(Arc<Mutex<Vec<Event>>>);

impl Heard {
    fn of(p: &Participant) -> Self {
        let mut events = p.take_events().expect("events not taken yet");
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        actix_rt::spawn(async move {
            while let Some(e) = events.recv().await {
                sink.lock().expect("not poisoned").push(e);
            }
        });
        Self(heard)
    }

    fn any(&self, want: impl Fn(&Event) -> bool) -> bool {
        self.0.lock().expect("not poisoned").iter().any(want)
    }

    /// Whether it heard that each of `peers` left and each of `producers`
    /// closed.
    fn gone(&self, peers: &[PeerId], producers: &[ProducerId]) -> bool {
        peers
            .iter()
            .all(|p| self.any(|e| matches!(e, Event::PeerLeft { peer_id } if peer_id == p)))
            && producers.iter().all(|p| {
                self.any(|e| matches!(e, Event::ProducerClosed { producer_id } if producer_id == p))
            })
    }

    /// The id of the peer named `name`, once it was heard joining.
    fn peer_named(&self, name: &str) -> Option<PeerId> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .find_map(|e| match e {
                Event::PeerJoined(i) if i.display_name == name => Some(i.peer_id),
                _ => None,
            })
    }
}

/// A participant `name` of `room` through `sfu`.
async fn join(sfu: &Sfu, room: &RoomId, name: &str) -> Participant {
    sfu.room(room.as_str())
        .await
        .expect("room")
        .join(name)
        .await
        .expect("join")
}

/// Node A (which can crash) and nodes B and C, named `{tag}-a`, `-b`,
/// `-c`, each with `config` applied, all seeing each other.
async fn crashable_trio(
    tag: &str,
    config: impl Fn(&mut Config),
) -> (NodeThread, RunningNode, RunningNode, Vec<String>, PathBuf) {
    let names = node_names(tag);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = certs(&refs);
    let node_config = |i: usize, seeds| {
        let mut c = clustered(&names[i], &dir, seeds);
        config(&mut c);
        c
    };
    let a = NodeThread::start(node_config(0, vec![])).await;
    let b = start_node(node_config(1, vec![a.cluster.node().addr()])).await;
    let seeds = vec![a.cluster.node().addr(), cluster(&b).node().addr()];
    let c = start_node(node_config(2, seeds)).await;
    see_each_other(&[&a.cluster, cluster(&b), cluster(&c)], &names).await;
    (a, b, c, names, dir)
}

/// Waits until B and C have re-homed the room after A crashed: the home
/// rule's top of the two is its home, the other its shard. `meanwhile`
/// runs at every look.
async fn survivors_rehomed(
    b: &RunningNode,
    c: &RunningNode,
    room: &RoomId,
    names: &[String],
    mut meanwhile: impl FnMut(),
) {
    let new_home = top_of(room, &[&names[1], &names[2]]);
    eventually_ok("the survivors to re-home the room", REHOME, async || {
        meanwhile();
        let (sb, sc) = (status(b).await, status(c).await);
        if one_home(&[&sb, &sc], room, &new_home) {
            Ok(())
        } else {
            Err((role_in(&sb), role_in(&sc)))
        }
    })
    .await;
}

/// The links of a node's rooms that do not involve node `not`, with the
/// hops they carry out.
fn links_without(s: &NodeStatus, not: &str) -> Vec<(String, String, usize)> {
    s.room_details
        .iter()
        .flat_map(|r| r.links_in.iter().chain(&r.links_out))
        .filter(|l| !l.from.starts_with(not) && !l.to.starts_with(not))
        .map(|l| (l.from.clone(), l.to.clone(), l.hops))
        .collect()
}

/// Whether any link of a node's rooms involves node `node`.
fn links_with(s: &NodeStatus, node: &str) -> bool {
    s.room_details
        .iter()
        .flat_map(|r| r.links_in.iter().chain(&r.links_out))
        .any(|l| l.from.starts_with(node) || l.to.starts_with(node))
}

/// Pipe transports, producers and consumers of the node's only worker.
fn pipes(s: &NodeStatus) -> (i64, i64, i64) {
    let w = &s.worker_details[0].counts;
    (w.pipe_transports, w.pipe_producers, w.pipe_consumers)
}

/// Per-stream packets, and the longest silence seen on chosen streams.
struct Media {
    /// The streams watched for silence, by label.
    watched: Vec<String>,
    longest_silence_ms: f64,
}

impl Media {
    fn watching(watched: Vec<String>) -> Self {
        Self {
            watched,
            longest_silence_ms: 0.0,
        }
    }

    /// Takes a look: packets per watched stream, the longest silence kept.
    fn look<T: mafalda::loadgen::target::Target>(
        &mut self,
        session: &Session<T>,
    ) -> HashMap<String, u64> {
        let snap = session.receiver().snapshot();
        snap.streams
            .iter()
            .filter(|st| self.watched.contains(&st.label))
            .map(|st| {
                let silent = st.silent_ms.unwrap_or(f64::INFINITY);
                self.longest_silence_ms = self.longest_silence_ms.max(silent);
                (st.label.clone(), st.packets)
            })
            .collect()
    }

    /// Waits until every watched stream got `more` packets since `since`,
    /// looking all the while.
    async fn until_grown<T: mafalda::loadgen::target::Target>(
        &mut self,
        session: &Session<T>,
        since: &HashMap<String, u64>,
        more: u64,
    ) {
        eventually_ok("the watched streams to go on", TIMEOUT, async || {
            let now = self.look(session);
            let behind: Vec<&String> = self
                .watched
                .iter()
                .filter(|l| {
                    now.get(*l).copied().unwrap_or(0) < since.get(*l).copied().unwrap_or(0) + more
                })
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("{behind:?}"))
            }
        })
        .await
    }
}

/// A session with a publisher and a subscriber on each of `nodes` (video),
/// every subscriber receiving every publisher; returns once every stream
/// flows.
async fn everyone_everywhere(sfus: Vec<Sfu>, room: &RoomId) -> Session<Across> {
    let mut targets = Vec::new();
    for sfu in sfus {
        targets.push(FacadeTarget::new(sfu, room.as_str()).await.expect("room"));
    }
    let all: Vec<usize> = (0..targets.len()).collect();
    let n = all.len();
    let target = Across::new(targets, all.clone(), all);
    let tracks = Tracks {
        audio: false,
        video: true,
    };
    let mut session = Session::new(target, tracks, LOCALHOST, 1).expect("engine");
    for _ in 0..n {
        session.add_publisher().await.expect("publisher");
    }
    for _ in 0..n {
        session.add_subscriber().await.expect("subscriber");
    }
    eventually_ok("media between every pair of nodes", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if s.streams.len() == n * n && all_flowing(&s) {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    session
}

#[actix_rt::test]
async fn the_survivors_of_a_crashed_home_rehome_the_room_and_their_media_goes_on() {
    let (a, b, c, names, dir) = crashable_trio("crash", |_| {}).await;
    let room = room_homed_on("crash", &names[0], &names);
    // A watcher on B and one on C hear the room's events.
    let (sfu_b, sfu_c) = (Sfu::from_node(&b), Sfu::from_node(&c));
    let watch_b = join(&sfu_b, &room, "watch-b").await;
    let watch_c = join(&sfu_c, &room, "watch-c").await;
    let (heard_b, heard_c) = (Heard::of(&watch_b), Heard::of(&watch_c));
    // A publisher and a subscriber on each node (pub-0 and sub-0 on A).
    let session = everyone_everywhere(vec![a.sfu(), sfu_b.clone(), sfu_c.clone()], &room).await;
    let sa = a.server.status().await.expect("status");
    let (sb, sc) = (status(&b).await, status(&c).await);
    assert!(
        one_home(&[&sa, &sb, &sc], &room, &names[0]),
        "A is the home: {sa:?} {sb:?} {sc:?}"
    );
    let survivor_links = (links_without(&sb, &names[0]), links_without(&sc, &names[0]));
    assert!(!survivor_links.0.is_empty() && !survivor_links.1.is_empty());
    // What lived on A, as B's and C's peers know it.
    let a_peers: Vec<PeerId> = eventually("the watchers to hear A's peers", TIMEOUT, async || {
        let ids: Vec<PeerId> = ["pub-0", "sub-0"]
            .iter()
            .filter_map(|n| heard_b.peer_named(n).or_else(|| heard_c.peer_named(n)))
            .collect();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let a_producers: Vec<ProducerId> = session
        .target()
        .produced
        .iter()
        .filter(|(node, _)| *node == 0)
        .map(|(_, k)| k.0.parse().expect("producer id"))
        .collect();
    // The streams between B and C (either way, and each node's own).
    let target = session.target();
    let between_survivors: Vec<String> = session
        .receiver()
        .snapshot()
        .streams
        .iter()
        .filter(|st| matches!(target.stream_nodes(&st.label), Some((p, s)) if p != 0 && s != 0))
        .map(|st| st.label.clone())
        .collect();
    assert_eq!(between_survivors.len(), 4, "B→B, B→C, C→B, C→C");
    let mut media = Media::watching(between_survivors);
    let at_crash = media.look(&session);

    a.crash().await;

    survivors_rehomed(&b, &c, &room, &names, || {
        media.look(&session);
    })
    .await;
    // Nothing left to or from A: each survivor keeps one link to the other
    // (a pipe transport at each end of each way), one pipe producer of the
    // other's producer and one pipe consumer feeding the other.
    eventually_ok("the pipes with A to go", TIMEOUT, async || {
        media.look(&session);
        let (sb, sc) = (status(&b).await, status(&c).await);
        let clean = |s: &NodeStatus| !links_with(s, &names[0]) && pipes(s) == (2, 1, 1);
        if clean(&sb) && clean(&sc) {
            Ok(())
        } else {
            Err((
                pipes(&sb),
                pipes(&sc),
                sb.room_details.clone(),
                sc.room_details.clone(),
            ))
        }
    })
    .await;
    // The media between B and C went on, over the same links.
    media.until_grown(&session, &at_crash, 100).await;
    eprintln!(
        "longest silence between survivors across the crash: {:.0} ms",
        media.longest_silence_ms
    );
    assert!(
        media.longest_silence_ms < MAX_SILENCE_MS,
        "a stream between survivors was silent for {} ms",
        media.longest_silence_ms
    );
    let (sb, sc) = (status(&b).await, status(&c).await);
    assert_eq!(
        (links_without(&sb, &names[0]), links_without(&sc, &names[0])),
        survivor_links,
        "no link between the survivors was rebuilt"
    );
    // Each survivor knows the other's three peers and one producer.
    for s in [&sb, &sc] {
        let r = &s.room_details[0];
        assert_eq!(
            (r.peers, r.remote_peers, r.remote_producers),
            (3, 3, 1),
            "{r:?}"
        );
    }
    // Their peers heard that A's peers left and its producer closed.
    eventually(
        "B's and C's peers to hear what A had is gone",
        TIMEOUT,
        async || {
            (heard_b.gone(&a_peers, &a_producers) && heard_c.gone(&a_peers, &a_producers))
                .then_some(())
        },
    )
    .await;

    session.finish().await;
    drop((watch_b, watch_c));
    idle_then_stop(vec![b, c], &dir).await;
}

#[actix_rt::test]
async fn what_changed_while_the_home_was_gone_is_rebuilt_when_the_survivors_rehome() {
    // SWIM takes a while to declare the crashed node down, so that the
    // changes below are told to it only, and lost.
    let (a, b, c, names, dir) =
        crashable_trio("stale", |c| c.cluster.suspect_to_down_ms = 3000).await;
    let room = room_homed_on("stale", &names[0], &names);
    let (sfu_b, sfu_c) = (Sfu::from_node(&b), Sfu::from_node(&c));
    let on_a = join(&a.sfu(), &room, "on-a").await;
    let watch_b = join(&sfu_b, &room, "watch-b").await;
    let watch_c = join(&sfu_c, &room, "watch-c").await;
    let (heard_b, heard_c) = (Heard::of(&watch_b), Heard::of(&watch_c));
    let stay_b = join(&sfu_b, &room, "stay-b").await;
    let stay_b_producer = publish(&stay_b, 1100).await.id();
    let leave_b = join(&sfu_b, &room, "leave-b").await;
    let leave_b_producer = publish(&leave_b, 1200).await.id();
    let stay_c = join(&sfu_c, &room, "stay-c").await;
    let stay_c_producer = publish(&stay_c, 2100).await.id();
    let leave_c = join(&sfu_c, &room, "leave-c").await;
    let leave_c_producer = publish(&leave_c, 2200).await.id();
    let close_c = join(&sfu_c, &room, "close-c").await;
    let closed_c_producer = publish(&close_c, 2300).await;
    let counts = async |n: &RunningNode| {
        let s = status(n).await;
        s.room_details
            .first()
            .map(|r| (r.peers, r.remote_peers, r.remote_producers))
    };
    // B: 3 peers, knows C's 4 and A's 1, and C's 3 producers; C: 4 peers,
    // knows B's 3 and A's 1, and B's 2 producers.
    for (n, want) in [(&b, (3, 5, 3)), (&c, (4, 4, 2))] {
        eventually_ok(
            "everyone to know everyone",
            TIMEOUT,
            async || match counts(n).await {
                Some(got) if got == want => Ok(()),
                other => Err(other),
            },
        )
        .await;
    }

    a.crash().await;
    // While A is down but not declared so, a peer leaves on B and on C,
    // and a producer closes on C: B and C tell A (their home) only.
    let (gone_b, gone_c) = (leave_b.id(), leave_c.id());
    leave_b.leave();
    leave_c.leave();
    closed_c_producer.close().await.expect("close");
    for (n, want) in [(&b, 2), (&c, 3)] {
        eventually_ok("the leaves to happen", TIMEOUT, async || {
            match counts(n).await {
                Some((peers, ..)) if peers == want => Ok(()),
                other => Err(other),
            }
        })
        .await;
    }
    let a_down = |n: &RunningNode| {
        cluster(n)
            .members()
            .iter()
            .any(|m| m.node == names[0] && m.state == "down")
    };
    assert!(
        !a_down(&b) && !a_down(&c),
        "the changes were made before A was declared down"
    );

    survivors_rehomed(&b, &c, &room, &names, || {}).await;
    // Nobody lists what left or closed: B knows C's 3 peers (watch, stay,
    // close) and 1 producer; C knows B's 2 peers and 1 producer.
    for (n, want) in [(&b, (2, 3, 1)), (&c, (3, 2, 1))] {
        eventually_ok("the map to be rebuilt", TIMEOUT, async || {
            match counts(n).await {
                Some(got) if got == want => Ok(()),
                other => Err(other),
            }
        })
        .await;
    }
    eventually(
        "B's and C's peers to hear what is gone",
        TIMEOUT,
        async || {
            let b_heard = heard_b.gone(
                &[gone_c, on_a.id()],
                &[leave_c_producer, closed_c_producer.id()],
            );
            let c_heard = heard_c.gone(&[gone_b, on_a.id()], &[leave_b_producer]);
            (b_heard && c_heard).then_some(())
        },
    )
    .await;
    // What stays was never taken back.
    for (heard, kept) in [(&heard_b, stay_c_producer), (&heard_c, stay_b_producer)] {
        assert!(!heard
            .any(|e| matches!(e, Event::ProducerClosed { producer_id } if *producer_id == kept)));
    }

    drop((on_a, watch_b, watch_c, stay_b, stay_c, close_c));
    drop((leave_b, leave_c, closed_c_producer));
    idle_then_stop(vec![b, c], &dir).await;
}

#[actix_rt::test]
async fn a_draining_home_hands_the_room_over_and_media_goes_on() {
    let (nodes, dir) = three_nodes("drain", |_| {}).await;
    let names = node_names("drain");
    let room = room_homed_on("drain", &names[0], &names);
    let sfus = nodes.iter().map(Sfu::from_node).collect();
    let session = everyone_everywhere(sfus, &room).await;
    let statuses = futures::future::join_all(nodes.iter().map(status)).await;
    let refs: Vec<&NodeStatus> = statuses.iter().collect();
    assert!(
        one_home(&refs, &room, &names[0]),
        "A is the home: {statuses:?}"
    );
    let pipes_before: Vec<_> = statuses
        .iter()
        .map(|s| (pipes(s), links_without(s, "nobody")))
        .collect();
    let all_streams = session
        .receiver()
        .snapshot()
        .streams
        .iter()
        .map(|st| st.label.clone())
        .collect();
    let mut media = Media::watching(all_streams);

    // A drains, and the others hear it.
    let a = &nodes[0];
    a.server.env().draining.store(true, Ordering::SeqCst);
    cluster(a).publish_now();
    for n in &nodes[1..] {
        eventually("A to be seen draining", TIMEOUT, async || {
            let seen = cluster(n)
                .members()
                .iter()
                .any(|m| m.node == names[0] && m.draining);
            media.look(&session);
            seen.then_some(())
        })
        .await;
    }
    let moved = a.server.hand_off_homes().await.expect("registry");
    assert_eq!(moved, 1, "the room moves its home");
    // The home rule's top of the others is the home; A and the third node
    // are its shards.
    let new_home = top_of(&room, &[&names[1], &names[2]]);
    eventually_ok("the room's home to move", TIMEOUT, async || {
        media.look(&session);
        let statuses = futures::future::join_all(nodes.iter().map(status)).await;
        let refs: Vec<&NodeStatus> = statuses.iter().collect();
        if one_home(&refs, &room, &new_home) {
            Ok(())
        } else {
            Err(statuses.iter().map(role_in).collect::<Vec<_>>())
        }
    })
    .await;
    // Media between every pair of nodes went on, over the same pipes.
    let at_move = media.look(&session);
    media.until_grown(&session, &at_move, 100).await;
    eprintln!(
        "longest silence across the hand-off: {:.0} ms",
        media.longest_silence_ms
    );
    assert!(
        media.longest_silence_ms < MAX_SILENCE_MS,
        "a stream was silent for {} ms",
        media.longest_silence_ms
    );
    let statuses = futures::future::join_all(nodes.iter().map(status)).await;
    let pipes_after: Vec<_> = statuses
        .iter()
        .map(|s| (pipes(s), links_without(s, "nobody")))
        .collect();
    assert_eq!(pipes_after, pipes_before, "no pipe was closed or rebuilt");

    // A draining node hosts no new home: an attach to it for a room it
    // does not have is sent on to the home rule's top of the others, and
    // starts nothing there.
    let (a_id, b_id) = (
        NodeId::new(&names[0]).unwrap(),
        NodeId::new(&names[1]).unwrap(),
    );
    let elsewhere = RoomId::new("elsewhere");
    let to_a = cluster(&nodes[1])
        .node()
        .actor_ref::<RoomCall>(&a_id, ROOMS_ACTOR)
        .unwrap();
    let r = to_a
        .ask(RoomCall {
            room: elsewhere.clone(),
            from: b_id,
            call: ShardCall::AttachWith {
                peers: vec![],
                producers: vec![],
            },
            trace: None,
        })
        .await
        .expect("fabric ask");
    let sent_to = top_of(&elsewhere, &[&names[1], &names[2]]);
    assert_eq!(
        r.unwrap_err(),
        ShardError::NotHome(Some(NodeId::new(&sent_to).unwrap()))
    );
    assert_eq!(
        status(a).await.room_details.len(),
        1,
        "no room started on A"
    );
    // A room first used on A, whose top candidate A would be, is homed
    // on another node.
    let later = room_homed_on("later", &names[0], &names);
    let on_a = join(&Sfu::from_node(a), &later, "on-a").await;
    let later_home = top_of(&later, &[&names[1], &names[2]]);
    eventually_ok(
        "the later room's home to be elsewhere",
        TIMEOUT,
        async || match role_of(&status(a).await, &later) {
            ("shard", Some(h)) if h == later_home => Ok(()),
            other => Err(other),
        },
    )
    .await;

    drop(on_a);
    session.finish().await;
    idle_then_stop(nodes, &dir).await;
}

/// Consumes `producer` on `recv`, retrying while it fails (the producer
/// not there yet, or its path being rebuilt).
async fn consume_soon(
    recv: &mafalda::sfu::WebRtcTransport,
    producer: ProducerId,
) -> mafalda::sfu::Consumer {
    eventually_ok("a consume to succeed", TIMEOUT, async || {
        recv.consume(ConsumerOptions::new(producer, caps())).await
    })
    .await
}

/// The nodes that links into the node's first room come from.
fn fed_from(s: &NodeStatus) -> Vec<String> {
    s.room_details[0]
        .links_in
        .iter()
        .map(|l| l.from.split('/').next().unwrap_or_default().to_owned())
        .collect()
}

#[actix_rt::test]
async fn a_stream_relayed_through_the_crashed_node_is_offered_again() {
    // With a fan-out of 1, B feeds its producer to A only, and C takes it
    // from A.
    let (a, b, c, names, dir) = crashable_trio("relay", |c| c.placement.pipe_fanout = 1).await;
    let room = room_homed_on("relay", &names[0], &names);
    let publisher = join(&Sfu::from_node(&b), &room, "publisher").await;
    let on_a = join(&a.sfu(), &room, "viewer-a").await;
    let viewer = join(&Sfu::from_node(&c), &room, "viewer-c").await;
    let heard = Heard::of(&viewer);
    let producer = publish(&publisher, 4100).await.id();
    let recv_a = on_a.create_webrtc_transport(Direction::Recv).await.unwrap();
    let _via_a = consume_soon(&recv_a, producer).await;
    let recv_c = viewer
        .create_webrtc_transport(Direction::Recv)
        .await
        .unwrap();
    let first = consume_soon(&recv_c, producer).await;
    assert_eq!(
        fed_from(&status(&c).await),
        vec![names[0].clone()],
        "C takes it from A"
    );

    a.crash().await;

    // C's consumer lost its path: it is closed, and the producer, still
    // there, is offered again.
    let offers = |h: &Heard| {
        h.0.lock()
            .expect("not poisoned")
            .iter()
            .filter(|e| matches!(e, Event::NewProducer(i) if i.producer_id == producer))
            .count()
    };
    eventually("consumerClosed, then newProducer again", REHOME, async || {
        let closed = heard.any(
            |e| matches!(e, Event::ConsumerClosed { consumer_id, .. } if *consumer_id == first.id()),
        );
        (closed && offers(&heard) == 2).then_some(())
    })
    .await;
    // Consuming it again takes it from B, and nothing is left with A.
    let again = consume_soon(&recv_c, producer).await;
    assert!(!again.producer_paused());
    eventually_ok("C to take it from B", TIMEOUT, async || {
        let (sb, sc) = (status(&b).await, status(&c).await);
        if fed_from(&sc) == vec![names[1].clone()] && !links_with(&sb, &names[0]) {
            Ok(())
        } else {
            Err((sb.room_details.clone(), sc.room_details.clone()))
        }
    })
    .await;

    drop((
        publisher, on_a, viewer, recv_a, recv_c, first, again, _via_a,
    ));
    idle_then_stop(vec![b, c], &dir).await;
}
