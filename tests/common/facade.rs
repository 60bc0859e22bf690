//! Helpers for tests that drive the embedding facade (`mafalda::sfu`).

use mafalda::config::{Config, PlacementMode};
use mafalda::sfu::{Direction, Participant, Producer, ProducerOptions};
use mediasoup::prelude::MediaKind;
use mediasoup::types::data_structures::DtlsParameters;
use mediasoup::types::rtp_parameters::{RtpCapabilities, RtpParameters};

use super::{client_dtls, client_rtp_capabilities, test_config, vp8_rtp_parameters};

/// A node config with `workers` workers and participants spread over them
/// (so that consumers receive through pipes).
pub fn spread_config(workers: usize) -> Config {
    let mut c = test_config(workers);
    c.placement.mode = PlacementMode::Spread;
    c
}

/// A browser-like client's DTLS parameters.
pub fn dtls() -> DtlsParameters {
    serde_json::from_value(client_dtls()).expect("dtls parameters")
}

/// VP8 RTP parameters with one SSRC.
pub fn vp8(ssrc: u32) -> RtpParameters {
    serde_json::from_value(vp8_rtp_parameters(ssrc)).expect("rtp parameters")
}

/// A browser-like client's receive capabilities.
pub fn caps() -> RtpCapabilities {
    serde_json::from_value(client_rtp_capabilities()).expect("capabilities")
}

/// Sends VP8 from `p`: transport (with ICE candidates and DTLS
/// fingerprints), connect, produce.
pub async fn publish(p: &Participant, ssrc: u32) -> Producer {
    let t = p
        .create_webrtc_transport(Direction::Send)
        .await
        .expect("send transport");
    assert!(!t.ice_candidates().is_empty());
    assert!(!t.dtls_parameters().fingerprints.is_empty());
    t.connect(dtls()).await.expect("connect");
    t.produce(ProducerOptions::new(MediaKind::Video, vp8(ssrc)))
        .await
        .expect("produce")
}
