//! The node's actors driven directly by messages (no WebSocket), with a real
//! mediasoup worker.

mod common;

use std::sync::Arc;

use common::*;
use mafalda::ids::{RoomId, WorkerSlot};
use mafalda::room::{GetRtpCapabilities, Join, Leave, PeerCount};
use mafalda::server::Server;
use mafalda::worker::WorkerDied;
use tokio::sync::mpsc;

async fn server(workers: usize) -> Server {
    Server::start(Arc::new(test_config(workers)), Default::default())
        .await
        .expect("workers start")
}

#[actix_rt::test]
async fn concurrent_first_joins_share_one_room_and_one_router() {
    let server = server(2).await;
    let room_id = RoomId::new("shared");
    let mut joins = Vec::new();
    let mut keep = Vec::new();
    for i in 0..10 {
        let ticket = server.room(room_id.clone()).await.unwrap().unwrap();
        let (tx, rx) = mpsc::channel(64);
        keep.push(rx);
        joins.push(async move {
            let room = ticket.addr;
            let reply = room
                .send(Join {
                    display_name: format!("p{i}"),
                    events: tx,
                    hold: ticket.hold,
                })
                .await
                .unwrap()
                .unwrap();
            (room, reply.peer_id)
        });
    }
    let joined = futures::future::join_all(joins).await;
    let status = server.status().await.unwrap();
    assert_eq!((status.rooms, status.routers, status.peers), (1, 1, 10));
    let room = joined[0].0.clone();
    assert_eq!(room.send(PeerCount).await.unwrap(), 10);
    room.send(GetRtpCapabilities).await.unwrap().unwrap();

    for (room, peer_id) in joined {
        room.send(Leave { peer_id }).await.unwrap();
    }
    // The empty room closes itself, deregisters, and its router goes away.
    eventually("room to close", TIMEOUT, async || {
        let s = server.status().await.unwrap();
        (s.rooms == 0 && s.routers == 0 && s.peers == 0).then_some(())
    })
    .await;
    // A new join of the same name gets a fresh, working room.
    let ticket = server.room(room_id).await.unwrap().unwrap();
    let room = ticket.addr;
    let (tx, _rx) = mpsc::channel(8);
    let reply = room
        .send(Join {
            display_name: "again".into(),
            events: tx,
            hold: ticket.hold,
        })
        .await
        .unwrap()
        .unwrap();
    room.send(Leave {
        peer_id: reply.peer_id,
    })
    .await
    .unwrap();
    server.shutdown().await;
}

#[actix_rt::test]
async fn a_dead_worker_slot_is_refilled() {
    let server = server(1).await;
    let before = server.status().await.unwrap();
    assert_eq!(before.workers, 1);
    // What the WorkerActor sends when mediasoup reports its worker dead.
    server.pool().do_send(WorkerDied {
        slot: WorkerSlot(0),
        worker_id: mediasoup_worker_id(&server).await,
        reason: "test".into(),
    });
    eventually("replacement worker", TIMEOUT, async || {
        let s = server.status().await.unwrap();
        (s.workers == 1 && s.worker_details[0].restarts == 1).then_some(())
    })
    .await;
    // The refilled slot serves rooms.
    let room = server
        .room(RoomId::new("after"))
        .await
        .unwrap()
        .unwrap()
        .addr;
    room.send(GetRtpCapabilities).await.unwrap().unwrap();
    server.shutdown().await;
}

async fn mediasoup_worker_id(_server: &Server) -> mediasoup::worker::WorkerId {
    // Any id will do: the server acts on the slot.
    let manager = mediasoup::worker_manager::WorkerManager::new();
    let w = manager
        .create_worker(mediasoup::worker::WorkerSettings::default())
        .await
        .unwrap();
    w.id()
}
