//! Wire types and constants of the fabric protocol (see `docs/protocol.md`,
//! section 2). Stable types are plain serde structs and externally tagged
//! enums that bincode can decode; new variants are only ever appended.

use bytes::{BufMut, BytesMut};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{
    codec,
    error::{CodecError, HandshakeError},
    frame::{encode_frame_with, FrameOrInner},
    id::Incarnation,
};

/// Fabric protocol version carried by every handshake frame.
/// Version 2 added the trace id to ask requests and tell headers.
pub const PROTOCOL_VERSION: u16 = 2;
/// First four bytes of every handshake frame payload.
pub const MAGIC: [u8; 4] = *b"MFAB";
/// TLS ALPN protocol identifier.
pub const ALPN: &[u8] = b"mafalda-fabric";
/// Magic + version.
pub const HANDSHAKE_PREFIX: usize = 6;

/// First byte of every QUIC stream, written by the opener.
pub mod stream_kind {
    /// Bidirectional: the link handshake (first stream of a connection).
    pub const HANDSHAKE: u8 = 0x01;
    /// Bidirectional: one ask (one request frame, one reply frame).
    pub const ASK: u8 = 0x02;
    /// Unidirectional: the ordered tell stream of a link.
    pub const TELL: u8 = 0x03;
}

/// First byte of every QUIC datagram.
pub mod datagram_kind {
    /// A SWIM (foca) packet.
    pub const SWIM: u8 = 0x01;
}

/// Application close codes for QUIC connections.
pub mod close_code {
    /// Orderly shutdown of the node.
    pub const SHUTDOWN: u32 = 0;
    /// Another link to the same peer won the tie-break.
    pub const DUPLICATE: u32 = 1;
    /// The handshake was refused.
    pub const REFUSED: u32 = 2;
    /// The peer broke the protocol at connection level.
    pub const PROTOCOL: u32 = 3;
    /// Membership declared the peer down.
    pub const PEER_DOWN: u32 = 4;
    /// The peer restarted (newer generation) or the link was replaced.
    pub const SUPERSEDED: u32 = 5;
}

/// Application error codes for resetting / stopping one stream.
pub mod stream_code {
    /// A frame exceeded the size limit.
    pub const FRAME_TOO_LARGE: u32 = 1;
    /// A frame or payload failed to decode.
    pub const DECODE: u32 = 2;
    /// Unknown stream kind byte.
    pub const UNKNOWN_KIND: u32 = 3;
    /// The asker gave up (timeout or cancellation).
    pub const CANCELLED: u32 = 4;
}

/// Sent by the dialer on the handshake stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The dialer's incarnation (name, advertised address, generation).
    pub incarnation: Incarnation,
    /// The dialer's maximum frame size (informational).
    pub max_frame_bytes: u32,
}

/// The acceptor's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Link established.
    Accept {
        /// The acceptor's incarnation.
        incarnation: Incarnation,
    },
    /// Link refused; the acceptor closes the connection.
    Reject(RejectReason),
}

/// Why an acceptor refused a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The acceptor only speaks `supported`.
    VersionMismatch {
        /// The acceptor's version.
        supported: u16,
    },
    /// A link between the two nodes already exists and wins the tie-break.
    DuplicateLink,
    /// The dialer is an older generation than a live link of the same name.
    Stale,
    /// The claimed name is not in the dialer's certificate.
    NameMismatch,
    /// The dialer is the acceptor itself.
    SelfConnect,
    /// The acceptor is shutting down.
    ShuttingDown,
    /// The hello could not be decoded.
    Malformed,
}

/// Header of the request frame on an ask stream; the message body follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Deliver the body to `actor` as message `tag` and reply.
    Ask {
        /// Target actor name.
        actor: String,
        /// Message tag ([`crate::RemoteMessage::TAG`]).
        tag: String,
        /// The request's trace id ([`crate::trace::TraceId`]); never sent
        /// as 0, and a receiver given 0 picks a fresh id.
        trace: u64,
    },
    /// Is `actor` registered for `tag`? (No body.)
    Lookup {
        /// Actor name.
        actor: String,
        /// Message tag.
        tag: String,
    },
}

/// Header of the reply frame on an ask stream; for `Ok` the reply body follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The actor answered; the encoded reply follows.
    Ok,
    /// Lookup: the actor accepts the tag.
    Found,
    /// No actor of that name.
    UnknownActor,
    /// The actor does not accept that tag.
    UnknownMessage,
    /// The request could not be decoded.
    Decode(String),
    /// Handling failed (e.g. the actor's mailbox is closed).
    Remote(String),
}

