//! Property tests of the frame codec and wire decoding (the fuzzing
//! substitute: no nightly toolchain for `cargo fuzz`). Raise the case count
//! with `PROPTEST_CASES=100000`.

use bytes::{BufMut, BytesMut};
use mafalda_actors::{
    codec,
    frame::{encode_frame, FrameDecoder, LEN_PREFIX},
    id::{Incarnation, NodeId},
    wire::{
        decode_handshake, decode_with_body, encode_with_body, Hello, HelloReply, Reply, Request,
        TellHeader,
    },
    FrameError,
};
use proptest::prelude::*;

const MAX: usize = 4096;

fn frames_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12)
}

proptest! {
    /// Any payloads, encoded then fed in arbitrary chunks, come back intact.
    #[test]
    fn frames_round_trip(payloads in frames_strategy(), cuts in prop::collection::vec(1usize..300, 1..50)) {
        let mut wire = BytesMut::new();
        for p in &payloads {
            encode_frame(p, MAX, &mut wire).unwrap();
        }
        let dec = FrameDecoder::new(MAX);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut cuts = cuts.into_iter().cycle();
        while !wire.is_empty() {
            let n = cuts.next().unwrap().min(wire.len());
            buf.extend_from_slice(&wire.split_to(n));
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
        }
        dec.finish(&buf).unwrap();
        prop_assert_eq!(out, payloads);
    }

    /// Garbage never panics, never makes the buffer grow past the limit,
    /// and any announced length over the limit is an error.
    #[test]
    fn garbage_frames(data in prop::collection::vec(any::<u8>(), 0..3000), max in 0usize..2048) {
        let dec = FrameDecoder::new(max);
        let mut buf = BytesMut::from(&data[..]);
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(f)) => prop_assert!(f.len() <= max),
                Ok(None) => {
                    prop_assert!(buf.capacity() <= (max + LEN_PREFIX).max(data.len()) + 64);
                    if !buf.is_empty() {
                        let truncated = matches!(dec.finish(&buf), Err(FrameError::Truncated { .. }));
                        prop_assert!(truncated);
                    }
                    break;
                }
                Err(FrameError::TooLarge { len, max: m }) => {
                    prop_assert!(len as usize > m);
                    prop_assert_eq!(buf.len(), before);
                    break;
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }

    /// Payload decoders accept or reject garbage, never panic.
    #[test]
    fn garbage_payloads(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_with_body::<Request>(&data);
        let _ = decode_with_body::<Reply>(&data);
        let _ = decode_with_body::<TellHeader>(&data);
        let _ = decode_handshake::<Hello>(&data);
        let _ = decode_handshake::<HelloReply>(&data);
        let mut prefixed = b"MFAB".to_vec();
        prefixed.extend_from_slice(&mafalda_actors::PROTOCOL_VERSION.to_be_bytes());
        prefixed.extend_from_slice(&data);
        let _ = decode_handshake::<Hello>(&prefixed);
        let _ = codec::decode::<Vec<String>>(&data);
    }

    /// Wire headers round-trip with any names and bodies.
    #[test]
    fn wire_round_trip(actor in ".{0,40}", tag in ".{0,40}", route in any::<u32>(), trace in any::<u64>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let headers = [
            TellHeader::Bind { route, actor: actor.clone(), tag: tag.clone(), trace },
            TellHeader::Msg { route, trace },
        ];
        for h in headers {
            let mut buf = BytesMut::new();
            encode_with_body(&h, &body, MAX, &mut buf).unwrap();
            let frame = FrameDecoder::new(MAX).decode(&mut buf).unwrap().unwrap();
            let (back, rest) = decode_with_body::<TellHeader>(&frame).unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(rest, &body[..]);
        }
        let req = Request::Ask { actor, tag, trace };
        let bytes = codec::encode(&req).unwrap();
        prop_assert_eq!(codec::decode::<Request>(&bytes).unwrap(), req);
    }

    /// Handshakes round-trip; a flipped version byte is a version error.
    #[test]
    fn handshake_round_trip(generation in any::<u64>(), port in 1u16.., version in any::<u16>()) {
        let hello = Hello {
            incarnation: Incarnation {
                node: NodeId::new("node-a").unwrap(),
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                generation,
                bump: 0,
            },
            max_frame_bytes: 1 << 20,
        };
        let mut buf = BytesMut::new();
        mafalda_actors::wire::encode_handshake_versioned(&hello, version, MAX, &mut buf).unwrap();
        let frame = FrameDecoder::new(MAX).decode(&mut buf).unwrap().unwrap();
        match decode_handshake::<Hello>(&frame) {
            Ok(h) => { prop_assert_eq!(version, mafalda_actors::PROTOCOL_VERSION); prop_assert_eq!(h, hello); }
            Err(mafalda_actors::HandshakeError::VersionMismatch { remote, .. }) => prop_assert_eq!(remote, version),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        let mut junk = BytesMut::new();
        junk.put_u32(7);
        prop_assert!(decode_handshake::<Hello>(&junk).is_err());
    }
}
