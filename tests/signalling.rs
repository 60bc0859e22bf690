//! The signalling protocol against a real node with a real mediasoup worker.

mod common;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[actix_rt::test]
async fn two_peers_publish_consume_pause_close_and_leave() {
    let node = start_node(test_config(1)).await;
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;

    let ja = a.join("room-1", "Alice").await;
    assert!(
        ja["routerRtpCapabilities"]["codecs"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert_eq!(ja["peers"], json!([]));
    let jb = b.join("room-1", "Bob").await;
    assert_eq!(jb["peers"][0]["displayName"], "Alice");
    let joined = a.event("peerJoined").await;
    assert_eq!(joined["peerId"], jb["peerId"]);
    assert_eq!(joined["displayName"], "Bob");

    let (_, producer_id) = publish_video(&mut a, 1111).await;
    let audio_t = a
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    a.ok(
        "produce",
        json!({"transportId": audio_t["id"], "kind": "audio", "rtpParameters": opus_rtp_parameters(3333)}),
    )
    .await;
    let np = b.event("newProducer").await;
    assert_eq!(np["producerId"], json!(producer_id));
    assert_eq!(np["peerId"], ja["peerId"]);
    assert_eq!(np["kind"], "video");

    let recv = b
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    assert!(!recv["iceCandidates"].as_array().unwrap().is_empty());
    assert_eq!(recv["iceCandidates"][0]["address"], "127.0.0.1");
    b.ok(
        "connectWebRtcTransport",
        json!({"transportId": recv["id"], "dtlsParameters": client_dtls()}),
    )
    .await;
    let consumer = b
        .ok(
            "consume",
            json!({"transportId": recv["id"], "producerId": producer_id, "rtpCapabilities": client_rtp_capabilities()}),
        )
        .await;
    assert_eq!(consumer["producerId"], json!(producer_id));
    assert_eq!(consumer["kind"], "video");
    assert_eq!(
        consumer["rtpParameters"]["codecs"][0]["mimeType"],
        "video/VP8"
    );
    b.ok("resumeConsumer", json!({"consumerId": consumer["id"]}))
        .await;
    b.ok("pauseConsumer", json!({"consumerId": consumer["id"]}))
        .await;
    b.ok("resumeConsumer", json!({"consumerId": consumer["id"]}))
        .await;

    let s = status(&node).await;
    assert_eq!((s.rooms, s.peers, s.routers), (1, 2, 1));
    assert_eq!((s.transports, s.producers, s.consumers), (3, 2, 1));
    assert_eq!(s.worker_details[0].counts.consumers, 1);

    a.ok("pauseProducer", json!({"producerId": producer_id}))
        .await;
    assert_eq!(
        b.event("producerPaused").await["producerId"],
        json!(producer_id)
    );
    a.ok("resumeProducer", json!({"producerId": producer_id}))
        .await;
    assert_eq!(
        b.event("producerResumed").await["producerId"],
        json!(producer_id)
    );

    // Bob may not act on Alice's producer.
    b.fails(
        "closeProducer",
        json!({"producerId": producer_id}),
        "unknown_producer",
    )
    .await;

    a.ok("closeProducer", json!({"producerId": producer_id}))
        .await;
    assert_eq!(
        b.event("producerClosed").await["producerId"],
        json!(producer_id)
    );
    let cc = b.event("consumerClosed").await;
    assert_eq!(cc["consumerId"], consumer["id"]);
    assert_eq!(status(&node).await.consumers, 0);

    a.ok("leave", json!({})).await;
    a.closed().await;
    assert_eq!(b.event("peerLeft").await["peerId"], ja["peerId"]);
    drop(b);
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn late_joiner_sees_existing_producers_and_both_dtls_flavours_connect() {
    let node = start_node(test_config(1)).await;
    let mut a = Client::connect(node.http_addr).await;
    a.join("room-2", "A").await;
    let (_, producer_id) = publish_video(&mut a, 5000).await;

    let mut b = Client::connect(node.http_addr).await;
    let jb = b.join("room-2", "B").await;
    assert_eq!(jb["producers"][0]["producerId"], json!(producer_id));
    assert_eq!(jb["producers"][0]["kind"], "video");
    // pymediasoup's flavour: DTLS role server, sha-512.
    let t = b
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    b.ok(
        "connectWebRtcTransport",
        json!({"transportId": t["id"], "dtlsParameters": {"role": "server", "fingerprints": [{"algorithm": "sha-512",
            "value": "2A:7C:5C:9C:56:8F:33:3A:52:B4:1A:4F:4E:1A:1B:2F:2A:7C:5C:9C:56:8F:33:3A:52:B4:1A:4F:4E:1A:1B:2F:2A:7C:5C:9C:56:8F:33:3A:52:B4:1A:4F:4E:1A:1B:2F:2A:7C:5C:9C:56:8F:33:3A:52:B4:1A:4F:4E:1A:1B:2F"}]}}),
    )
    .await;
    drop(a);
    drop(b);
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn malformed_and_unknown_requests_get_typed_errors_and_the_socket_survives() {
    let node = start_node(test_config(1)).await;
    let mut c = Client::connect(node.http_addr).await;

    c.send_raw(Message::Text("{this is not json".into())).await;
    let r = c.next_response().await;
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (json!(null), json!("bad_request"))
    );

    c.send_raw(Message::Text(r#"{"id":"seven","method":"join"}"#.into()))
        .await;
    assert_eq!(c.next_response().await["error"]["code"], "bad_request");

    c.send_raw(Message::Binary(vec![1, 2, 3])).await;
    assert_eq!(c.next_response().await["error"]["code"], "bad_request");

    c.fails("teleport", json!({}), "unknown_method").await;
    c.fails(
        "createWebRtcTransport",
        json!({"direction": "send"}),
        "not_joined",
    )
    .await;
    c.fails(
        "join",
        json!({"room": "r", "displayName": "x", "protocolVersion": 99}),
        "unsupported_version",
    )
    .await;
    c.fails(
        "join",
        json!({"room": "", "displayName": "x"}),
        "bad_request",
    )
    .await;
    c.fails("join", json!({"room": 5}), "bad_request").await;
    c.join("room-3", "C").await;
    c.fails(
        "join",
        json!({"room": "room-3", "displayName": "again"}),
        "already_joined",
    )
    .await;

    let ghost = "8c6e0b1e-2b1f-4f5e-9d38-6d0c4f1d9a11";
    c.fails(
        "connectWebRtcTransport",
        json!({"transportId": ghost, "dtlsParameters": client_dtls()}),
        "unknown_transport",
    )
    .await;
    c.fails(
        "produce",
        json!({"transportId": ghost, "kind": "video", "rtpParameters": vp8_rtp_parameters(1)}),
        "unknown_transport",
    )
    .await;
    c.fails(
        "resumeConsumer",
        json!({"consumerId": ghost}),
        "unknown_consumer",
    )
    .await;
    c.fails(
        "pauseProducer",
        json!({"producerId": ghost}),
        "unknown_producer",
    )
    .await;
    c.fails(
        "closeProducer",
        json!({"producerId": "not-a-uuid"}),
        "bad_request",
    )
    .await;

    // A receive transport cannot produce, and a send transport cannot consume.
    let recv = c
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    c.fails(
        "produce",
        json!({"transportId": recv["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(1)}),
        "unknown_transport",
    )
    .await;
    // Invalid RTP parameters are refused by mediasoup with a typed error.
    let (send_id, own_producer) = publish_video(&mut c, 7000).await;
    c.fails(
        "produce",
        json!({"transportId": send_id, "kind": "video", "rtpParameters": {"mid": "9", "codecs": [], "headerExtensions": [], "encodings": [], "rtcp": {"reducedSize": true}}}),
        "invalid_parameters",
    )
    .await;
    // A peer cannot consume its own producer, nor an unknown one.
    c.fails("consume", json!({"transportId": recv["id"], "producerId": own_producer, "rtpCapabilities": client_rtp_capabilities()}), "unknown_producer").await;
    c.fails("consume", json!({"transportId": recv["id"], "producerId": ghost, "rtpCapabilities": client_rtp_capabilities()}), "unknown_producer").await;

    // Still alive and serving after all that.
    c.ok("getRouterRtpCapabilities", json!({})).await;
    drop(c);
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn incompatible_capabilities_cannot_consume() {
    let node = start_node(test_config(1)).await;
    let mut a = Client::connect(node.http_addr).await;
    a.join("room-4", "A").await;
    let (_, producer_id) = publish_video(&mut a, 100).await;
    let mut b = Client::connect(node.http_addr).await;
    b.join("room-4", "B").await;
    let t = b
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    b.fails(
        "consume",
        json!({"transportId": t["id"], "producerId": producer_id, "rtpCapabilities": audio_only_capabilities()}),
        "cannot_consume",
    )
    .await;
    assert_eq!(status(&node).await.consumers, 0);
    drop((a, b));
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn oversized_message_closes_only_that_socket() {
    let node = start_node(test_config(1)).await;
    let mut good = Client::connect(node.http_addr).await;
    good.join("room-5", "good").await;
    let mut bad = Client::connect(node.http_addr).await;
    bad.join("room-5", "bad").await;

    let huge = format!(
        r#"{{"id":1,"method":"join","data":{{"room":"{}"}}}}"#,
        "x".repeat(64 * 1024)
    );
    bad.send_raw(Message::Text(huge)).await;
    let frame = bad.closed().await.expect("close frame");
    assert_eq!(frame.code, CloseCode::Size);

    // The bad peer is gone from the room, the good one still works.
    good.event("peerLeft").await;
    good.ok("getRouterRtpCapabilities", json!({})).await;
    assert_eq!(status(&node).await.peers, 1);
    drop(good);
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn clients_vanishing_mid_handshake_leak_nothing() {
    let node = start_node(test_config(2)).await;
    // Several clients stop at different points of the handshake.
    for step in 0..5 {
        let mut c = Client::connect(node.http_addr).await;
        if step >= 1 {
            c.join("room-6", &format!("p{step}")).await;
        }
        if step >= 2 {
            c.ok("createWebRtcTransport", json!({"direction": "recv"}))
                .await;
        }
        if step >= 3 {
            publish_video(&mut c, 9000 + step as u32 * 10).await;
        }
        if step == 4 {
            // Vanish with a request still in flight.
            c.send_raw(Message::Text(
                json!({"id": 99, "method": "createWebRtcTransport", "data": {"direction": "send"}})
                    .to_string(),
            ))
            .await;
        }
        drop(c);
    }
    // Requests racing a leave: many transports requested, then close at once.
    let mut c = Client::connect(node.http_addr).await;
    c.join("room-6", "racer").await;
    for i in 0..20 {
        c.send_raw(Message::Text(
            json!({"id": 1000 + i, "method": "createWebRtcTransport", "data": {"direction": "send"}}).to_string(),
        ))
        .await;
    }
    drop(c);
    let s = wait_idle(&node).await;
    assert!(s
        .worker_details
        .iter()
        .all(|w| w.counts.transports == 0 && w.counts.routers == 0));
    node.stop().await;
}

#[actix_rt::test]
async fn rooms_are_isolated_and_spread_over_workers() {
    // `spread` placement: each participant goes to the least-loaded worker
    // (the default, `pack`, would fill worker 0 first).
    let mut config = test_config(2);
    config.placement.mode = mafalda::config::PlacementMode::Spread;
    let node = start_node(config).await;
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;
    a.join("room-7a", "A").await;
    b.join("room-7b", "B").await;
    publish_video(&mut a, 1).await;
    publish_video(&mut b, 2).await;
    let s = status(&node).await;
    assert_eq!((s.rooms, s.routers, s.workers), (2, 2, 2));
    // Placement picked the least-loaded worker for the second room's peer.
    assert!(
        s.worker_details.iter().all(|w| w.counts.routers == 1),
        "{s:?}"
    );
    // Neither peer heard of the other room.
    assert!(a.events.iter().all(|e| e["event"] != "newProducer"));
    drop((a, b));
    wait_idle(&node).await;
    node.stop().await;
}

/// Plain RTP transports over signalling: created, connected, and refused
/// with typed errors when mixed up with WebRTC ones or given bad data.
#[actix_rt::test]
async fn plain_transports_over_signalling_and_their_errors() {
    let node = start_node(test_config(1)).await;
    let mut c = Client::connect(node.http_addr).await;
    c.join("room-plain", "P").await;
    let plain = c
        .ok(
            "createPlainTransport",
            json!({"direction": "recv", "comedia": false}),
        )
        .await;
    assert_eq!(plain["ip"], json!("127.0.0.1"), "{plain}");
    assert!(
        plain["port"].as_u64().is_some_and(|p| p >= 40000),
        "{plain}"
    );
    c.ok(
        "connectPlainTransport",
        json!({"transportId": plain["id"], "ip": "127.0.0.1", "port": 5004}),
    )
    .await;
    // A plain transport takes no DTLS parameters, a WebRTC one no address.
    c.fails(
        "connectWebRtcTransport",
        json!({"transportId": plain["id"], "dtlsParameters": client_dtls()}),
        "unknown_transport",
    )
    .await;
    let webrtc = c
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    c.fails(
        "connectPlainTransport",
        json!({"transportId": webrtc["id"], "ip": "127.0.0.1", "port": 5004}),
        "unknown_transport",
    )
    .await;
    // The node sends media only to allowed networks (loopback by default).
    for ip in [
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "8.8.8.8",
    ] {
        c.fails(
            "connectPlainTransport",
            json!({"transportId": plain["id"], "ip": ip, "port": 5004}),
            "forbidden",
        )
        .await;
    }
    for bad in [
        json!({"transportId": plain["id"], "ip": "not-an-ip", "port": 5004}),
        json!({"transportId": plain["id"], "ip": "127.0.0.1", "port": 70000}),
        json!({"transportId": plain["id"], "ip": "127.0.0.1"}),
    ] {
        c.fails("connectPlainTransport", bad, "bad_request").await;
    }
    c.fails(
        "createPlainTransport",
        json!({"direction": "sideways"}),
        "bad_request",
    )
    .await;
    // Producing on a receive plain transport is refused like on WebRTC.
    c.fails(
        "produce",
        json!({"transportId": plain["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(42)}),
        "unknown_transport",
    )
    .await;
    let s = status(&node).await;
    assert_eq!(s.transports, 2, "{s:?}");
    drop(c);
    wait_idle(&node).await;
    node.stop().await;
}

/// A request refused with `limit_exceeded`, naming `limit`.
async fn over_limit(c: &mut Client, method: &str, data: serde_json::Value, limit: &str) {
    let r = c.fails(method, data, "limit_exceeded").await;
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(limit), "{r}");
}

#[actix_rt::test]
async fn limits_are_typed_errors_that_name_the_limit_and_the_peer_goes_on() {
    let mut config = test_config(1);
    config.limits.transports_per_peer = 2;
    config.limits.producers_per_peer = 1;
    config.limits.peers_per_room = 2;
    let node = start_node(config).await;
    let mut a = Client::connect(node.http_addr).await;
    a.join("limited", "a").await;
    let mut b = Client::connect(node.http_addr).await;
    b.join("limited", "b").await;
    // A third participant would pass peers_per_room.
    let mut c = Client::connect(node.http_addr).await;
    over_limit(
        &mut c,
        "join",
        json!({"room": "limited", "displayName": "c", "token": token("limited", "c")}),
        "peers_per_room",
    )
    .await;
    // Two transports, then one too many.
    let send = a
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    a.ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    over_limit(
        &mut a,
        "createWebRtcTransport",
        json!({"direction": "send"}),
        "transports_per_peer",
    )
    .await;
    // A "video" producer with an audio codec is refused before any limit.
    a.fails(
        "produce",
        json!({"transportId": send["id"], "kind": "video", "rtpParameters": opus_rtp_parameters(7)}),
        "invalid_parameters",
    )
    .await;
    a.ok(
        "produce",
        json!({"transportId": send["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(8)}),
    )
    .await;
    over_limit(&mut a, "produce", json!({"transportId": send["id"], "kind": "audio", "rtpParameters": opus_rtp_parameters(9)}), "producers_per_peer").await;
    // The peer goes on.
    a.ok("getRouterRtpCapabilities", json!({})).await;
    let s = status(&node).await;
    assert_eq!((s.peers, s.transports, s.producers), (2, 2, 1), "{s:?}");
    drop((a, b, c));
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn an_exhausted_port_range_answers_capacity_and_the_other_transports_keep_working() {
    let mut config = test_config(1);
    // Two ports: two transports (UDP only).
    config.rtc.port_max = config.rtc.port_min + 1;
    let node = start_node(config).await;
    let mut a = Client::connect(node.http_addr).await;
    a.join("ports", "a").await;
    a.ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    a.ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    let mut b = Client::connect(node.http_addr).await;
    b.join("ports", "b").await;
    b.fails(
        "createWebRtcTransport",
        json!({"direction": "recv"}),
        "capacity",
    )
    .await;
    assert_eq!(status(&node).await.transports, 2);
    // Ports come back when a participant leaves.
    a.ok("leave", json!({})).await;
    eventually("the ports to be released", TIMEOUT, async || {
        (status(&node).await.transports == 0).then_some(())
    })
    .await;
    b.ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    drop((a, b));
    wait_idle(&node).await;
    node.stop().await;
}

/// The HTTP status a WebSocket upgrade to `addr` is refused with, if any.
async fn upgrade_status(addr: std::net::SocketAddr, origin: Option<&str>) -> Option<u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(o) = origin {
        request.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Some(r.status().as_u16()),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[actix_rt::test]
async fn connections_are_limited_by_origin_count_rate_and_join_time() {
    let mut config = test_config(1);
    config.limits.connections_per_ip = 3;
    config.limits.requests_per_second = 5;
    config.limits.request_burst = 5;
    config.limits.join_timeout_ms = 300;
    config.http.allowed_origins = vec!["https://app.example".into()];
    let node = start_node(config).await;
    let addr = node.http_addr;
    // Origins: a foreign page is refused, this node's own and a listed one
    // are not, nor a client that sends none.
    assert_eq!(
        upgrade_status(addr, Some("http://evil.example")).await,
        Some(403)
    );
    assert_eq!(
        upgrade_status(addr, Some(&format!("http://{addr}"))).await,
        None
    );
    assert_eq!(
        upgrade_status(addr, Some("https://app.example")).await,
        None
    );
    // Requests beyond the burst are answered limit_exceeded, the socket
    // stays, and the bucket refills.
    let mut a = Client::connect(addr).await;
    a.join("limits", "a").await;
    for _ in 0..4 {
        a.ok("getRouterRtpCapabilities", json!({})).await;
    }
    over_limit(
        &mut a,
        "getRouterRtpCapabilities",
        json!({}),
        "requests_per_second",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    a.ok("getRouterRtpCapabilities", json!({})).await;
    // A socket that does not join in time is closed (1008).
    let mut idle = Client::connect(addr).await;
    let frame = idle.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    // Three connections from this address at most (the idle one's place
    // is freed as its session ends).
    let _b = eventually("a place for one more connection", TIMEOUT, async || {
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .ok()
    })
    .await;
    let _c = Client::connect(addr).await;
    assert_eq!(upgrade_status(addr, None).await, Some(503));
    drop(a);
    wait_idle(&node).await;
    node.stop().await;
}

/// What `docs/protocol.md` says of requests that do not parse.
#[actix_rt::test]
async fn parse_failures_are_as_documented() {
    let node = start_node(test_config(1)).await;
    let mut c = Client::connect(node.http_addr).await;
    c.join("documented", "a").await;
    // A valid id without a method is echoed.
    c.send_raw(Message::Text(r#"{"id": 41}"#.into())).await;
    let r = c.next_response().await;
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (json!(41), json!("bad_request")),
        "{r}"
    );
    // A malformed entity id is bad_request; a well-formed unknown one is unknown_*.
    c.fails(
        "resumeConsumer",
        json!({"consumerId": "not-a-uuid"}),
        "bad_request",
    )
    .await;
    c.fails(
        "resumeConsumer",
        json!({"consumerId": "8c6e0b1e-2b1f-4f5e-9d38-6d0c4f1d9a11"}),
        "unknown_consumer",
    )
    .await;
    // A codec mediasoup does not know is bad_request.
    let t = c
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    let mut rtp = vp8_rtp_parameters(9);
    rtp["codecs"][0]["mimeType"] = json!("video/NOPE");
    c.fails(
        "produce",
        json!({"transportId": t["id"], "kind": "video", "rtpParameters": rtp}),
        "bad_request",
    )
    .await;
    // ICE candidates name their address `address`.
    assert!(t["iceCandidates"][0]["address"].is_string(), "{t}");
    drop(c);
    wait_idle(&node).await;
    node.stop().await;
}
