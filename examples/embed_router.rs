//! Embedding Mafalda in an application written against mediasoup's `Router`.
//!
//! The same steps, mediasoup on the left, Mafalda on the right:
//!
//! ```text
//! // mediasoup                                   // Mafalda
//! let worker = manager.create_worker(s).await?;  let sfu = Sfu::from_node(&node);
//! let router = worker                            let room = sfu.room("demo").await?;
//!     .create_router(opts).await?;               let alice = room.join("alice").await?;
//! let caps = router.rtp_capabilities();          let caps = alice.rtp_capabilities().await?;
//! let t = router                                 let t = alice
//!     .create_webrtc_transport(opts).await?;         .create_webrtc_transport(Direction::Send).await?;
//! t.connect(WebRtcTransportRemoteParameters {    t.connect(dtls_parameters).await?;
//!     dtls_parameters }).await?;
//! let p = t.produce(ProducerOptions::new(        let p = t.produce(ProducerOptions::new(
//!     MediaKind::Video, rtp)).await?;                MediaKind::Video, rtp)).await?;
//! router.can_consume(&p.id(), &caps)             room.can_consume(&p.id(), &caps).await?
//! let c = t2.consume(ConsumerOptions::new(       let c = t2.consume(ConsumerOptions::new(
//!     p.id(), caps)).await?;                         p.id(), caps)).await?;
//! c.resume().await?;                             c.resume().await?;
//! drop(p); // closes                             p.close().await?;
//! drop(t); drop(router); // close                drop(alice); // leaves, closes all hers
//! ```
//!
//! What changes: there is no router to create (a room spans the node's
//! workers and pipes producers between them), transports, producers and
//! consumers hang off a participant, and the methods that ask the room are
//! `async`. Parameter types are mediasoup's own.
//!
//! Run: `cargo run --example embed_router`.

use std::net::TcpListener;

use mafalda::config::{Config, PlacementMode};
use mafalda::node::RunningNode;
use mafalda::sfu::{ConsumerOptions, Direction, Event, ProducerOptions, Sfu};
use mediasoup::prelude::MediaKind;
use mediasoup::types::data_structures::DtlsParameters;
use mediasoup::types::rtp_parameters::{RtpCapabilities, RtpParameters};
use serde_json::json;

/// What a browser would send as its DTLS parameters.
fn remote_dtls() -> anyhow::Result<DtlsParameters> {
    Ok(serde_json::from_value(json!({
        "role": "client",
        "fingerprints": [{"algorithm": "sha-256", "value":
            "E5:F5:CA:A7:2D:93:E6:16:AC:21:09:9F:23:51:62:8C:D0:66:E9:0C:22:54:2B:82:0C:DF:E0:C5:2C:7E:CD:53"}]
    }))?)
}

/// A VP8 sender with RTX, as a browser describes it.
fn vp8_send_parameters() -> anyhow::Result<RtpParameters> {
    Ok(serde_json::from_value(json!({
        "mid": "0",
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000, "parameters": {},
             "rtcpFeedback": [{"type": "goog-remb", "parameter": ""}, {"type": "transport-cc", "parameter": ""},
                              {"type": "ccm", "parameter": "fir"}, {"type": "nack", "parameter": ""},
                              {"type": "nack", "parameter": "pli"}]},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96},
             "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4, "encrypt": false, "parameters": {}},
            {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2,
             "encrypt": false, "parameters": {}}
        ],
        "encodings": [{"ssrc": 11111111, "rtx": {"ssrc": 11111112}}],
        "rtcp": {"cname": "alice", "reducedSize": true}
    }))?)
}

/// What a receiving browser can decode.
fn receiver_capabilities() -> anyhow::Result<RtpCapabilities> {
    Ok(serde_json::from_value(json!({
        "codecs": [
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000,
             "parameters": {}, "rtcpFeedback": [{"type": "nack", "parameter": ""},
                {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"},
                {"type": "transport-cc", "parameter": ""}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102, "clockRate": 90000,
             "parameters": {"apt": 101}, "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1,
             "preferredEncrypt": false, "direction": "sendrecv"}
        ]
    }))?)
}

async fn run(node: &RunningNode) -> anyhow::Result<()> {
    let sfu = Sfu::from_node(node);
    let room = sfu.room("demo").await?;

    let alice = room.join("alice").await?;
    let bob = room.join("bob").await?;
    let mut bob_events = bob.take_events().expect("first take");
    println!(
        "alice ({}) and bob ({}) joined room `demo`",
        alice.id(),
        bob.id()
    );
    let caps = alice.rtp_capabilities().await?;
    println!("router capabilities: {} codecs", caps.codecs.len());

    // Alice sends VP8.
    let send = alice.create_webrtc_transport(Direction::Send).await?;
    println!(
        "alice's send transport {}: {} ICE candidate(s), {} DTLS fingerprint(s)",
        send.id(),
        send.ice_candidates().len(),
        send.dtls_parameters().fingerprints.len()
    );
    send.connect(remote_dtls()?).await?;
    let producer = send
        .produce(ProducerOptions::new(
            MediaKind::Video,
            vp8_send_parameters()?,
        ))
        .await?;
    println!("alice produces {:?} as {}", producer.kind(), producer.id());

    // Bob hears about it and receives it.
    loop {
        match bob_events.recv().await {
            Some(Event::NewProducer(info)) => {
                println!(
                    "bob's event: new producer {} from {}",
                    info.producer_id, info.peer_id
                );
                break;
            }
            Some(_) => continue,
            None => anyhow::bail!("bob was removed from the room"),
        }
    }
    let bob_caps = receiver_capabilities()?;
    anyhow::ensure!(room.can_consume(&producer.id(), &bob_caps).await?);
    let recv = bob.create_webrtc_transport(Direction::Recv).await?;
    recv.connect(remote_dtls()?).await?;
    let consumer = recv
        .consume(ConsumerOptions::new(producer.id(), bob_caps))
        .await?;
    consumer.resume().await?;
    println!(
        "bob consumes {} as {} (payload type {}), resumed",
        consumer.producer_id(),
        consumer.id(),
        consumer.rtp_parameters().codecs[0].payload_type()
    );

    let status = sfu.status().await?;
    println!(
        "node: {} workers, {} peers, {} producers, {} consumers (pipes included), {} routers",
        status.workers, status.peers, status.producers, status.consumers, status.routers
    );

    producer.close().await?;
    println!("alice closed her producer");
    drop((alice, send, producer));
    drop((bob, recv, consumer, bob_events));
    println!("both left the room");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.node.name = "embedded".into();
    config.workers.count = 2;
    config.placement.mode = PlacementMode::Spread;
    actix_web::rt::System::new().block_on(async move {
        // The HTTP API is not used here, but a node always serves it.
        let node = RunningNode::start(config, TcpListener::bind("127.0.0.1:0")?).await?;
        let result = run(&node).await;
        node.stop().await;
        result
    })
}
