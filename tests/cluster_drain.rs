//! Graceful drain of a clustered node on loopback: the drain flag is
//! gossiped, new joins are sent elsewhere, participants are told to
//! `reconnect` through a peer's URL while their media keeps flowing, and
//! the node is drained once they left. Operator access is checked.
//! `GET /api/nodes` lists the nodes that take participants (not a
//! draining or stopped one).

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use mafalda::drain::DrainState;
use mafalda::node::RunningNode;
use serde_json::json;

async fn post_drain(node: &RunningNode, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(node.http_addr)
        .await
        .expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /api/drain HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[actix_rt::test]
async fn a_draining_node_sends_everyone_to_a_peer_and_is_drained_once_they_left() {
    let dir = certs(&["drain-a", "drain-b"]);
    let mut ca = clustered("drain-a", &dir, vec![]);
    ca.http.admin_token = Some("s3cret".into());
    // Operators by token only (loopback is an admin network by default).
    ca.http.admin_networks = Vec::new();
    ca.drain.batch_size = 1;
    ca.drain.batch_interval_ms = 100;
    let a = start_node(ca).await;
    let b = start_node(clustered("drain-b", &dir, vec![cluster(&a).node().addr()])).await;
    eventually(
        "the nodes to see each other",
        Duration::from_secs(15),
        async || {
            (cluster(&b).members().iter().any(|m| m.state == "alive")
                && cluster(&a).members().iter().any(|m| m.state == "alive"))
            .then_some(())
        },
    )
    .await;
    let b_url = format!("ws://{}/ws", b.http_addr);
    let mut on_a = [
        Client::connect(a.http_addr).await,
        Client::connect(a.http_addr).await,
    ];
    for (i, c) in on_a.iter_mut().enumerate() {
        c.join("draining", &format!("a{i}")).await;
    }
    let mut on_b = Client::connect(b.http_addr).await;
    on_b.join("draining", "b").await;

    // Operator access: no token, a wrong one, then the right one.
    assert_eq!(post_drain(&a, None).await.0, 403);
    assert_eq!(post_drain(&a, Some("guess")).await.0, 403);
    let (code, body) = post_drain(&a, Some("s3cret")).await;
    assert_eq!(code, 202, "{body}");
    assert!(body.contains(r#""started":true"#), "{body}");
    assert_eq!(a.drain.state(), DrainState::Draining);

    // The flag is gossiped.
    eventually("B to see A draining", Duration::from_secs(5), async || {
        cluster(&b)
            .members()
            .iter()
            .any(|m| m.draining)
            .then_some(())
    })
    .await;
    // New joins on A are sent to B.
    let mut late = Client::connect(a.http_addr).await;
    let refused = late
        .fails(
            "join",
            json!({"room": "draining", "displayName": "late", "token": token("draining", "late")}),
            "draining",
        )
        .await;
    assert_eq!(refused["error"]["url"], json!(b_url), "{refused}");
    // Everyone on A is told to move to B, one per batch; their sockets stay
    // open meanwhile.
    for c in on_a.iter_mut() {
        let r = c.event("reconnect").await;
        assert_eq!(r["url"], json!(b_url), "{r}");
        c.ok("getRouterRtpCapabilities", json!({})).await;
    }
    on_b.ok("getRouterRtpCapabilities", json!({})).await;
    assert_eq!(a.drain.state(), DrainState::Draining);
    // They move: join B, then leave A.
    let mut moved = Vec::new();
    for (i, c) in on_a.iter_mut().enumerate() {
        let mut n = Client::connect(b.http_addr).await;
        n.join("draining", &format!("a{i}")).await;
        moved.push(n);
        c.ok("leave", json!({})).await;
    }
    tokio::time::timeout(Duration::from_secs(10), a.drain.drained())
        .await
        .expect("drained once everyone left");
    assert_eq!(status(&b).await.peers, 3);
    drop((moved, on_b, late));
    a.stop().await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_rt::test]
async fn a_drain_stops_at_its_deadline_and_a_single_node_drains_too() {
    let mut config = test_config(1);
    config.drain.deadline_ms = 500;
    let node = start_node(config).await;
    let mut stays = Client::connect(node.http_addr).await;
    stays.join("stubborn", "stays").await;
    // Without a token, loopback clients may drain.
    let (code, body) = post_drain(&node, None).await;
    assert_eq!(code, 202, "{body}");
    let r = stays.event("reconnect").await;
    assert!(r.get("url").is_none(), "no peer to name: {r}");
    let (code, body) = post_drain(&node, None).await;
    assert_eq!(code, 202, "{body}");
    assert!(body.contains(r#""started":false"#), "{body}");
    tokio::time::timeout(Duration::from_secs(5), node.drain.drained())
        .await
        .expect("drained at the deadline");
    assert_eq!(
        status(&node).await.peers,
        1,
        "the stubborn one is still there"
    );
    node.stop().await;
}

/// `GET /api/nodes` of `node`, as (`url`, `nodes`).
async fn node_list(node: &RunningNode) -> (serde_json::Value, Vec<String>) {
    let body: serde_json::Value =
        serde_json::from_str(&http_get(node.http_addr, "/api/nodes").await).expect("JSON");
    let nodes = body["nodes"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u.as_str().expect("a URL").to_owned())
        .collect();
    (body["url"].clone(), nodes)
}

/// Waits until `GET /api/nodes` of `node` lists exactly `want`.
async fn lists(node: &RunningNode, want: &[&str]) {
    let what = format!("{} to list {want:?}", node.http_addr);
    eventually_ok(&what, Duration::from_secs(15), async || {
        let (_, nodes) = node_list(node).await;
        (nodes == want).then_some(()).ok_or(nodes)
    })
    .await;
}

#[actix_rt::test]
async fn the_node_list_names_the_nodes_that_take_participants() {
    // One node alone lists itself.
    let single = start_node(test_config(1)).await;
    let (own, nodes) = node_list(&single).await;
    let single_url = format!("ws://{}/ws", single.http_addr);
    assert_eq!((own, nodes), (json!(single_url), vec![single_url.clone()]));
    single.stop().await;

    let dir = certs(&["list-a", "list-b", "list-c"]);
    let a = start_node(clustered("list-a", &dir, vec![])).await;
    let seed = vec![cluster(&a).node().addr()];
    let b = start_node(clustered("list-b", &dir, seed.clone())).await;
    let mut cc = clustered("list-c", &dir, seed);
    cc.http.public_url = Some("ws://c.example:3000/ws".into());
    let c = start_node(cc).await;
    let url = |n: &RunningNode| format!("ws://{}/ws", n.http_addr);
    let (a_url, b_url, c_url) = (url(&a), url(&b), "ws://c.example:3000/ws");

    // This node first, then the others by name (C by its public URL).
    lists(&a, &[&a_url, &b_url, c_url]).await;
    lists(&c, &[c_url, &a_url, &b_url]).await;
    assert_eq!(node_list(&a).await.0, json!(a_url));

    // A draining node is left out, by the others and by itself.
    assert!(c.drain.start());
    lists(&a, &[&a_url, &b_url]).await;
    lists(&c, &[&a_url, &b_url]).await;
    assert_eq!(
        node_list(&c).await.0,
        json!(c_url),
        "its own URL is still named"
    );

    // A node that stopped is left out.
    b.stop().await;
    lists(&a, &[&a_url]).await;
    a.stop().await;
    c.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
