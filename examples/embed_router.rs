//! Embedding Mafalda in an application written against the mediasoup crate.
//!
//! It reads like mediasoup's own examples; what changes is the imports
//! (`mediasoup::` becomes `mafalda::mediasoup::`) and the worker:
//!
//! ```text
//! // mediasoup                                   // Mafalda
//! let worker = WorkerManager::new()              let worker = Worker::start(config).await?;
//!     .create_worker(settings).await?;
//! let router = worker.create_router(             let router = worker.create_router(
//!     RouterOptions::new(codecs)).await?;            RouterOptions::new(codecs)).await?;
//! ```
//!
//! From there on the code is the same: the router is a room spread over
//! the node's workers (here two, `spread` placement, so the two
//! transports below land on different workers), and the consumer of a
//! producer on the other worker is fed through a pipe the room makes.
//! Its `producer_paused()` follows the producer live through that pipe.
//!
//! Run: `cargo run --example embed_router`.

use std::sync::Arc;
use std::time::Duration;

use mafalda::config::{Config, PlacementMode};
use mafalda::mediasoup::prelude::*;
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

/// The router's codecs: Opus and VP8.
fn media_codecs() -> anyhow::Result<Vec<RtpCodecCapability>> {
    Ok(serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2,
         "parameters": {"useinbandfec": 1}, "rtcpFeedback": []},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000, "parameters": {},
         "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "nack", "parameter": "pli"},
                          {"type": "ccm", "parameter": "fir"}, {"type": "goog-remb", "parameter": ""},
                          {"type": "transport-cc", "parameter": ""}]}
    ]))?)
}

fn transport_options() -> WebRtcTransportOptions {
    WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(ListenInfo {
        protocol: Protocol::Udp,
        ip: "127.0.0.1".parse().expect("an address"),
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }))
}

async fn run() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.node.name = "embedded".into();
    config.http.listen = "127.0.0.1:0".parse()?;
    config.workers.count = 2;
    config.placement.mode = PlacementMode::Spread;
    // Signalling clients would need tokens of this key; none come here.
    config.auth.keys = vec![mafalda::auth::AuthKey::random("embedded")];
    let worker = Worker::start(config).await?;

    let router = worker
        .create_router(RouterOptions::new(media_codecs()?))
        .await?;
    println!(
        "router {} (room {}): {} codecs",
        router.id(),
        router.room_id(),
        router.rtp_capabilities().codecs.len()
    );

    // Alice sends VP8 on one transport...
    let send = router.create_webrtc_transport(transport_options()).await?;
    println!(
        "send transport {}: {} ICE candidate(s), {} DTLS fingerprint(s)",
        send.id(),
        send.ice_candidates().len(),
        send.dtls_parameters().fingerprints.len()
    );
    send.connect(WebRtcTransportRemoteParameters {
        dtls_parameters: remote_dtls()?,
    })
    .await?;
    let producer = send
        .produce(ProducerOptions::new(
            MediaKind::Video,
            vp8_send_parameters()?,
        ))
        .await?;
    println!("produces {:?} as {}", producer.kind(), producer.id());

    // ...and Bob receives it on another, placed on the other worker.
    let caps = receiver_capabilities()?;
    anyhow::ensure!(router.can_consume(&producer.id(), &caps));
    let recv = router.create_webrtc_transport(transport_options()).await?;
    recv.connect(WebRtcTransportRemoteParameters {
        dtls_parameters: remote_dtls()?,
    })
    .await?;
    let mut options = ConsumerOptions::new(producer.id(), caps);
    options.paused = true;
    let consumer = recv.consume(options).await?;
    consumer.resume().await?;
    println!(
        "consumes {} as {} (payload type {}), resumed",
        consumer.producer_id(),
        consumer.id(),
        consumer.rtp_parameters().codecs[0].payload_type()
    );
    let status = worker.status().await?;
    let room = status
        .room_details
        .iter()
        .find(|r| &r.room == router.room_id())
        .ok_or_else(|| anyhow::anyhow!("the room is not in the node's status"))?;
    println!(
        "the room uses {} routers; pipe links: {:?}",
        room.routers.len(),
        room.links_out
            .iter()
            .chain(&room.links_in)
            .map(|l| format!("{} -> {}", l.from, l.to))
            .collect::<Vec<_>>()
    );

    // Pause travels through the pipe: the consumer hears of it.
    let (tx, rx) = futures::channel::oneshot::channel();
    let tx = Arc::new(parking_lot::Mutex::new(Some(tx)));
    consumer
        .on_producer_pause(move || {
            if let Some(tx) = tx.lock().take() {
                let _ = tx.send(());
            }
        })
        .detach();
    producer.pause().await?;
    tokio::time::timeout(Duration::from_secs(5), rx).await??;
    anyhow::ensure!(consumer.producer_paused());
    println!("producer paused: the consumer's producer_paused() is true");

    // Dropping closes, as with mediasoup.
    drop((consumer, recv, producer, send, router));
    println!("closed");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    run().await
}
