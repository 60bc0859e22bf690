//! Vertical scaling: one room over several workers of a node, with
//! producers piped between workers, against real mediasoup workers.
//!
//! Media flow itself (RTP through the pipes, keyframes for late joiners) is
//! covered by the browser end-to-end run with `spread` placement over two
//! workers; here we check placement, pipe structure, sharing, propagation of
//! pause and close, worker failure, and exact accounting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mafalda::config::{Config, PlacementMode};
use mafalda::ids::{PeerId, RoomId, WorkerSlot};
use mafalda::node::RunningNode;
use mafalda::room::{
    ActOnProducer, Consume, CreateTransport, Join, Leave, Produce, ProducerAction, RoomActor,
};
use mafalda::room::{Direction, Event};
use mafalda::server::{NodeStatus, Server};
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn spread_config(workers: usize) -> Config {
    let mut c = test_config(workers);
    c.placement.mode = PlacementMode::Spread;
    c
}

/// Waits (bounded) until `check` holds for the node status.
async fn wait_status<F: Fn(&NodeStatus) -> bool>(
    server: &Server,
    what: &str,
    check: F,
) -> NodeStatus {
    eventually_ok(what, TIMEOUT, async || {
        let s = server.status().await.expect("status");
        if check(&s) {
            Ok(s)
        } else {
            Err(s)
        }
    })
    .await
}

fn pipes_idle(s: &NodeStatus) -> bool {
    s.worker_details.iter().all(|w| {
        w.counts.pipe_transports == 0
            && w.counts.pipe_producers == 0
            && w.counts.pipe_consumers == 0
    })
}

fn all_idle(s: &NodeStatus) -> bool {
    s.peers == 0
        && s.transports == 0
        && s.producers == 0
        && s.consumers == 0
        && s.rooms == 0
        && s.routers == 0
        && pipes_idle(s)
        && s.worker_details
            .iter()
            .all(|w| w.counts.peers == 0 && w.counts.routers == 0)
}

/// Joins over the WebSocket and reports the worker the peer was placed on.
async fn join_placed(node: &RunningNode, c: &mut Client, room: &str, name: &str) -> (Value, usize) {
    let before = status(node).await;
    let reply = c.join(room, name).await;
    (reply, placed_on(&before, &status(node).await))
}

async fn recv_transport(c: &mut Client) -> String {
    let t = c
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    c.ok(
        "connectWebRtcTransport",
        json!({"transportId": t["id"], "dtlsParameters": client_dtls()}),
    )
    .await;
    t["id"].as_str().expect("id").to_owned()
}

async fn consume(c: &mut Client, transport: &str, producer: &str) -> Value {
    c.ok(
        "consume",
        json!({"transportId": transport, "producerId": producer, "rtpCapabilities": client_rtp_capabilities()}),
    )
    .await
}

