//! Three nodes on loopback: asks and tells between every pair, tell order,
//! ask timeout and cancellation, failure detection, restart and rejoin.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mafalda_actors::{AskError, MemberState, MembershipEvent, NodeMetadata};

#[actix_rt::test]
async fn asks_and_tells_between_every_pair() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-a", vec![]).await;
    let b = start(&pki, "node-b", vec![a.addr()]).await;
    let c = start(&pki, "node-c", vec![a.addr()]).await;
    let nodes = [a.clone(), b.clone(), c.clone()];
    for n in &nodes {
        spawn_worker(n);
    }
    wait_members(&a, &["node-b", "node-c"]).await;
    wait_members(&b, &["node-a", "node-c"]).await;
    wait_members(&c, &["node-a", "node-b"]).await;

    for from in &nodes {
        for to in &nodes {
            let target = from.actor_ref::<Echo>(to.id(), "worker").unwrap();
            let reply = target
                .ask(Echo(format!("hi from {}", from.id())))
                .await
                .unwrap();
            assert_eq!(reply, format!("{}:hi from {}", to.id(), from.id()));
            let push = from.lookup::<Push>(&format!("{}/worker", to.id())).unwrap();
            for seq in 0..3 {
                push.tell(Push {
                    from: from.id().to_string(),
                    seq,
                })
                .unwrap();
            }
        }
    }
    // Each log is read with an ask after the tells; tells and asks use
    // different streams, so wait until all three arrived.
    for from in &nodes {
        for to in &nodes {
            let log = from.actor_ref::<Log>(to.id(), "worker").unwrap();
            let got = eventually("tells delivered", SOON, async || {
                let got = log
                    .ask(Log {
                        from: from.id().to_string(),
                    })
                    .await
                    .unwrap();
                (got.len() == 3).then_some(got)
            })
            .await;
            assert_eq!(got, vec![0, 1, 2]);
        }
    }
    // `resolve` checks the remote registry.
    a.resolve::<Echo>(&id("node-b"), "worker").await.unwrap();
    assert!(matches!(
        a.resolve::<Echo>(&id("node-b"), "nobody").await,
        Err(AskError::UnknownActor { .. })
    ));
    assert!(matches!(
        a.actor_ref::<Nobody>(&id("node-c"), "worker")
            .unwrap()
            .ask(Nobody)
            .await,
        Err(AskError::UnknownMessage { .. })
    ));
    // Metadata gossip (drain flag and opaque application bytes, passed
    // through unread) reaches the other nodes.
    let meta = NodeMetadata {
        draining: true,
        app: (0..=255u8).rev().step_by(3).collect(),
    };
    let mut events = c.events();
    b.set_local_metadata(meta.clone()).unwrap();
    wait_event(&mut events, SOON, "metadata of node-b on node-c", |e| {
        matches!(e, MembershipEvent::Metadata { node, metadata } if node.as_str() == "node-b" && *metadata == meta)
    })
    .await;
    let snapshot = c.members();
    let mb = snapshot.iter().find(|m| m.id.as_str() == "node-b").unwrap();
    assert_eq!(mb.metadata.as_ref(), Some(&meta));
    assert!(b
        .set_local_metadata(NodeMetadata {
            app: vec![0; 4096],
            ..Default::default()
        })
        .is_err());
    for n in &nodes {
        n.shutdown().await;
    }
    assert_no_panic();
}