/// Header of each frame on a tell stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TellHeader {
    /// Binds `route` to (`actor`, `tag`) for the rest of this stream; the
    /// frame also carries a first message body.
    Bind {
        /// Stream-scoped route number.
        route: u32,
        /// Target actor.
        actor: String,
        /// Message tag.
        tag: String,
        /// The first message's trace id (as in [`Request::Ask`]).
        trace: u64,
    },
    /// A message body for an already bound route.
    Msg {
        /// Route number.
        route: u32,
        /// The message's trace id (as in [`Request::Ask`]).
        trace: u64,
    },
}

/// Appends a handshake frame: magic, version (u16 big-endian), bincode body.
pub fn encode_handshake<T: Serialize>(
    value: &T,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    encode_handshake_versioned(value, PROTOCOL_VERSION, max, dst)
}

/// Like [`encode_handshake`] with an explicit version (tests use it to
/// impersonate other versions).
pub fn encode_handshake_versioned<T: Serialize>(
    value: &T,
    version: u16,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    encode_frame_with(dst, max, |b| {
        b.put_slice(&MAGIC);
        b.put_u16(version);
        codec::encode_into(value, b)
    })
    .map_err(|e| match e {
        FrameOrInner::Frame(f) => CodecError::Encode(f.to_string()),
        FrameOrInner::Inner(c) => c,
    })
}

/// Decodes a handshake frame payload, checking magic and version first.
pub fn decode_handshake<T: DeserializeOwned>(payload: &[u8]) -> Result<T, HandshakeError> {
    if payload.len() < HANDSHAKE_PREFIX || payload[..4] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    let remote = u16::from_be_bytes([payload[4], payload[5]]);
    if remote != PROTOCOL_VERSION {
        return Err(HandshakeError::VersionMismatch {
            local: PROTOCOL_VERSION,
            remote,
        });
    }
    codec::decode(&payload[HANDSHAKE_PREFIX..])
        .map_err(|e| HandshakeError::Malformed(e.to_string()))
}

/// Appends one frame made of an encoded header followed by a raw body.
pub fn encode_with_body<H: Serialize>(
    header: &H,
    body: &[u8],
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), FrameOrInner<CodecError>> {
    encode_frame_with(dst, max, |b| {
        codec::encode_into(header, b)?;
        b.put_slice(body);
        Ok(())
    })
}

/// Splits a frame payload into its decoded header and the raw body after it.
pub fn decode_with_body<H: DeserializeOwned>(payload: &[u8]) -> Result<(H, &[u8]), CodecError> {
    let (header, used) = codec::decode_prefix(payload)?;
    Ok((header, &payload[used..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame::FrameDecoder, id::NodeId};

    fn inc() -> Incarnation {
        Incarnation {
            node: NodeId::new("a").unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation: 9,
            bump: 0,
        }
    }

    #[test]
    fn handshake_round_trip_and_version() {
        let hello = Hello {
            incarnation: inc(),
            max_frame_bytes: 10,
        };
        let dec = FrameDecoder::new(1 << 16);
        let mut buf = BytesMut::new();
        encode_handshake(&hello, 1 << 16, &mut buf).unwrap();
        let payload = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(decode_handshake::<Hello>(&payload).unwrap(), hello);

        encode_handshake_versioned(&hello, 99, 1 << 16, &mut buf).unwrap();
        let payload = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            decode_handshake::<Hello>(&payload),
            Err(HandshakeError::VersionMismatch {
                local: PROTOCOL_VERSION,
                remote: 99
            })
        );
        // Version 1 had no trace ids in its headers.
        encode_handshake_versioned(&hello, 1, 1 << 16, &mut buf).unwrap();
        let payload = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            decode_handshake::<Hello>(&payload),
            Err(HandshakeError::VersionMismatch {
                local: 2,
                remote: 1
            })
        );
        assert_eq!(
            decode_handshake::<Hello>(b"GET / HTTP/1.1"),
            Err(HandshakeError::BadMagic)
        );
    }

    #[test]
    fn header_and_body() {
        let mut buf = BytesMut::new();
        let msg = TellHeader::Msg {
            route: 3,
            trace: u64::MAX,
        };
        encode_with_body(&msg, b"xyz", 100, &mut buf).unwrap();
        let payload = FrameDecoder::new(100).decode(&mut buf).unwrap().unwrap();
        let (h, body) = decode_with_body::<TellHeader>(&payload).unwrap();
        assert_eq!(h, msg);
        assert_eq!(body, b"xyz");
        // Per-message overhead of a bound tell: 4 (length) + 2 (variant,
        // route) + at most 9 (trace varint).
        assert_eq!(payload.len(), 2 + 9 + 3);
    }
}