#[actix_rt::test]
async fn peers_on_different_workers_receive_every_producer_through_shared_pipes() {
    let node = start_node(spread_config(2)).await;
    let room = "vertical-1";
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;
    let mut c = Client::connect(node.http_addr).await;
    let mut d = Client::connect(node.http_addr).await;
    let (_, wa) = join_placed(&node, &mut a, room, "A").await;
    let (_, wb) = join_placed(&node, &mut b, room, "B").await;
    let (_, wc) = join_placed(&node, &mut c, room, "C").await;
    let (_, wd) = join_placed(&node, &mut d, room, "D").await;
    // Spread: alternate workers.
    assert_ne!(wa, wb);
    assert_eq!(wc, wa);
    assert_eq!(wd, wb);

    let (_, pa) = publish_video(&mut a, 1000).await;
    let (_, pb) = publish_video(&mut b, 2000).await;
    let ra = recv_transport(&mut a).await;
    let rb = recv_transport(&mut b).await;
    let rc = recv_transport(&mut c).await;
    let rd = recv_transport(&mut d).await;
    // Every subscriber receives every other producer, wherever it lives.
    let mut clients = [a, b, c, d];
    let recv = [ra, rb, rc, rd];
    for (i, p) in [(0, &pb), (1, &pa), (2, &pa), (2, &pb), (3, &pa), (3, &pb)] {
        let r = consume(&mut clients[i], &recv[i], p).await;
        assert_eq!(r["producerId"], json!(p));
        assert_eq!(r["rtpParameters"]["codecs"][0]["mimeType"], "video/VP8");
        clients[i]
            .ok("resumeConsumer", json!({"consumerId": r["id"]}))
            .await;
    }
    let [mut a, mut b, mut c, mut d] = clients;
    let [_, _, _, rd] = recv;

    let s = status(&node).await;
    // One router per worker, one pipe per (producer, other worker), shared by
    // both consumers there.
    assert_eq!((s.rooms, s.routers, s.peers), (1, 2, 4), "{s:?}");
    for w in &s.worker_details {
        assert_eq!(w.counts.routers, 1, "{s:?}");
        assert_eq!(w.counts.pipe_producers, 1, "{s:?}");
        assert_eq!(w.counts.pipe_consumers, 1, "{s:?}");
        assert!(w.counts.pipe_transports >= 1, "{s:?}");
    }
    let pipe_transports: i64 = s
        .worker_details
        .iter()
        .map(|w| w.counts.pipe_transports)
        .sum();
    // 6 WebRTC transports + the pipe transports.
    assert_eq!(s.transports, 6 + pipe_transports, "{s:?}");
    // 2 producers + 2 pipe producers; 6 consumers + 2 pipe consumers.
    assert_eq!((s.producers, s.consumers), (4, 8), "{s:?}");
    // Each worker thread recorded its TID for CPU sampling.
    assert!(s
        .worker_details
        .iter()
        .all(|w| w.cpu_percent >= 0.0 && w.thread_id.is_some_and(|t| t != std::process::id())));

    // Pause travels through the pipe: a consumer created on the other
    // worker after the pause sees the (piped) producer paused.
    a.ok("pauseProducer", json!({"producerId": pa})).await;
    assert_eq!(d.event("producerPaused").await["producerId"], json!(pa));
    eventually("the pause to be piped", TIMEOUT, async || {
        let r = consume(&mut d, &rd, &pa).await;
        (r["producerPaused"] == json!(true)).then_some(())
    })
    .await;
    a.ok("resumeProducer", json!({"producerId": pa})).await;
    eventually("the resume to be piped", TIMEOUT, async || {
        let r = consume(&mut d, &rd, &pa).await;
        (r["producerPaused"] == json!(false)).then_some(())
    })
    .await;

    // Closing a producer closes its pipe and the consumers behind it.
    a.ok("closeProducer", json!({"producerId": pa})).await;
    assert_eq!(b.event("consumerClosed").await["producerId"], json!(pa));
    assert_eq!(d.event("consumerClosed").await["producerId"], json!(pa));
    let s = wait_status(&node.server, "A's pipe to close", |s| {
        s.worker_details[wb].counts.pipe_producers == 0
            && s.worker_details[wa].counts.pipe_consumers == 0
            && s.producers == 2
    })
    .await;
    // B's pipe into A's worker is still there.
    assert_eq!(s.worker_details[wa].counts.pipe_producers, 1, "{s:?}");

    // The pipe of B's producer into A's worker serves A and C; it closes
    // when the last of them leaves, and so does that worker's router.
    c.ok("leave", json!({})).await;
    c.closed().await;
    let s = wait_status(&node.server, "C to leave", |s| s.peers == 3).await;
    assert_eq!(s.worker_details[wa].counts.pipe_producers, 1, "{s:?}");
    a.ok("leave", json!({})).await;
    a.closed().await;
    let s = wait_status(&node.server, "the last pipe to close", |s| {
        pipes_idle(s) && s.peers == 2
    })
    .await;
    assert_eq!(s.worker_details[wa].counts.routers, 0, "{s:?}");
    assert_eq!(s.worker_details[wb].counts.routers, 1, "{s:?}");

    drop((b, d));
    wait_status(&node.server, "everything to close", all_idle).await;
    node.stop().await;
}

async fn join_actor(
    server: &Server,
    room_id: &RoomId,
    name: &str,
    keep: &mut Vec<mpsc::Receiver<Event>>,
) -> (PeerId, usize) {
    let before = server.status().await.unwrap();
    let (tx, rx) = mpsc::channel(1024);
    keep.push(rx);
    // The registry's hold keeps the room open until the join arrives.
    let ticket = server.room(room_id.clone()).await.unwrap().unwrap();
    let reply = ticket
        .addr
        .send(Join {
            display_name: name.into(),
            events: tx,
            hold: ticket.hold,
        })
        .await
        .unwrap()
        .unwrap();
    let after = server.status().await.unwrap();
    (reply.peer_id, placed_on(&before, &after))
}

