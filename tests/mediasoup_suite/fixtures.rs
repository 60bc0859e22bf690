//! Media the suite's tests send and receive: the router's codecs, an Opus
//! producer, a simulcast H264 producer and a receiving device, in the
//! JSON shapes mediasoup-client sends.
#![allow(dead_code, missing_docs)]

use mafalda::mediasoup::prelude::*;
use serde_json::json;

/// What a test puts in a producer's `app_data`.
#[derive(Debug, PartialEq)]
pub struct Tag(pub &'static str);

/// Opus, VP8 and H264 (profile 4d0032), with a few parameters of their own.
pub fn codecs() -> Vec<RtpCodecCapability> {
    serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2,
         "parameters": {"useinbandfec": 1, "foo": "bar"}, "rtcpFeedback": []},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000,
         "parameters": {}, "rtcpFeedback": []},
        {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
         "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                        "profile-level-id": "4d0032"}, "rtcpFeedback": []}
    ]))
    .expect("codecs")
}

/// An Opus sender (mid `AUDIO`, one SSRC-less encoding to be filled in).
pub fn audio_parameters() -> RtpParameters {
    serde_json::from_value(json!({
        "mid": "AUDIO",
        "codecs": [{"mimeType": "audio/opus", "payloadType": 0, "clockRate": 48000,
                    "channels": 2, "parameters": {"useinbandfec": 1, "usedtx": 1},
                    "rtcpFeedback": []}],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 10, "encrypt": false},
            {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 12, "encrypt": false}
        ],
        "encodings": [{"ssrc": 11111111}],
        "rtcp": {"cname": "audio-1", "reducedSize": true}
    }))
    .expect("audio parameters")
}

/// An H264 sender with RTX and four simulcast encodings (mid `VIDEO`).
pub fn video_parameters() -> RtpParameters {
    serde_json::from_value(json!({
        "mid": "VIDEO",
        "codecs": [
            {"mimeType": "video/H264", "payloadType": 112, "clockRate": 90000,
             "parameters": {"packetization-mode": 1, "profile-level-id": "4d0032"},
             "rtcpFeedback": [{"type": "nack", "parameter": ""},
                              {"type": "nack", "parameter": "pli"},
                              {"type": "goog-remb", "parameter": ""}]},
            {"mimeType": "video/rtx", "payloadType": 113, "clockRate": 90000,
             "parameters": {"apt": 112}, "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 10, "encrypt": false},
            {"uri": "urn:3gpp:video-orientation", "id": 13, "encrypt": false}
        ],
        "encodings": [
            {"ssrc": 22222222, "rtx": {"ssrc": 22222223}, "scalabilityMode": "L1T3"},
            {"ssrc": 22222224, "rtx": {"ssrc": 22222225}},
            {"ssrc": 22222226, "rtx": {"ssrc": 22222227}},
            {"ssrc": 22222228, "rtx": {"ssrc": 22222229}}
        ],
        "rtcp": {"cname": "video-1", "reducedSize": true}
    }))
    .expect("video parameters")
}

/// Producer options for [`audio_parameters`], tagged `audio`.
pub fn audio_producer() -> ProducerOptions {
    let mut o = ProducerOptions::new(MediaKind::Audio, audio_parameters());
    o.app_data = AppData::new(Tag("audio"));
    o
}

/// Producer options for [`video_parameters`], tagged `video`.
pub fn video_producer() -> ProducerOptions {
    let mut o = ProducerOptions::new(MediaKind::Video, video_parameters());
    o.app_data = AppData::new(Tag("video"));
    o
}

/// A receiving device: Opus, H264 with RTX, VP8 absent.
pub fn device() -> RtpCapabilities {
    serde_json::from_value(json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100,
             "clockRate": 48000, "channels": 2, "parameters": {}, "rtcpFeedback": []},
            {"kind": "video", "mimeType": "video/H264", "preferredPayloadType": 101,
             "clockRate": 90000,
             "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1,
                            "profile-level-id": "4d0032"},
             "rtcpFeedback": [{"type": "nack", "parameter": ""},
                              {"type": "nack", "parameter": "pli"},
                              {"type": "ccm", "parameter": "fir"},
                              {"type": "goog-remb", "parameter": ""}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102,
             "clockRate": 90000, "parameters": {"apt": 101}, "rtcpFeedback": []}
        ],
        "headerExtensions": [
            {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1,
             "preferredEncrypt": false, "direction": "sendrecv"},
            {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1,
             "preferredEncrypt": false, "direction": "sendrecv"},
            {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
             "preferredId": 10, "preferredEncrypt": false, "direction": "sendrecv"},
            {"kind": "video", "uri": "urn:3gpp:video-orientation", "preferredId": 11,
             "preferredEncrypt": false, "direction": "sendrecv"}
        ]
    }))
    .expect("device capabilities")
}
