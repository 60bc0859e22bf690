//! How the room's domain replies, events and errors become the protocol's
//! wire types (the only place the two meet).

use super::{
    ConsumeReply, ErrorCode, Event, JoinReply, PlainTransportReply, SignalError, TransportReply,
};
use crate::room::{self, ConsumerInfo, Joined, PlainTransportInfo, RoomError, WebRtcTransportInfo};
use crate::sfu::SfuError;
use crate::worker::CreateRouterError;

impl Event {
    /// The event's wire name (its `event` field); one of [`EVENTS`].
    pub fn name(&self) -> &'static str {
        match self {
            Event::PeerJoined(_) => "peerJoined",
            Event::PeerLeft { .. } => "peerLeft",
            Event::NewProducer(_) => "newProducer",
            Event::ProducerClosed { .. } => "producerClosed",
            Event::ProducerPaused { .. } => "producerPaused",
            Event::ProducerResumed { .. } => "producerResumed",
            Event::ConsumerClosed { .. } => "consumerClosed",
            Event::Reconnect { .. } => "reconnect",
            Event::NewDataProducer(_) => "newDataProducer",
            Event::DataProducerClosed { .. } => "dataProducerClosed",
            Event::ActiveSpeaker { .. } => "activeSpeaker",
        }
    }
}

impl From<room::Event> for Event {
    fn from(e: room::Event) -> Self {
        match e {
            room::Event::PeerJoined(info) => Event::PeerJoined(info),
            room::Event::PeerLeft { peer_id } => Event::PeerLeft { peer_id },
            room::Event::NewProducer(info) => Event::NewProducer(info),
            room::Event::ProducerClosed { producer_id } => Event::ProducerClosed { producer_id },
            room::Event::ProducerPaused { producer_id } => Event::ProducerPaused { producer_id },
            room::Event::ProducerResumed { producer_id } => Event::ProducerResumed { producer_id },
            room::Event::ConsumerClosed {
                consumer_id,
                producer_id,
            } => Event::ConsumerClosed {
                consumer_id,
                producer_id,
            },
            room::Event::Reconnect { reason, url } => Event::Reconnect { reason, url },
            room::Event::NewDataProducer(info) => Event::NewDataProducer(info),
            room::Event::DataProducerClosed { data_producer_id } => {
                Event::DataProducerClosed { data_producer_id }
            }
            room::Event::ActiveSpeaker {
                peer_id,
                producer_id,
            } => Event::ActiveSpeaker {
                peer_id,
                producer_id,
            },
        }
    }
}

impl From<&Joined> for JoinReply {
    fn from(j: &Joined) -> Self {
        JoinReply {
            peer_id: j.peer_id,
            room_id: j.room_id.clone(),
            router_rtp_capabilities: j.rtp_capabilities.clone(),
            peers: j.peers.clone(),
            producers: j.producers.clone(),
            data_producers: j.data_producers.clone(),
        }
    }
}

impl From<&WebRtcTransportInfo> for TransportReply {
    fn from(t: &WebRtcTransportInfo) -> Self {
        TransportReply {
            id: t.id,
            ice_parameters: t.ice_parameters.clone(),
            ice_candidates: t.ice_candidates.clone(),
            dtls_parameters: t.dtls_parameters.clone(),
            sctp_parameters: t.sctp_parameters,
        }
    }
}

impl From<&PlainTransportInfo> for PlainTransportReply {
    fn from(t: &PlainTransportInfo) -> Self {
        PlainTransportReply {
            id: t.id,
            ip: t.ip.clone(),
            port: t.port,
        }
    }
}

impl From<&ConsumerInfo> for ConsumeReply {
    fn from(c: &ConsumerInfo) -> Self {
        ConsumeReply {
            id: c.id,
            producer_id: c.producer_id,
            kind: c.kind,
            rtp_parameters: c.rtp_parameters.clone(),
            producer_paused: c.producer_paused,
        }
    }
}

impl From<&RoomError> for SignalError {
    fn from(e: &RoomError) -> Self {
        let code = match e {
            RoomError::RoomClosed => ErrorCode::UnknownRoom,
            RoomError::UnknownPeer(_) => ErrorCode::NotJoined,
            RoomError::UnknownTransport(_)
            | RoomError::WrongDirection(..)
            | RoomError::WrongTransportKind(..) => ErrorCode::UnknownTransport,
            RoomError::UnknownProducer(_) => ErrorCode::UnknownProducer,
            RoomError::UnknownConsumer(_) => ErrorCode::UnknownConsumer,
            RoomError::CannotConsume(_) => ErrorCode::CannotConsume,
            RoomError::InvalidParameters(_) => ErrorCode::InvalidParameters,
            RoomError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            RoomError::NoPorts(_) => ErrorCode::Capacity,
            RoomError::Forbidden(_) => ErrorCode::Forbidden,
            RoomError::NoWorker | RoomError::Router(CreateRouterError::WorkerGone(_)) => {
                ErrorCode::Capacity
            }
            RoomError::Router(_)
            | RoomError::Mediasoup(_)
            | RoomError::NotClustered
            | RoomError::Remote(_) => ErrorCode::Internal,
        };
        SignalError::new(code, e.to_string())
    }
}

impl From<&SfuError> for SignalError {
    fn from(e: &SfuError) -> Self {
        match e {
            SfuError::Room(e) => e.into(),
            SfuError::GetRoom(e) => SignalError::new(ErrorCode::Capacity, e.to_string()),
            SfuError::RoomGone => SignalError::new(ErrorCode::UnknownRoom, e.to_string()),
            SfuError::NodeGone => SignalError::new(ErrorCode::Internal, e.to_string()),
        }
    }
}