/// A node with 2 workers (spread), one room, and a publisher with a send
/// transport: the start of the actor-level pipe tests.
struct Publishing {
    server: Server,
    room_id: RoomId,
    room: actix::Addr<RoomActor>,
    keep: Vec<mpsc::Receiver<Event>>,
    publisher: PeerId,
    wp: usize,
    send: mediasoup::prelude::TransportId,
}

async fn publishing(room_name: &str) -> Publishing {
    let server = Server::start(Arc::new(spread_config(2)), Default::default())
        .await
        .expect("workers start");
    let room_id = RoomId::new(room_name);
    let room = server.room(room_id.clone()).await.unwrap().unwrap().addr;
    let mut keep = Vec::new();
    let (publisher, wp) = join_actor(&server, &room_id, "publisher", &mut keep).await;
    let send = room
        .send(CreateTransport {
            peer_id: publisher,
            direction: Direction::Send,
            enable_sctp: false,
        })
        .await
        .unwrap()
        .unwrap()
        .id;
    Publishing {
        server,
        room_id,
        room,
        keep,
        publisher,
        wp,
        send,
    }
}

async fn produce_vp8(
    room: &actix::Addr<RoomActor>,
    peer_id: PeerId,
    transport_id: mediasoup::prelude::TransportId,
    rtp_parameters: Value,
) -> mediasoup::prelude::ProducerId {
    room.send(Produce {
        peer_id,
        transport_id,
        kind: mediasoup::types::rtp_parameters::MediaKind::Video,
        rtp_parameters: serde_json::from_value(rtp_parameters).unwrap(),
    })
    .await
    .unwrap()
    .unwrap()
}

#[actix_rt::test]
async fn concurrent_consumes_from_another_worker_share_one_pipe() {
    let Publishing {
        server,
        room_id,
        room,
        mut keep,
        publisher,
        wp,
        send,
    } = publishing("pipes").await;
    let producer = produce_vp8(&room, publisher, send, vp8_rtp_parameters(4242)).await;

    // Subscribers on the other worker, each with a receive transport.
    let mut subscribers = Vec::new();
    for i in 0..10 {
        let (peer, w) = join_actor(&server, &room_id, &format!("s{i}"), &mut keep).await;
        if w != wp {
            let recv = room
                .send(CreateTransport {
                    peer_id: peer,
                    direction: Direction::Recv,
                    enable_sctp: false,
                })
                .await
                .unwrap()
                .unwrap();
            subscribers.push((peer, recv.id));
        }
    }
    assert_eq!(subscribers.len(), 5);
    let caps: mediasoup::types::rtp_parameters::RtpCapabilities =
        serde_json::from_value(client_rtp_capabilities()).unwrap();
    let consumes = (0..50).map(|i| {
        let (peer_id, transport_id) = subscribers[i % subscribers.len()];
        room.send(Consume {
            peer_id,
            transport_id,
            producer_id: producer,
            rtp_capabilities: caps.clone(),
        })
    });
    for r in futures::future::join_all(consumes).await {
        let reply = r.unwrap().expect("consume succeeds");
        assert_eq!(reply.producer_id, producer);
    }
    let s = server.status().await.unwrap();
    let target = 1 - wp;
    assert_eq!(s.worker_details[target].counts.pipe_producers, 1, "{s:?}");
    assert_eq!(s.worker_details[wp].counts.pipe_consumers, 1, "{s:?}");
    assert_eq!(s.worker_details[target].counts.consumers, 50, "{s:?}");
    assert_eq!((s.producers, s.consumers), (2, 51), "{s:?}");

    // Closing the producer closes the pipe and all 50 consumers.
    room.send(ActOnProducer {
        peer_id: publisher,
        producer_id: producer,
        action: ProducerAction::Close,
    })
    .await
    .unwrap()
    .unwrap();
    wait_status(&server, "pipe and consumers to close", |s| {
        s.producers == 0 && s.consumers == 0 && pipes_idle(s)
    })
    .await;

    room.send(Leave { peer_id: publisher }).await.unwrap();
    for (peer_id, _) in &subscribers {
        room.send(Leave { peer_id: *peer_id }).await.unwrap();
    }
    // The others (on the publisher's worker) leave too.
    room.send(mafalda::room::CloseRoom("test over".into()))
        .await
        .unwrap();
    wait_status(&server, "everything to close", all_idle).await;
    server.shutdown().await;
}

