//! Typed errors, one enum per operation.

use std::{path::PathBuf, time::Duration};

use crate::{id::NodeId, wire::RejectReason};

/// An invalid node name, actor name or actor path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The node name is not a lowercase DNS name of at most 63 bytes.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeName {
        /// The offending name (truncated).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The actor name is empty, too long or contains `/`.
    #[error("invalid actor name {name:?}: {reason}")]
    InvalidActorName {
        /// The offending name (truncated).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An actor path is not of the form `node/actor`.
    #[error("invalid actor path {path:?}: expected node/actor")]
    InvalidPath {
        /// The offending path (truncated).
        path: String,
    },
}

/// A framing error on a stream. Closes only the offending stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum; nothing
    /// was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the incomplete frame that were received.
        buffered: usize,
    },
}

/// A payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Serialising a value failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode failed: {0}")]
    Decode(String),
    /// A value decoded but bytes were left over.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

/// Why a link handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first bytes are not the fabric's magic: not a Mafalda peer.
    #[error("bad handshake magic (not a Mafalda fabric peer)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: local version {local}, remote version {remote}")]
    VersionMismatch {
        /// Our version.
        local: u16,
        /// The peer's version.
        remote: u16,
    },
    /// The handshake frame could not be read or decoded.
    #[error("malformed handshake: {0}")]
    Malformed(String),
    /// The peer refused the link.
    #[error("peer refused the link: {0:?}")]
    Rejected(RejectReason),
    /// The peer claims a name its certificate does not carry.
    #[error("peer claims to be {claimed} but its certificate does not name it: {reason}")]
    NameMismatch {
        /// The claimed name.
        claimed: NodeId,
        /// Certificate validation detail.
        reason: String,
    },
    /// The peer presented no certificate.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The peer is this very node.
    #[error("connected to self")]
    SelfConnect,
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,
}

/// A dial (outgoing link) failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The QUIC connection could not be started.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC/TLS handshake or the connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The fabric handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// Reading or writing the handshake stream failed.
    #[error("handshake stream: {0}")]
    Stream(String),
    /// The node is shutting down.
    #[error("node is shutting down")]
    Stopped,
}

/// An `ask` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// No link to the node (unknown, down, dial failed, or the link died
    /// while the ask was pending).
    #[error("node {node} unreachable: {reason}")]
    Unreachable {
        /// Target node.
        node: NodeId,
        /// Detail.
        reason: String,
    },
    /// No reply within the timeout. The pending entry has been removed.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The request or the reply could not be decoded.
    #[error("decode: {0}")]
    Decode(String),
    /// The request could not be encoded locally.
    #[error("encode: {0}")]
    Encode(String),
    /// The remote side failed to handle the message (e.g. the actor stopped).
    #[error("remote error: {0}")]
    RemoteError(String),
    /// No actor of that name is registered on the node.
    #[error("no actor {actor:?} on node {node}")]
    UnknownActor {
        /// Target node.
        node: NodeId,
        /// Actor name.
        actor: String,
    },
    /// The actor exists but does not accept that message tag.
    #[error("actor {actor:?} on node {node} does not accept message {tag:?}")]
    UnknownMessage {
        /// Target node.
        node: NodeId,
        /// Actor name.
        actor: String,
        /// Message tag.
        tag: String,
    },
}

/// A `tell` could not be queued. (Delivery itself is fire-and-forget.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TellError {
    /// The node is unknown to membership and has no link.
    #[error("node {node} unreachable: {reason}")]
    Unreachable {
        /// Target node.
        node: NodeId,
        /// Detail.
        reason: String,
    },
    /// The message could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// A local named actor is not registered (or not for that message).
    #[error("no local actor {actor:?} accepting {tag:?}")]
    UnknownActor {
        /// Actor name.
        actor: String,
        /// Message tag.
        tag: String,
    },
    /// The per-peer tell queue is full (the peer or the link is slower
    /// than the sender); the message was not queued.
    #[error("tell queue to node {node} is full")]
    QueueFull {
        /// Target node.
        node: NodeId,
    },
    /// The message is larger than the frame limit.
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// Frame limit.
        max: usize,
    },
    /// The local node has been shut down.
    #[error("node stopped")]
    Stopped,
}

/// Registering a named actor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Invalid actor name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// That name already accepts that message tag.
    #[error("actor {actor:?} already registered for message {tag:?}")]
    Duplicate {
        /// Actor name.
        actor: String,
        /// Message tag.
        tag: &'static str,
    },
}

/// Setting the local metadata failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The encoded metadata exceeds what fits in a gossip datagram.
    #[error("metadata encodes to {len} bytes, the limit is {max}")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The node has been shut down.
    #[error("node stopped")]
    Stopped,
}

/// Generating, reading or loading certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// `rcgen` could not build or sign a certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM document could not be parsed.
    #[error("bad PEM ({what}): {reason}")]
    Pem {
        /// Which document.
        what: &'static str,
        /// Parser detail.
        reason: String,
    },
    /// `rustls` refused the certificate material.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The node certificate is not valid for the configured node name.
    #[error("certificate is not valid for node name {node}: {reason}")]
    NameMismatch {
        /// Configured node name.
        node: NodeId,
        /// Validation detail.
        reason: String,
    },
}

/// Starting a node failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or wrapping the UDP socket failed.
    #[error("endpoint: {0}")]
    Io(#[from] std::io::Error),
    /// Bad TLS material.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No async runtime usable by quinn is running.
    #[error("no tokio runtime found (start the node inside tokio or an actix System)")]
    NoRuntime,
}