#[actix_rt::test]
async fn tell_order_holds_for_10k_messages() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-a", vec![]).await;
    let b = start(&pki, "node-b", vec![a.addr()]).await;
    let mut count = spawn_worker(&b);
    wait_members(&a, &["node-b"]).await;
    let push = a.actor_ref::<Push>(b.id(), "worker").unwrap();
    const N: u64 = 10_000;
    for seq in 0..N {
        push.tell(Push {
            from: "a".into(),
            seq,
        })
        .unwrap();
    }
    within("10k tells", SOON, count.wait_for(|c| *c >= N as usize))
        .await
        .unwrap();
    let log = a
        .actor_ref::<Log>(b.id(), "worker")
        .unwrap()
        .ask(Log { from: "a".into() })
        .await
        .unwrap();
    assert_eq!(log, (0..N).collect::<Vec<_>>());
    assert_eq!(b.stats().tells_received, N);
    // Per peer: the same tells and the ask, counted at both ends; bytes
    // and the round-trip time from QUIC.
    let on_a = a.link_stats();
    let on_b = b.link_stats();
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    let (to_b, from_a) = (&on_a[0], &on_b[0]);
    assert_eq!(
        (to_b.peer.as_str(), from_a.peer.as_str()),
        ("node-b", "node-a")
    );
    assert_eq!((to_b.tells_sent, from_a.tells_received), (N, N));
    assert!(
        to_b.asks_sent >= 1 && from_a.asks_received >= 1,
        "{to_b:?} {from_a:?}"
    );
    assert!(
        to_b.bytes_sent > N * 8 && from_a.bytes_received > N * 8,
        "{to_b:?} {from_a:?}"
    );
    assert!(to_b.bytes_received > 0 && from_a.bytes_sent > 0);
    assert!(to_b.rtt.is_some_and(|r| !r.is_zero()), "{to_b:?}");
    a.shutdown().await;
    b.shutdown().await;
    assert_no_panic();
}

#[actix_rt::test]
async fn ask_timeout_and_cancellation_clean_pending() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-a", vec![]).await;
    let b = start(&pki, "node-b", vec![a.addr()]).await;
    spawn_worker(&b);
    wait_members(&a, &["node-b"]).await;
    let slow = a.actor_ref::<Slow>(b.id(), "worker").unwrap();

    // Timeout.
    let err = slow
        .ask_timeout(Slow(60_000), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err, AskError::Timeout(Duration::from_millis(300)));
    assert_eq!(a.pending_asks(), 0);

    // Cancellation by dropping the future.
    let task = actix_rt::spawn({
        let slow = slow.clone();
        async move { slow.ask(Slow(60_000)).await }
    });
    eventually("ask to become pending", SOON, async || {
        (a.pending_asks() != 0).then_some(())
    })
    .await;
    assert_eq!(a.pending_asks_to(b.id()), 1);
    task.abort();
    assert!(task.await.is_err());
    assert_eq!(a.pending_asks(), 0);

    // The link is fine afterwards.
    assert_eq!(slow.ask(Slow(1)).await.unwrap(), 1);
    a.shutdown().await;
    b.shutdown().await;
    assert_no_panic();
}

