//! The room's public messages, their domain replies and the events it
//! pushes to its peers.
//!
//! These are domain types: the signalling layer (`crate::signalling`) and
//! the embedding facade (`crate::sfu`) map them to their own forms. The
//! event and info types are plain serde data (externally tagged enums, no
//! `untagged` or `flatten`), so that they can also cross the fabric.

use actix::prelude::*;
use mediasoup::prelude::{ConsumerId, DataProducerId, ProducerId, TransportId};
use mediasoup::types::data_structures::{DtlsParameters, IceCandidate, IceParameters};
use mediasoup::types::rtp_parameters::{
    MediaKind, RtpCapabilities, RtpCapabilitiesFinalized, RtpParameters,
};
use mediasoup::worker::WorkerId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::error::RoomError;
use super::gate::GateHold;
use super::RoomActor;
use crate::ids::{PeerId, RoomId, WorkerSlot};

/// Transport direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// The client sends media on it.
    Send,
    /// The client receives media on it.
    Recv,
}

/// A peer as other peers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    /// Its id.
    pub peer_id: PeerId,
    /// Its display name.
    pub display_name: String,
}

/// A producer as other peers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    /// Its id.
    pub producer_id: ProducerId,
    /// Who sends it.
    pub peer_id: PeerId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Whether it is paused.
    pub paused: bool,
}

/// A data producer as other peers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProducerInfo {
    /// Its id.
    pub data_producer_id: DataProducerId,
    /// Who sends it.
    pub peer_id: PeerId,
    /// The DataChannel's label.
    pub label: String,
    /// The DataChannel's sub-protocol.
    pub protocol: String,
}

/// An event the room pushes to one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// Another peer joined.
    PeerJoined(PeerInfo),
    /// Another peer left.
    PeerLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// Another peer started sending.
    NewProducer(ProducerInfo),
    /// A producer went away.
    ProducerClosed {
        /// Which.
        producer_id: ProducerId,
    },
    /// A producer was paused.
    ProducerPaused {
        /// Which.
        producer_id: ProducerId,
    },
    /// A producer was resumed.
    ProducerResumed {
        /// Which.
        producer_id: ProducerId,
    },
    /// One of this peer's consumers was closed because its producer (or
    /// the pipe it came through) went away.
    ConsumerClosed {
        /// Which consumer.
        consumer_id: ConsumerId,
        /// Its producer.
        producer_id: ProducerId,
    },
    /// This peer lost its place in the room (the worker or node serving
    /// it died), or must move (its node drains). Join again to continue,
    /// through `url` when given.
    Reconnect {
        /// Why, for logs.
        reason: String,
        /// The signalling URL of the node to join through, if the server
        /// knows a better one (a draining node names a peer).
        url: Option<String>,
    },
    /// Another peer started sending data (a DataChannel).
    NewDataProducer(DataProducerInfo),
    /// A data producer went away.
    DataProducerClosed {
        /// Which.
        data_producer_id: DataProducerId,
    },
    /// The room's active speaker changed (the loudest audio producer, by
    /// the room's `ActiveSpeakerObserver`, when `rooms.active_speaker`).
    ActiveSpeaker {
        /// Whose producer.
        peer_id: PeerId,
        /// The audio producer.
        producer_id: ProducerId,
    },
}

/// What a peer learns on joining.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The id the room gave the peer.
    pub peer_id: PeerId,
    /// The room joined.
    pub room_id: RoomId,
    /// The routers' RTP capabilities (every router of a room has the same).
    pub rtp_capabilities: RtpCapabilitiesFinalized,
    /// The other peers already in the room.
    pub peers: Vec<PeerInfo>,
    /// Their producers.
    pub producers: Vec<ProducerInfo>,
    /// Their data producers (on this node).
    pub data_producers: Vec<DataProducerInfo>,
}

/// A WebRTC transport the room created for a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct WebRtcTransportInfo {
    /// Transport id.
    pub id: TransportId,
    /// ICE username fragment and password.
    pub ice_parameters: IceParameters,
    /// Where the client sends media.
    pub ice_candidates: Vec<IceCandidate>,
    /// The node's DTLS role and fingerprints.
    pub dtls_parameters: DtlsParameters,
    /// The node's SCTP parameters, when SCTP is enabled.
    pub sctp_parameters: Option<mediasoup::types::sctp_parameters::SctpParameters>,
}

/// A plain RTP transport the room created for a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainTransportInfo {
    /// Transport id.
    pub id: TransportId,
    /// The node's address (the announced one when configured).
    pub ip: String,
    /// The node's port (RTP and RTCP).
    pub port: u16,
}

/// A consumer the room created for a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerInfo {
    /// Consumer id.
    pub id: ConsumerId,
    /// The producer it receives.
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: MediaKind,
    /// What the client will receive.
    pub rtp_parameters: RtpParameters,
    /// Whether the producer was paused when the consumer was created.
    pub producer_paused: bool,
}

/// Sent to the room registry when a room has stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RoomClosed {
    /// Which room.
    pub room: RoomId,
    /// Which incarnation of it (a new room of the same name may exist).
    pub addr: Addr<RoomActor>,
}

