//! Two SFU nodes joined through the cluster fabric (QUIC + mTLS on loopback):
//! each sees the other's gossiped load, and asks for exact load over the
//! fabric.

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use mafalda::cluster::{GetNodeLoad, Home, LOAD_ACTOR};
use mafalda::home::candidates;
use mafalda::ids::RoomId;
use mafalda_actors::NodeId;

#[actix_rt::test]
async fn nodes_gossip_load_and_answer_load_asks() {
    let dir = certs(&["sfu-a", "sfu-b"]);
    let a = start_node(clustered("sfu-a", &dir, vec![])).await;
    let a_addr = cluster(&a).node().addr();
    let b = start_node(clustered("sfu-b", &dir, vec![a_addr])).await;

    eventually("b sees a alive", Duration::from_secs(15), async || {
        cluster(&b)
            .members()
            .iter()
            .any(|m| m.node == "sfu-a" && m.state == "alive")
            .then_some(())
    })
    .await;

    // A peer joins and publishes on node A: B learns it from gossip.
    let mut peer = Client::connect(a.http_addr).await;
    peer.join("spanning", "p").await;
    publish_video(&mut peer, 42).await;
    eventually("b sees a's load", Duration::from_secs(15), async || {
        cluster(&b)
            .members()
            .iter()
            .any(|m| {
                m.node == "sfu-a"
                    && m.load
                        .is_some_and(|l| l.peers == 1 && l.rooms == 1 && l.workers == 1)
            })
            .then_some(())
    })
    .await;

    // Exact figures over the fabric: B asks A's load actor.
    let a_id = NodeId::new("sfu-a").unwrap();
    let load = cluster(&b)
        .node()
        .actor_ref::<GetNodeLoad>(&a_id, LOAD_ACTOR)
        .expect("valid actor name")
        .ask(GetNodeLoad)
        .await
        .expect("load ask");
    assert_eq!(
        (
            load.node.as_str(),
            load.peers,
            load.producers,
            load.transports
        ),
        ("sfu-a", 1, 1, 1)
    );

    // /api/status of B lists A.
    let status: serde_json::Value = reqwest_status(b.http_addr).await;
    let members = status["cluster"]["members"].as_array().expect("members");
    assert!(members.iter().any(|m| m["node"] == "sfu-a"), "{status}");

    drop(peer);
    wait_idle(&a).await;
    // A leaves: B sees it go.
    a.stop().await;
    eventually("b sees a gone", Duration::from_secs(15), async || {
        let alive = cluster(&b)
            .members()
            .iter()
            .any(|m| m.node == "sfu-a" && m.state == "alive");
        (!alive).then_some(())
    })
    .await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_room_home_is_found_by_asking_candidates_in_rendezvous_order() {
    let dir = certs(&["home-a", "home-b"]);
    let a = start_node(clustered("home-a", &dir, vec![])).await;
    let b = start_node(clustered("home-b", &dir, vec![cluster(&a).node().addr()])).await;
    let a_id = NodeId::new("home-a").unwrap();
    let b_id = NodeId::new("home-b").unwrap();
    for (me, other) in [(&a, "home-b"), (&b, "home-a")] {
        eventually(
            "the other node alive",
            Duration::from_secs(15),
            async || {
                cluster(me)
                    .members()
                    .iter()
                    .any(|m| m.node == other && m.state == "alive")
                    .then_some(())
            },
        )
        .await;
    }
    // Both nodes rank the candidates alike.
    let view = cluster(&a).home_view();
    assert_eq!(view.len(), 2, "{view:?}");
    let room = (0..)
        .map(|i| RoomId::new(format!("home-{i}")))
        .find(|r| candidates(r, &view)[0] == a_id)
        .unwrap();
    assert_eq!(
        candidates(&room, &cluster(&b).home_view()),
        vec![a_id.clone(), b_id.clone()]
    );

    // Nobody hosts it: the top candidate is where it should be created.
    let per_ask = Duration::from_secs(2);
    let want_create = Home::Create {
        top: a_id.clone(),
        unanswered: vec![],
    };
    for n in [&a, &b] {
        assert_eq!(
            cluster(n).find_home(&room, per_ask).await.unwrap(),
            want_create
        );
    }

    // A join arrives on B: B's room finds that nobody hosts the room and
    // that A is the top candidate, so it attaches to A as a shard, and A's
    // registry starts the room there as its home. Both then find A.
    let mut peer = Client::connect(b.http_addr).await;
    peer.join(room.as_str(), "p").await;
    for n in [&a, &b] {
        eventually_ok("the home on A", TIMEOUT, async || {
            match cluster(n).find_home(&room, per_ask).await.unwrap() {
                Home::Hosted(h) if h == a_id => Ok(()),
                other => Err(other),
            }
        })
        .await;
    }
    // A hosts the room for B's participant only: no peer on A.
    assert_eq!(status(&a).await.peers, 0);

    // Once B's participant leaves, B's shard closes and detaches, and the
    // home, with neither peers nor shards, closes too.
    drop(peer);
    wait_idle(&b).await;
    wait_idle(&a).await;
    assert_eq!(
        cluster(&a).find_home(&room, per_ask).await.unwrap(),
        want_create
    );
    b.stop().await;
    a.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// GET /api/status as JSON.
async fn reqwest_status(addr: std::net::SocketAddr) -> serde_json::Value {
    serde_json::from_str(&http_get(addr, "/api/status").await).expect("json status")
}
