//! [`RoomError`]: why a room operation failed.

use mediasoup::prelude::{ConsumerId, ProducerId, TransportId};

use super::messages::Direction;
use crate::ids::PeerId;
use crate::worker::CreateRouterError;

/// Why a room operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomError {
    /// The room is closing or closed.
    #[error("the room is closed")]
    RoomClosed,
    /// The peer is not (or no longer) in the room.
    #[error("peer {0} is not in the room")]
    UnknownPeer(PeerId),
    /// Not one of the peer's transports.
    #[error("unknown transport {0}")]
    UnknownTransport(TransportId),
    /// The transport was created for the other direction.
    #[error("transport {0} is a {1:?} transport")]
    WrongDirection(TransportId, Direction),
    /// The request needs the other kind of transport (e.g. DTLS parameters
    /// for a plain transport).
    #[error("transport {0} is not a {1} transport")]
    WrongTransportKind(TransportId, &'static str),
    /// Not a producer the peer may use.
    #[error("unknown producer {0}")]
    UnknownProducer(ProducerId),
    /// Not one of the peer's consumers.
    #[error("unknown consumer {0}")]
    UnknownConsumer(ConsumerId),
    /// The capabilities cannot receive the producer.
    #[error("cannot consume producer {0} with the given RTP capabilities")]
    CannotConsume(ProducerId),
    /// mediasoup refused the parameters.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// No worker is alive to place the peer on.
    #[error("no mediasoup worker is available on this node")]
    NoWorker,
    /// No router could be created.
    #[error(transparent)]
    Router(#[from] CreateRouterError),
    /// Another mediasoup failure.
    #[error("mediasoup: {0}")]
    Mediasoup(String),
    /// The operation needs another node, and this node is not in a cluster.
    #[error("this node is not in a cluster")]
    NotClustered,
    /// The room's shard on another node refused or did not answer.
    #[error("another node: {0}")]
    Remote(String),
    /// A configured limit (`[limits]`) would be passed.
    #[error("limit `limits.{limit}` ({max}) reached")]
    LimitExceeded {
        /// The limit's key in `[limits]`.
        limit: &'static str,
        /// Its value.
        max: usize,
    },
    /// The node's policy refuses the request (e.g. a plain transport
    /// aimed at an address outside `rtc.plain_allowed_networks`).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The node's RTC port range is exhausted.
    #[error("no RTC port left on this node: {0}")]
    NoPorts(String),
}

impl RoomError {
    /// A failed worker request: the worker's own refusal (`Response`) means
    /// the client's parameters were invalid; anything else is internal.
    pub(crate) fn from_request(e: mediasoup::worker::RequestError) -> Self {
        match e {
            mediasoup::worker::RequestError::Response { ref reason }
                if reason.contains("no more available ports") =>
            {
                RoomError::NoPorts(reason.clone())
            }
            mediasoup::worker::RequestError::Response { .. } => {
                RoomError::InvalidParameters(e.to_string())
            }
            other => RoomError::Mediasoup(other.to_string()),
        }
    }

    /// Any other mediasoup failure.
    pub(crate) fn mediasoup(e: impl std::fmt::Display) -> Self {
        RoomError::Mediasoup(e.to_string())
    }

    /// A failed transport creation: port exhaustion is [`RoomError::NoPorts`],
    /// anything else a mediasoup failure.
    pub(crate) fn transport_creation(e: mediasoup::worker::RequestError) -> Self {
        match Self::from_request(e) {
            RoomError::InvalidParameters(m) => RoomError::Mediasoup(m),
            other => other,
        }
    }

    /// Checks a limit: `count` held, one more wanted.
    pub(crate) fn check_limit(limit: &'static str, count: usize, max: usize) -> Result<(), Self> {
        if count >= max {
            Err(RoomError::LimitExceeded { limit, max })
        } else {
            Ok(())
        }
    }
}