#[actix_rt::test]
async fn a_dead_worker_disconnects_only_its_peers() {
    let node = start_node(spread_config(2)).await;
    let room = "vertical-3";
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;
    let (_, wa) = join_placed(&node, &mut a, room, "A").await;
    let (jb, wb) = join_placed(&node, &mut b, room, "B").await;
    assert_ne!(wa, wb);
    let (_, pa) = publish_video(&mut a, 1000).await;
    let (_, pb) = publish_video(&mut b, 2000).await;
    let ra = recv_transport(&mut a).await;
    let rb = recv_transport(&mut b).await;
    let ca = consume(&mut a, &ra, &pb).await;
    consume(&mut b, &rb, &pa).await;
    assert!(!pipes_idle(&status(&node).await));

    assert!(node.server.kill_worker(WorkerSlot(wb)).await.unwrap());
    // B, on the dead worker, is told to reconnect and dropped.
    let ev = b.event("reconnect").await;
    assert!(ev["reason"].as_str().unwrap().contains("died"), "{ev}");
    b.closed().await;
    // A stays and hears that B and its producer are gone.
    assert_eq!(a.event("producerClosed").await["producerId"], json!(pb));
    assert_eq!(a.event("consumerClosed").await["consumerId"], ca["id"]);
    assert_eq!(a.event("peerLeft").await["peerId"], jb["peerId"]);
    let s = wait_status(&node.server, "the slot to be refilled", |s| {
        s.workers == 2 && s.worker_details[wb].restarts == 1 && pipes_idle(s) && s.peers == 1
    })
    .await;
    assert_eq!((s.rooms, s.routers, s.producers), (1, 1, 1), "{s:?}");
    assert_eq!(s.transports, 2, "{s:?}");

    // A keeps working, and a newcomer (placed on the replacement worker)
    // receives A's producer through a new pipe.
    a.ok("pauseProducer", json!({"producerId": pa})).await;
    a.ok("resumeProducer", json!({"producerId": pa})).await;
    let mut e = Client::connect(node.http_addr).await;
    let (je, we) = join_placed(&node, &mut e, room, "E").await;
    assert_eq!(we, wb);
    assert_eq!(je["producers"][0]["producerId"], json!(pa));
    let re = recv_transport(&mut e).await;
    consume(&mut e, &re, &pa).await;
    let s = status(&node).await;
    assert_eq!(s.worker_details[wb].counts.pipe_producers, 1, "{s:?}");

    drop((a, e));
    wait_status(&node.server, "everything to close", all_idle).await;
    node.stop().await;
}

