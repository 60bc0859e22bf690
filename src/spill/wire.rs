//! The fabric messages of spilled sessions, all to the actor
//! [`SESSIONS_ACTOR`] of a node (plain serde types; signalling requests,
//! replies and events travel as the protocol's own JSON text).

use actix::Message;
use mafalda_actors::{NodeId, RemoteMessage};
use serde::{Deserialize, Serialize};

use crate::room::wire::AsJson;
use crate::signalling::SignalError;

/// The actor name under which every clustered node serves spilled
/// sessions.
pub const SESSIONS_ACTOR: &str = "sfu.sessions";

/// A session's id on its signalling node; unique there.
pub type SessionId = u64;

/// Asks a peer to admit a participant whose signalling stays on `origin`:
/// it joins `room` on the peer, whose own workers then carry its media.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<SpillAccepted, SpillError>")]
pub struct SpillJoin {
    /// The signalling node.
    pub origin: NodeId,
    /// The session there.
    pub session: SessionId,
    /// The room name, as the client gave it.
    pub room: String,
    /// The participant's display name.
    pub display_name: String,
}

impl RemoteMessage for SpillJoin {
    const TAG: &'static str = "sfu.SpillJoin/v1";
}

/// A spilled participant was admitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpillAccepted {
    /// The `join` reply's `data`, as JSON text.
    pub join: String,
}

/// Why a peer did not admit a participant.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum SpillError {
    /// Every worker of the peer is at or above its watermark.
    #[error("node is full (best worker score {score:.2})")]
    Full {
        /// Its best worker's score.
        score: f64,
    },
    /// The peer is draining.
    #[error("node is draining")]
    Draining,
    /// The peer has too many admissions in flight.
    #[error("too many admissions in flight")]
    Busy,
    /// The join itself failed there (the client sees this error).
    #[error("join failed there")]
    Join(AsJson<SignalError>),
}

impl SpillError {
    /// The outcome it stands for, as `/metrics` labels admissions: `full`,
    /// `draining`, `busy` or `join_failed`.
    pub fn outcome(&self) -> &'static str {
        match self {
            SpillError::Full { .. } => "full",
            SpillError::Draining => "draining",
            SpillError::Busy => "busy",
            SpillError::Join(_) => "join_failed",
        }
    }
}

/// One signalling request of a spilled session, as the client sent it
/// (the whole JSON text frame); answered with the reply's `data` as JSON
/// text, or the protocol's error object.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<String, AsJson<SignalError>>")]
pub struct SessionRequest {
    /// The signalling node.
    pub origin: NodeId,
    /// The session there.
    pub session: SessionId,
    /// The request frame.
    pub request: String,
}

impl RemoteMessage for SessionRequest {
    const TAG: &'static str = "sfu.SessionRequest/v1";
}

/// An event for a spilled session's client, as JSON text (told by the
/// media node to the signalling node, in order).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct SessionEvent {
    /// The session on the receiving node.
    pub session: SessionId,
    /// The event frame.
    pub event: String,
}

impl RemoteMessage for SessionEvent {
    const TAG: &'static str = "sfu.SessionEvent/v1";
}

/// The media node removed a spilled participant (its room dropped it):
/// the signalling node closes the client's socket.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct SessionEnded {
    /// The session on the receiving node.
    pub session: SessionId,
}

impl RemoteMessage for SessionEnded {
    const TAG: &'static str = "sfu.SessionEnded/v1";
}

/// The client of a spilled session left or its socket closed: the media
/// node removes the participant.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct SessionClosed {
    /// The signalling node.
    pub origin: NodeId,
    /// The session there.
    pub session: SessionId,
}

impl RemoteMessage for SessionClosed {
    const TAG: &'static str = "sfu.SessionClosed/v1";
}
