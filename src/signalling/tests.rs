//! The protocol's unit tests: parsing, rendering, and inputs the fuzzer found.

use super::*;
use serde_json::json;

#[test]
fn every_method_parses_and_names_itself() {
    for (name, _) in METHODS {
        let text = format!(r#"{{"id":1,"method":"{name}"}}"#);
        match parse_request(&text) {
            Ok((_, r)) => assert_eq!(r.method(), *name),
            Err(f) => assert_ne!(f.error.code, ErrorCode::UnknownMethod, "{name}"),
        }
    }
}

#[test]
fn every_event_is_listed_under_its_wire_name() {
    let p = PeerId::new();
    let pr: ProducerId = "5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap();
    let c: ConsumerId = "6f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap();
    let d: mediasoup::prelude::DataProducerId =
        "7f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap();
    let info = ProducerInfo {
        producer_id: pr,
        peer_id: p,
        kind: MediaKind::Audio,
        paused: false,
    };
    let all = [
        Event::PeerJoined(PeerInfo {
            peer_id: p,
            display_name: "x".into(),
        }),
        Event::PeerLeft { peer_id: p },
        Event::NewProducer(info),
        Event::ProducerClosed { producer_id: pr },
        Event::ProducerPaused { producer_id: pr },
        Event::ProducerResumed { producer_id: pr },
        Event::ConsumerClosed {
            consumer_id: c,
            producer_id: pr,
        },
        Event::Reconnect {
            reason: "r".into(),
            url: Some("ws://198.18.0.2:3000/ws".into()),
        },
        Event::NewDataProducer(DataProducerInfo {
            data_producer_id: d,
            peer_id: p,
            label: "chat".into(),
            protocol: String::new(),
        }),
        Event::DataProducerClosed {
            data_producer_id: d,
        },
        Event::ActiveSpeaker {
            peer_id: p,
            producer_id: pr,
        },
    ];
    assert_eq!(all.len(), EVENTS.len());
    for e in &all {
        let v: Value = serde_json::from_str(&event_message(e)).unwrap();
        assert_eq!(v["event"], e.name());
        assert!(EVENTS.contains(&e.name()), "{}", e.name());
    }
}

#[test]
fn parses_join() {
    let (id, req) =
        parse_request(r#"{"id":1,"method":"join","data":{"room":"r","displayName":"A"}}"#).unwrap();
    assert_eq!(id, 1);
    assert_eq!(
        req,
        Request::Join(JoinRequest {
            room: "r".into(),
            display_name: "A".into(),
            protocol_version: None,
            token: None,
        })
    );
}

#[test]
fn methods_without_data_parse() {
    let (_, req) = parse_request(r#"{"id":2,"method":"leave"}"#).unwrap();
    assert_eq!(req, Request::Leave);
    let (_, req) = parse_request(r#"{"id":3,"method":"getRouterRtpCapabilities"}"#).unwrap();
    assert_eq!(req, Request::GetRouterRtpCapabilities);
}

#[test]
fn malformed_json_has_no_id() {
    let f = parse_request("{not json").unwrap_err();
    assert_eq!(f.id, None);
    assert_eq!(f.error.code, ErrorCode::BadRequest);
}

#[test]
fn non_integer_id_is_bad_request() {
    for text in [
        r#"{"id":"x","method":"leave"}"#,
        r#"{"id":-1,"method":"leave"}"#,
        r#"{"method":"leave"}"#,
        r#"[1,2]"#,
    ] {
        let f = parse_request(text).unwrap_err();
        assert_eq!(f.error.code, ErrorCode::BadRequest, "{text}");
    }
}

#[test]
fn unknown_method_keeps_id() {
    let f = parse_request(r#"{"id":9,"method":"fly"}"#).unwrap_err();
    assert_eq!(f.id, Some(9));
    assert_eq!(f.error.code, ErrorCode::UnknownMethod);
    assert!(f.error.message.contains("fly"));
}

#[test]
fn wrong_data_types_are_bad_request() {
    let f = parse_request(r#"{"id":4,"method":"createWebRtcTransport","data":{"direction":"up"}}"#)
        .unwrap_err();
    assert_eq!(f.id, Some(4));
    assert_eq!(f.error.code, ErrorCode::BadRequest);
    let f = parse_request(r#"{"id":5,"method":"resumeConsumer","data":{"consumerId":"nope"}}"#)
        .unwrap_err();
    assert_eq!(f.error.code, ErrorCode::BadRequest);
    let f = parse_request(r#"{"id":6,"method":"join","data":{"room":1}}"#).unwrap_err();
    assert_eq!(
        (f.error.code, f.method),
        (ErrorCode::BadRequest, Some("join"))
    );
    // The method is named only when it is one of the protocol's.
    let f = parse_request(r#"{"id":7,"method":"fly","data":1}"#).unwrap_err();
    assert_eq!(f.method, None);
}

#[test]
fn parses_browser_style_connect() {
    let text = json!({"id": 7, "method": "connectWebRtcTransport", "data": {
        "transportId": "3b0c8b7e-6a5e-4b7b-9e57-7c8f6f2b1d10",
        "dtlsParameters": {"role": "client", "fingerprints": [
            {"algorithm": "sha-256", "value": (["AB"; 32].join(":"))}]}}})
    .to_string();
    let (_, req) = parse_request(&text).unwrap();
    assert!(matches!(req, Request::ConnectWebRtcTransport(_)));
    // pymediasoup's flavour: role server with sha-512.
    let text = json!({"id": 8, "method": "connectWebRtcTransport", "data": {
        "transportId": "3b0c8b7e-6a5e-4b7b-9e57-7c8f6f2b1d10",
        "dtlsParameters": {"role": "server", "fingerprints": [
            {"algorithm": "sha-512", "value": (["CD"; 64].join(":"))}]}}})
    .to_string();
    assert!(parse_request(&text).is_ok());
}

#[test]
fn responses_and_events_render() {
    let ok = ok_response(3, &json!({"a": 1}));
    assert_eq!(ok, r#"{"response":true,"id":3,"ok":true,"data":{"a":1}}"#);
    let err = error_response(None, &SignalError::new(ErrorCode::UnknownProducer, "x"));
    assert_eq!(
        err,
        r#"{"response":true,"id":null,"ok":false,"error":{"code":"unknown_producer","message":"x"}}"#
    );
    let peer_id = PeerId::new();
    let ev = event_message(&Event::PeerLeft { peer_id });
    let v: Value = serde_json::from_str(&ev).unwrap();
    assert_eq!(v["event"], "peerLeft");
    assert_eq!(v["data"]["peerId"], peer_id.to_string());
}

#[test]
fn join_validation() {
    let mut j = JoinRequest {
        room: "room".into(),
        display_name: "me".into(),
        protocol_version: Some(PROTOCOL_VERSION),
        token: None,
    };
    assert!(validate_join(&j, 16, 16).is_ok());
    j.protocol_version = Some(99);
    let e = validate_join(&j, 16, 16).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    assert!(e.message.contains("99") && e.message.contains(&PROTOCOL_VERSION.to_string()));
    j.protocol_version = None;
    j.room = "x".repeat(17);
    assert_eq!(
        validate_join(&j, 16, 16).unwrap_err().code,
        ErrorCode::BadRequest
    );
    j.room = String::new();
    assert_eq!(
        validate_join(&j, 16, 16).unwrap_err().code,
        ErrorCode::BadRequest
    );
    j.room = "ok".into();
    j.display_name = "a\u{0}b".into();
    assert_eq!(
        validate_join(&j, 16, 16).unwrap_err().code,
        ErrorCode::BadRequest
    );
}

mod fuzz_found {
    use super::super::*;

    /// Found by `examples/fuzz.rs`: a DTLS fingerprint with a multi-byte
    /// character where a hex digit goes made mediasoup's parser panic.
    #[test]
    fn a_fingerprint_with_a_multibyte_character_is_a_bad_request() {
        let text = r#"{"id":4,"method":"connectWebRtcTransport","data":{"transportId":"3b0c8b7e-6a5e-4b7b-9e57-7c8f6f2b1d10","dtlsParameters":{"role":"client","fingerprints":[{"algorithm":"sha-256","value":"AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:�B:AB:AB:AB:AB:AB:AB:AB:AB:AB:AAB"}]}}}"#;
        let f = parse_request(text).unwrap_err();
        assert_eq!(f.error.code, ErrorCode::BadRequest);
    }

    /// A value whose parser panics.
    #[derive(Debug)]
    struct Boom;

    impl<'de> Deserialize<'de> for Boom {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("a third-party parser panicked")
        }
    }

    #[test]
    fn a_parser_that_panics_gives_a_bad_request() {
        let e = data::<Boom>("produce", serde_json::json!({})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }
}
