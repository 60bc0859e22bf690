//! The protocol's per-entity controls (closeConsumer, closeTransport,
//! restartIce, getTransportStats, setConsumerPreferredLayers) and its
//! DataChannels (produceData, consumeData), against a real node whose two
//! workers put the two peers on different routers (so data and media are
//! piped between them).

mod common;

use common::*;
use mafalda::config::PlacementMode;
use serde_json::json;

fn spread_two() -> mafalda::config::Config {
    let mut c = test_config(2);
    c.placement.mode = PlacementMode::Spread;
    c
}

/// A simulcast VP8 sender (three encodings by rid).
fn simulcast_vp8() -> serde_json::Value {
    json!({
        "mid": "0",
        "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                    "parameters": {}, "rtcpFeedback": [{"type": "nack", "parameter": ""},
                    {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}]}],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 1, "encrypt": false},
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": 2, "encrypt": false}
        ],
        "encodings": [{"rid": "r0", "scalabilityMode": "L1T3"}, {"rid": "r1", "scalabilityMode": "L1T3"},
                      {"rid": "r2", "scalabilityMode": "L1T3"}],
        "rtcp": {"cname": "sim", "reducedSize": true}
    })
}

#[actix_rt::test]
async fn controls_and_data_channels_through_pipes() {
    let node = start_node(spread_two()).await;
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;
    a.join("controls", "Alice").await;
    b.join("controls", "Bob").await;
    a.event("peerJoined").await;

    // Alice: a send transport with SCTP, a simulcast video and a chat channel.
    let send = a
        .ok(
            "createWebRtcTransport",
            json!({"direction": "send", "sctpCapabilities": {"numStreams": {"OS": 1024, "MIS": 1024}}}),
        )
        .await;
    assert!(send["sctpParameters"]["port"].is_number(), "{send}");
    let video = a
        .ok(
            "produce",
            json!({"transportId": send["id"], "kind": "video", "rtpParameters": simulcast_vp8()}),
        )
        .await;
    let chat = a
        .ok(
            "produceData",
            json!({"transportId": send["id"], "label": "chat", "protocol": "",
                   "sctpStreamParameters": {"streamId": 0, "ordered": true}}),
        )
        .await;
    let announced = b.event("newDataProducer").await;
    assert_eq!(announced["dataProducerId"], chat["id"]);
    assert_eq!(announced["label"], "chat");

    // Bob receives both on a transport on the other worker.
    let recv = b
        .ok(
            "createWebRtcTransport",
            json!({"direction": "recv", "enableSctp": true}),
        )
        .await;
    let dc = b
        .ok(
            "consumeData",
            json!({"transportId": recv["id"], "dataProducerId": chat["id"]}),
        )
        .await;
    assert_eq!(dc["dataProducerId"], chat["id"]);
    assert_eq!(dc["label"], "chat");
    assert!(dc["sctpStreamParameters"]["streamId"].is_number(), "{dc}");
    let consumer = b
        .ok(
            "consume",
            json!({"transportId": recv["id"], "producerId": video["id"], "rtpCapabilities": client_rtp_capabilities()}),
        )
        .await;
    let s = status(&node).await;
    assert!(
        s.room_details[0].links_out.len() + s.room_details[0].links_in.len() > 0
            || s.room_details[0].routers.len() == 2,
        "the peers are on two routers: {:?}",
        s.room_details
    );
    b.ok(
        "setConsumerPreferredLayers",
        json!({"consumerId": consumer["id"], "spatialLayer": 0, "temporalLayer": 0}),
    )
    .await;
    b.fails(
        "setConsumerPreferredLayers",
        json!({"consumerId": video["id"], "spatialLayer": 0}),
        "unknown_consumer",
    )
    .await;

    // ICE restart gives fresh credentials; stats name the transport.
    let before = &recv["iceParameters"];
    let restarted = b.ok("restartIce", json!({"transportId": recv["id"]})).await;
    assert_ne!(
        restarted["iceParameters"]["usernameFragment"],
        before["usernameFragment"]
    );
    let stats = b
        .ok("getTransportStats", json!({"transportId": recv["id"]}))
        .await;
    assert_eq!(stats["stats"][0]["transportId"], recv["id"], "{stats}");
    b.fails(
        "restartIce",
        json!({"transportId": send["id"]}),
        "unknown_transport",
    )
    .await;

    // Closing one consumer leaves the rest.
    b.ok("closeConsumer", json!({"consumerId": consumer["id"]}))
        .await;
    b.fails(
        "resumeConsumer",
        json!({"consumerId": consumer["id"]}),
        "unknown_consumer",
    )
    .await;

    // Closing Alice's transport closes her producer and her channel.
    a.ok("closeTransport", json!({"transportId": send["id"]}))
        .await;
    let gone = b.event("dataProducerClosed").await;
    assert_eq!(gone["dataProducerId"], chat["id"]);
    let gone = b.event("producerClosed").await;
    assert_eq!(gone["producerId"], video["id"]);
    a.fails(
        "produce",
        json!({"transportId": send["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(5)}),
        "unknown_transport",
    )
    .await;

    a.ok("leave", json!({})).await;
    b.ok("leave", json!({})).await;
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn rooms_offer_the_configured_codecs() {
    let mut config = test_config(1);
    config.rtc.media_codecs = serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2,
         "parameters": {}, "rtcpFeedback": []}
    ]))
    .expect("codecs");
    let node = start_node(config).await;
    let mut a = Client::connect(node.http_addr).await;
    let joined = a.join("codecs", "Alice").await;
    let mimes: Vec<&str> = joined["routerRtpCapabilities"]["codecs"]
        .as_array()
        .expect("codecs")
        .iter()
        .filter_map(|c| c["mimeType"].as_str())
        .collect();
    assert_eq!(mimes, vec!["audio/opus"], "{joined}");
    // Video has no codec in this room: producing it is refused.
    let t = a
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    a.fails(
        "produce",
        json!({"transportId": t["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(7)}),
        "invalid_parameters",
    )
    .await;
    a.ok("leave", json!({})).await;
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn a_late_joiner_is_told_who_speaks() {
    let mut config = test_config(1);
    config.rooms.active_speaker = true;
    let node = start_node(config).await;
    let mut a = Client::connect(node.http_addr).await;
    let mut b = Client::connect(node.http_addr).await;
    let ja = a.join("speakers", "Alice").await;
    b.join("speakers", "Bob").await;
    let t = a
        .ok(
            "createPlainTransport",
            json!({"direction": "send", "comedia": true}),
        )
        .await;
    a.ok(
        "produce",
        json!({"transportId": t["id"], "kind": "audio", "rtpParameters": opus_rtp_parameters(11)}),
    )
    .await;
    // mediasoup names a lone audio producer the dominant speaker.
    let heard = b.event("activeSpeaker").await;
    assert_eq!(heard["peerId"], ja["peerId"]);
    // Carol joins later: she is told at once.
    let mut c = Client::connect(node.http_addr).await;
    c.join("speakers", "Carol").await;
    let told = c.event("activeSpeaker").await;
    assert_eq!(told["peerId"], ja["peerId"]);
    drop((a, b, c));
    wait_idle(&node).await;
    node.stop().await;
}