#[actix_rt::test]
async fn killed_node_is_detected_and_restarted_node_rejoins() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-a", vec![]).await;
    let b = start(&pki, "node-b", vec![a.addr()]).await;
    spawn_worker(&a);
    spawn_worker(&b);
    let c = ThreadNode::start(config(&pki, "node-c", vec![a.addr()]));
    let c_gen = c.node.generation();
    wait_members(&a, &["node-b", "node-c"]).await;
    wait_members(&b, &["node-a", "node-c"]).await;

    // Pending asks to node-c from both other nodes.
    let ask_a = actix_rt::spawn({
        let r = a
            .actor_ref::<Slow>(&id("node-c"), "worker")
            .unwrap()
            .with_timeout(Duration::from_secs(120));
        async move { r.ask(Slow(600_000)).await }
    });
    let ask_b = actix_rt::spawn({
        let r = b
            .actor_ref::<Slow>(&id("node-c"), "worker")
            .unwrap()
            .with_timeout(Duration::from_secs(120));
        async move { r.ask(Slow(600_000)).await }
    });
    let mut ev_a = a.events();
    let mut ev_b = b.events();
    eventually("asks pending", SOON, async || {
        (a.pending_asks() != 0 && b.pending_asks() != 0).then_some(())
    })
    .await;

    let swim = mafalda_actors::SwimConfig::fast();
    let detection = swim.detection_time(3);
    let limit = detection * 4 + Duration::from_secs(5);
    let killed_at = Instant::now();
    c.kill();
    for (name, ev) in [("node-a", &mut ev_a), ("node-b", &mut ev_b)] {
        wait_event(
            ev,
            limit,
            &format!("{name} to see node-c down"),
            |e| matches!(e, MembershipEvent::Down(n) if n.as_str() == "node-c"),
        )
        .await;
    }
    let detected = killed_at.elapsed();
    eprintln!("node-c down seen after {detected:?} (configured detection time {detection:?})");
    for ask in [ask_a, ask_b] {
        let result = within("pending ask to fail", SOON, ask).await.unwrap();
        assert!(
            matches!(result, Err(AskError::Unreachable { .. })),
            "{result:?}"
        );
    }
    assert_eq!(a.pending_asks(), 0);
    assert_eq!(b.pending_asks(), 0);
    // Asks to a down node fail fast.
    let err = a
        .actor_ref::<Echo>(&id("node-c"), "worker")
        .unwrap()
        .ask(Echo("x".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::Unreachable { .. }), "{err:?}");

    // Restart node-c: same name, new port, new generation.
    let c2 = ThreadNode::start(config(&pki, "node-c", vec![b.addr()]));
    assert!(c2.node.generation() > c_gen);
    for ev in [&mut ev_a, &mut ev_b] {
        wait_event(ev, SOON, "node-c up again", |e| {
            matches!(e, MembershipEvent::Up(m) if m.id.as_str() == "node-c" && m.generation == c2.node.generation())
        })
        .await;
    }
    for from in [&a, &b] {
        let reply = from
            .actor_ref::<Echo>(&id("node-c"), "worker")
            .unwrap()
            .ask(Echo("again".into()))
            .await
            .unwrap();
        assert_eq!(reply, "node-c:again");
    }
    let back_ref = c2.node.actor_ref::<Echo>(a.id(), "worker").unwrap();
    let back = back_ref.ask(Echo("back".into()));
    assert_eq!(
        within("ask from restarted node", SOON, back).await.unwrap(),
        "node-a:back"
    );
    let member = a
        .members()
        .into_iter()
        .find(|m| m.id.as_str() == "node-c")
        .unwrap();
    assert_eq!(member.state, MemberState::Alive);
    assert_eq!(member.addr, c2.node.addr());
    c2.kill();
    a.shutdown().await;
    b.shutdown().await;
    assert_no_panic();
}

#[actix_rt::test]
async fn simultaneous_dials_keep_exactly_one_link() {
    init();
    let pki = Pki::new();
    for _ in 0..3 {
        let sa = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sb = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (addr_a, addr_b) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
        let mut ca = config(&pki, "node-a", vec![addr_b]);
        ca.endpoint = mafalda_actors::EndpointSource::Socket(sa);
        let mut cb = config(&pki, "node-b", vec![addr_a]);
        cb.endpoint = mafalda_actors::EndpointSource::Socket(sb);
        let (a, b) = futures::future::join(
            mafalda_actors::Node::start(ca, std::future::pending()),
            mafalda_actors::Node::start(cb, std::future::pending()),
        )
        .await;
        let (a, b) = (a.unwrap(), b.unwrap());
        wait_members(&a, &["node-b"]).await;
        wait_members(&b, &["node-a"]).await;
        let la = a.link_info(b.id()).expect("a has a link");
        let lb = b.link_info(a.id()).expect("b has a link");
        assert_ne!(
            la.dialed_by_us, lb.dialed_by_us,
            "both ends agree on one connection"
        );
        spawn_worker(&b);
        let r = a.actor_ref::<Echo>(b.id(), "worker").unwrap();
        assert_eq!(r.ask(Echo("x".into())).await.unwrap(), "node-b:x");
        a.shutdown().await;
        b.shutdown().await;
    }
    assert_no_panic();
}

#[actix_rt::test]
async fn a_second_shutdown_and_stopped_return_once_the_node_stopped() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-twice", vec![]).await;
    a.shutdown().await;
    // Nobody was waiting when the first shutdown finished: the later
    // callers must still see it (they hung forever before).
    within("a second shutdown", Duration::from_secs(5), a.shutdown()).await;
    within("stopped", Duration::from_secs(5), a.stopped()).await;
}