/// Closes the room and disconnects everyone (e.g. the node is stopping).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseRoom(pub String);

/// A worker of the node died (or was killed): the room drops its router
/// there and every pipe into or out of it; the peers placed there get a
/// `reconnect` event and are removed (their event queues end). Peers on
/// other workers stay. Sent by the room registry, and by the router's
/// `on_worker_close`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WorkerLost {
    /// The slot.
    pub slot: WorkerSlot,
    /// The worker that filled it (a replacement may fill it by now).
    pub worker_id: WorkerId,
    /// Why, for logs and the `reconnect` event.
    pub reason: String,
}

/// A peer joins; the room assigns its id and places it on a worker.
#[derive(Debug, Message)]
#[rtype(result = "Result<Joined, RoomError>")]
pub struct Join {
    /// Its display name.
    pub display_name: String,
    /// Where its events go.
    pub events: mpsc::Sender<Event>,
    /// The registry's hold on the room, so that it does not close before
    /// the join arrives (see [`RoomGate`](super::RoomGate)).
    pub hold: GateHold,
}

/// A peer leaves (or its socket closed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Who.
    pub peer_id: PeerId,
}

/// The routers' RTP capabilities (every router of a room offers the same).
#[derive(Debug, Message)]
#[rtype(result = "Result<RtpCapabilitiesFinalized, RoomError>")]
pub struct GetRtpCapabilities;

/// Creates a WebRTC transport for a peer, on its worker's router.
#[derive(Debug, Message)]
#[rtype(result = "Result<WebRtcTransportInfo, RoomError>")]
pub struct CreateTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Send or receive.
    pub direction: Direction,
    /// With SCTP, for DataChannels.
    pub enable_sctp: bool,
}

/// Connects a peer's transport (DTLS parameters from the client).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct ConnectTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub transport_id: TransportId,
    /// The client's DTLS role and fingerprints.
    pub dtls_parameters: DtlsParameters,
}

/// Creates a plain RTP transport for a peer, on its worker's router: RTCP
/// multiplexed, no SRTP; the remote address comes from
/// [`ConnectPlainTransport`] or, with `comedia`, from the first packet.
#[derive(Debug, Message)]
#[rtype(result = "Result<PlainTransportInfo, RoomError>")]
pub struct CreatePlainTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Send or receive.
    pub direction: Direction,
    /// Learn the remote address from the first packet.
    pub comedia: bool,
}

/// Tells a peer's plain transport where to send RTP and RTCP.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct ConnectPlainTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub transport_id: TransportId,
    /// The remote address.
    pub remote: std::net::SocketAddr,
}

/// A peer starts sending a track.
#[derive(Debug, Message)]
#[rtype(result = "Result<ProducerId, RoomError>")]
pub struct Produce {
    /// Whose.
    pub peer_id: PeerId,
    /// On which of its send transports.
    pub transport_id: TransportId,
    /// Audio or video.
    pub kind: MediaKind,
    /// What it sends.
    pub rtp_parameters: RtpParameters,
}

/// A peer starts receiving another peer's track; the consumer starts paused.
/// When the producer lives on another worker, it is piped into the
/// consumer's worker first (one pipe per producer and worker, shared).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ConsumerInfo, RoomError>")]
pub struct Consume {
    /// Who receives.
    pub peer_id: PeerId,
    /// On which of its receive transports.
    pub transport_id: TransportId,
    /// What it receives.
    pub producer_id: ProducerId,
    /// What it can decode.
    pub rtp_capabilities: RtpCapabilities,
}

/// Pause or resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Toggle {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
}

/// Pauses or resumes one of a peer's consumers.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct ToggleConsumer {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub consumer_id: ConsumerId,
    /// What to do.
    pub action: Toggle,
}

/// What to do with a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProducerAction {
    /// Pause it.
    Pause,
    /// Resume it.
    Resume,
    /// Close it.
    Close,
}

/// Pauses, resumes or closes one of a peer's producers.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct ActOnProducer {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub producer_id: ProducerId,
    /// What to do.
    pub action: ProducerAction,
}

/// RTP statistics of one of a peer's producers (mediasoup's
/// `Producer::get_stats`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<mediasoup::producer::ProducerStat>, RoomError>")]
pub struct ProducerStats {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub producer_id: ProducerId,
}

/// RTP statistics of one of a peer's consumers (mediasoup's
/// `Consumer::get_stats`: the consumer's stream, and the producer's).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<mediasoup::consumer::ConsumerRtpStreamStat>, RoomError>")]
pub struct ConsumerStats {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub consumer_id: ConsumerId,
}

/// How many peers the room has (for status and tests).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct PeerCount;

/// Whether `rtp_capabilities` can receive one of the room's producers
/// (mediasoup's `Router::can_consume`, asked of the producer's router; every
/// router of a room has the same capabilities). `false` for an unknown
/// producer.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct CanConsume {
    /// The producer.
    pub producer_id: ProducerId,
    /// The receiver's capabilities.
    pub rtp_capabilities: RtpCapabilities,
}