#[actix_rt::test]
async fn consumes_racing_closes_and_leaves_keep_pipes_exact() {
    let Publishing {
        server,
        room_id,
        room,
        mut keep,
        publisher,
        wp,
        send,
    } = publishing("races").await;
    let mut producers = Vec::new();
    for (mid, ssrc) in [("v1", 100), ("v2", 200)] {
        let mut rtp_parameters = vp8_rtp_parameters(ssrc);
        rtp_parameters["mid"] = json!(mid);
        producers.push(produce_vp8(&room, publisher, send, rtp_parameters).await);
    }
    let mut remote = Vec::new();
    let mut local = Vec::new();
    // Spread alternates workers, but the load model also reads each worker
    // thread's CPU, so on a busy machine the split need not be exact: join
    // until four subscribers sit on the publisher's other worker.
    for i in 0..32 {
        if remote.len() == 4 {
            break;
        }
        let (peer, w) = join_actor(&server, &room_id, &format!("s{i}"), &mut keep).await;
        if w != wp {
            let recv = room
                .send(CreateTransport {
                    peer_id: peer,
                    direction: Direction::Recv,
                    enable_sctp: false,
                })
                .await
                .unwrap()
                .unwrap();
            remote.push((peer, recv.id));
        } else {
            local.push(peer);
        }
    }
    assert_eq!(remote.len(), 4);
    let caps: mediasoup::types::rtp_parameters::RtpCapabilities =
        serde_json::from_value(client_rtp_capabilities()).unwrap();

    // 40 consumes of both producers race the close of the first producer
    // and two subscribers leaving.
    let consumes = futures::future::join_all((0..40).map(|i| {
        let (peer_id, transport_id) = remote[i % remote.len()];
        room.send(Consume {
            peer_id,
            transport_id,
            producer_id: producers[i % 2],
            rtp_capabilities: caps.clone(),
        })
    }));
    let close = room.send(ActOnProducer {
        peer_id: publisher,
        producer_id: producers[0],
        action: ProducerAction::Close,
    });
    let leaves = futures::future::join_all(
        remote[..2]
            .iter()
            .map(|(peer_id, _)| room.send(Leave { peer_id: *peer_id })),
    );
    let (results, closed, _) = futures::join!(consumes, close, leaves);
    closed.unwrap().unwrap();
    let ok = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(_))))
        .count();
    assert!(ok > 0, "some consumes succeed");

    // Only the second producer is still piped, once, and only while a
    // subscriber on the other worker consumes it.
    let target = 1 - wp;
    let s = wait_status(&server, "the closed producer's pipe to go", |s| {
        s.producers == 2 && s.worker_details[target].counts.pipe_producers == 1
    })
    .await;
    assert_eq!(s.worker_details[wp].counts.pipe_consumers, 1, "{s:?}");
    for (peer_id, _) in &remote[2..] {
        room.send(Leave { peer_id: *peer_id }).await.unwrap();
    }
    // The router on the other worker goes with them (a hop still being
    // retried may hold it a moment longer).
    let s = wait_status(&server, "the last pipe and its router to close", |s| {
        pipes_idle(s) && s.consumers == 0 && s.worker_details[target].counts.routers == 0
    })
    .await;
    assert_eq!((s.producers, s.routers), (1, 1), "{s:?}");

    room.send(Leave { peer_id: publisher }).await.unwrap();
    for peer_id in local {
        room.send(Leave { peer_id }).await.unwrap();
    }
    wait_status(&server, "everything to close", all_idle).await;
    server.shutdown().await;
}

/// What the room relies on for late joiners across workers: a keyframe
/// request from a consumer on another worker's router reaches the original
/// producer's sender through the pipe (mediasoup forwards PLI/FIR as RTCP
/// over the pipe transports). Checked with plain RTP transports, since the
/// signalling tests send no media.
#[actix_rt::test]
async fn keyframe_requests_cross_the_pipe_to_the_sender() {
    use mediasoup::prelude::*;
    use mediasoup::types::data_structures::{ListenInfo, Protocol};
    use mediasoup::types::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::net::UdpSocket;

    let localhost = ListenInfo {
        protocol: Protocol::Udp,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    };
    let manager = WorkerManager::new();
    let w1 = manager
        .create_worker(WorkerSettings::default())
        .await
        .unwrap();
    let w2 = manager
        .create_worker(WorkerSettings::default())
        .await
        .unwrap();
    let codecs = mafalda::worker::media_codecs();
    let r1 = w1
        .create_router(RouterOptions::new(codecs.clone()))
        .await
        .unwrap();
    let r2 = w2.create_router(RouterOptions::new(codecs)).await.unwrap();

    // The sender: plain RTP into worker 1 (comedia: mediasoup learns our
    // address from the first packet and sends RTCP back to it).
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut options = PlainTransportOptions::new(localhost.clone());
    options.comedia = true;
    let t1 = r1.create_plain_transport(options).await.unwrap();
    let rtp: RtpParameters = serde_json::from_value(vp8_rtp_parameters(5555)).unwrap();
    let producer = t1
        .produce(ProducerOptions::new(MediaKind::Video, rtp))
        .await
        .unwrap();
    let to = format!("127.0.0.1:{}", t1.tuple().local_port());
    let mut seq: u16 = 0;
    let mut next_rtp = |key: bool| {
        seq += 1;
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
        p.extend_from_slice(&5555_u32.to_be_bytes());
        // VP8 payload descriptor (start of partition), then the payload
        // header: P bit clear + start code + 320x240 for a keyframe.
        p.push(0x10);
        if key {
            p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
        } else {
            p.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        }
        p
    };
    // Whether a PLI or FIR reaches the sender within `wait`, while it keeps
    // sending (keyframes when `key`).
    async fn keyframe_requested(
        sender: &UdpSocket,
        to: &str,
        next_rtp: &mut impl FnMut(bool) -> Vec<u8>,
        key: bool,
        wait: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0_u8; 1500];
        while tokio::time::Instant::now() < deadline {
            sender.send_to(&next_rtp(key), to).await.unwrap();
            while let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(50), sender.recv_from(&mut buf)).await
            {
                // Walk the compound RTCP packet: PT 206 is payload-specific
                // feedback; FMT 1 = PLI, 4 = FIR.
                let mut off = 0;
                while off + 4 <= n {
                    let (fmt, pt) = (buf[off] & 0x1f, buf[off + 1]);
                    if pt == 206 && (fmt == 1 || fmt == 4) {
                        return true;
                    }
                    let words = usize::from(u16::from_be_bytes([buf[off + 2], buf[off + 3]]));
                    off += (words + 1) * 4;
                }
            }
        }
        false
    }

    // Pipe into worker 2. Creating the pipe may itself ask for a keyframe:
    // answer with keyframes until the sender has been left alone for a while.
    let pair = r1
        .pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(r2.clone()))
        .await
        .unwrap();
    eventually("keyframe requests to stop", TIMEOUT, async || {
        let quiet_window = Duration::from_millis(1500);
        let requested = keyframe_requested(&sender, &to, &mut next_rtp, true, quiet_window).await;
        (!requested).then_some(())
    })
    .await;

    // A late joiner on worker 2: its consumer's keyframe request must travel
    // back through the pipe to the sender on worker 1.
    let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let t2 = r2
        .create_plain_transport(PlainTransportOptions::new(localhost))
        .await
        .unwrap();
    t2.connect(PlainTransportRemoteParameters {
        ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port: Some(receiver.local_addr().unwrap().port()),
        rtcp_port: None,
        srtp_parameters: None,
    })
    .await
    .unwrap();
    let caps: RtpCapabilities = serde_json::from_value(client_rtp_capabilities()).unwrap();
    let consumer = t2
        .consume(ConsumerOptions::new(producer.id(), caps))
        .await
        .unwrap();
    consumer.request_key_frame().await.unwrap();
    assert!(
        keyframe_requested(&sender, &to, &mut next_rtp, false, TIMEOUT).await,
        "the late joiner's keyframe request did not reach the sender"
    );
    drop((consumer, pair, producer, t1, t2, r1, r2, w1, w2));
}

/// With `pipe_fanout = 1` a producer reaching three other workers travels
/// down a chain (origin → B → C → D) instead of three pipes out of its own
/// worker; a hop that still feeds another stays when its own consumers
/// leave, and hops close bottom-up once unused.
#[actix_rt::test]
async fn pipes_fan_out_as_a_tree_and_close_bottom_up() {
    let mut config = spread_config(4);
    config.placement.pipe_fanout = 1;
    let node = start_node(config).await;
    let room = "vertical-tree";
    let mut a = Client::connect(node.http_addr).await;
    let (_, wa) = join_placed(&node, &mut a, room, "A").await;
    let (_, pa) = publish_video(&mut a, 1000).await;
    let mut subs = Vec::new();
    let mut slots = vec![wa];
    for name in ["B", "C", "D"] {
        let mut c = Client::connect(node.http_addr).await;
        let (_, w) = join_placed(&node, &mut c, room, name).await;
        assert!(!slots.contains(&w), "spread puts each on its own worker");
        slots.push(w);
        let t = recv_transport(&mut c).await;
        let r = consume(&mut c, &t, &pa).await;
        c.ok("resumeConsumer", json!({"consumerId": r["id"]})).await;
        subs.push((c, t));
    }
    let (wb, wc, wd) = (slots[1], slots[2], slots[3]);
    let s = status(&node).await;
    // A chain: every worker but the last forwards one pipe; every worker
    // but the origin receives one.
    for (slot, out, inn) in [(wa, 1, 0), (wb, 1, 1), (wc, 1, 1), (wd, 0, 1)] {
        let w = &s.worker_details[slot];
        assert_eq!(
            (w.counts.pipe_consumers, w.counts.pipe_producers),
            (out, inn),
            "worker {slot}: {s:?}"
        );
    }

    // Pause and resume travel down the chain, hop by hop: a consumer made
    // at the end of it (three pipes away) sees the producer's state.
    for (method, paused) in [("pauseProducer", true), ("resumeProducer", false)] {
        a.ok(method, json!({"producerId": pa})).await;
        let (d, td) = &mut subs[2];
        let what = format!("{method} to reach the end of the chain");
        eventually(&what, TIMEOUT, async || {
            let r = consume(d, td, &pa).await;
            (r["producerPaused"] == json!(paused)).then_some(())
        })
        .await;
    }

    // B leaves: its hop has no consumer left but still feeds C.
    let (mut b, _) = subs.remove(0);
    b.ok("leave", json!({})).await;
    b.closed().await;
    let s = wait_status(&node.server, "B to leave", |s| s.peers == 3).await;
    assert_eq!(s.worker_details[wb].counts.pipe_producers, 1, "{s:?}");
    assert_eq!(s.worker_details[wb].counts.routers, 1, "{s:?}");
    // D (the leaf) leaves: only its hop goes.
    let (mut d, _) = subs.pop().expect("D");
    d.ok("leave", json!({})).await;
    d.closed().await;
    let s = wait_status(&node.server, "D's hop to close", |s| {
        s.peers == 2 && s.worker_details[wd].counts.pipe_producers == 0
    })
    .await;
    assert_eq!(s.worker_details[wc].counts.pipe_producers, 1, "{s:?}");
    assert_eq!(s.worker_details[wb].counts.pipe_producers, 1, "{s:?}");
    // C leaves: its hop goes, and then B's, which fed only C.
    let (mut c, _) = subs.pop().expect("C");
    c.ok("leave", json!({})).await;
    c.closed().await;
    let s = wait_status(&node.server, "the chain to close", |s| {
        s.peers == 1 && pipes_idle(s)
    })
    .await;
    assert_eq!(s.routers, 1, "only A's router is left: {s:?}");
    drop(a);
    wait_status(&node.server, "everything to close", all_idle).await;
    node.stop().await;
}

/// When a worker in the middle of a pipe chain dies, the consumers below it
/// lose their path: they get `consumerClosed` and then `newProducer` for the
/// same producer, and consuming it again builds a new path.
#[actix_rt::test]
async fn consumers_below_a_dead_hop_are_offered_the_producer_again() {
    let mut config = spread_config(3);
    config.placement.pipe_fanout = 1;
    let node = start_node(config).await;
    let room = "vertical-tree-death";
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;
    let mut c = Client::connect(node.http_addr).await;
    let (_, wa) = join_placed(&node, &mut a, room, "A").await;
    let (_, pa) = publish_video(&mut a, 1000).await;
    let (_, wb) = join_placed(&node, &mut b, room, "B").await;
    let (_, wc) = join_placed(&node, &mut c, room, "C").await;
    assert!(wa != wb && wb != wc && wa != wc);
    let rb = recv_transport(&mut b).await;
    consume(&mut b, &rb, &pa).await;
    let rc = recv_transport(&mut c).await;
    let cc = consume(&mut c, &rc, &pa).await;
    // Chain A → B → C.
    let s = status(&node).await;
    assert_eq!(s.worker_details[wb].counts.pipe_consumers, 1, "{s:?}");

    assert!(node.server.kill_worker(WorkerSlot(wb)).await.unwrap());
    b.event("reconnect").await;
    b.closed().await;
    // C stays, loses its consumer and is offered A's producer again.
    assert_eq!(c.event("consumerClosed").await["consumerId"], cc["id"]);
    assert_eq!(c.event("newProducer").await["producerId"], json!(pa));
    let again = consume(&mut c, &rc, &pa).await;
    assert_eq!(again["producerId"], json!(pa));
    let s = status(&node).await;
    // Now piped straight from A's worker (its only child is gone).
    assert_eq!(s.worker_details[wa].counts.pipe_consumers, 1, "{s:?}");
    assert_eq!(s.worker_details[wc].counts.pipe_producers, 1, "{s:?}");

    drop((a, c));
    wait_status(&node.server, "everything to close", all_idle).await;
    node.stop().await;
}
