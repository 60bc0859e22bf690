//! The embedding API, shaped like the mediasoup crate: a [`Router`] is a
//! Mafalda room spread over the node's workers.
//!
//! An application written against mediasoup changes its imports
//! (`mediasoup::` becomes `mafalda::mediasoup::`) and its worker creation
//! ([`Worker::start`] starts a Mafalda node; [`Worker::create_router`]
//! opens a room), and little else. Option, parameter and error types are
//! mediasoup's own, re-exported here under mediasoup's module names.
//!
//! # What is Mafalda's, what is mediasoup's
//!
//! - [`Router`] is ours: one room. Each transport it creates is placed on
//!   a worker by the node's placement (`[placement]`), on the room's
//!   router there, so one `Router` spans several mediasoup routers.
//! - [`WebRtcTransport`], [`PlainTransport`] and [`DirectTransport`] are
//!   the real mediasoup transports behind a thin [`Seated`] wrapper that
//!   dereferences to them (every inherent method is mediasoup's: `connect`,
//!   `restart_ice`, `ice_state`, `set_max_incoming_bitrate`, ...). Only
//!   what crosses routers is ours: [`Transport::consume`] and
//!   [`Transport::consume_data`] first have the room pipe the producer
//!   into the transport's router when it lives on another worker.
//! - [`Producer`], [`Consumer`], [`DataProducer`] and [`DataConsumer`]
//!   are mediasoup's own handles, returned as they are: their state,
//!   events, stats and `Drop` are mediasoup's. A consumer of a piped
//!   producer consumes the pipe producer, which has the same id and
//!   follows the original's pause and resume, so `producer_paused()` and
//!   the `on_producer_pause` events are live through pipes.
//! - [`ActiveSpeakerObserver`] and [`AudioLevelObserver`] are real
//!   observers behind [`Observed`], whose `add_producer` pipes the
//!   producer into the observer's router first: an observer hears every
//!   audio producer of the room, whichever worker it lives on.
//!
//! # Lifetimes
//!
//! As in mediasoup: dropping the last handle of an entity closes it; a
//! transport keeps its router (and the router its worker) alive. The room
//! stays open while a `Router` handle or any of its transports lives, and
//! it keeps a pipe while a consumer, data consumer or observer uses it.
//!
//! # Relation to signalling
//!
//! This is the one embedding API (the earlier participant facade is gone).
//! The WebSocket signalling drives the same room actor with its own
//! messages: a room opened by name with [`Worker::create_room_router`] is
//! shared with browsers joining it by that name.
//!
//! # Layout
//!
//! - `worker` — [`Worker`]: a node, started in-process, as a worker;
//! - `worker_manager` — [`WorkerManager`]: mediasoup's entry point, starting nodes;
//! - `router` — [`Router`]: a room;
//! - `transport` — [`Seated`] transports and the [`Transport`] trait;
//! - `rtp_observer` — [`Observed`] observers and the [`RtpObserver`] trait.

pub mod router;
pub mod rtp_observer;
pub mod transport;
pub mod worker;
pub mod worker_manager;

pub use router::{CreateRouterError, CreateTransportError, Router, RouterDump};
pub use rtp_observer::{Observed, RtpObserver};
pub use transport::{Seated, Transport, TransportGeneric};
pub use worker::{StartError, Worker, WorkerDump};
pub use worker_manager::WorkerManager;

pub use ::mediasoup::types;
pub use ::mediasoup::types::{data_structures, rtp_parameters, sctp_parameters, srtp_parameters};

/// A WebRTC transport (mediasoup's, seated on one of the room's routers).
pub type WebRtcTransport = Seated<::mediasoup::webrtc_transport::WebRtcTransport>;
/// A plain RTP transport (mediasoup's, seated on one of the room's
/// routers).
pub type PlainTransport = Seated<::mediasoup::plain_transport::PlainTransport>;
/// A direct transport (mediasoup's, seated on one of the room's routers).
pub type DirectTransport = Seated<::mediasoup::direct_transport::DirectTransport>;
/// An active speaker observer hearing the whole room.
pub type ActiveSpeakerObserver =
    Observed<::mediasoup::active_speaker_observer::ActiveSpeakerObserver>;
/// An audio level observer hearing the whole room.
pub type AudioLevelObserver = Observed<::mediasoup::audio_level_observer::AudioLevelObserver>;

pub use ::mediasoup::consumer::Consumer;
pub use ::mediasoup::data_consumer::DataConsumer;
pub use ::mediasoup::data_producer::DataProducer;
pub use ::mediasoup::producer::Producer;

/// mediasoup's supported RTP capabilities.
pub mod supported_rtp_capabilities {
    pub use ::mediasoup::supported_rtp_capabilities::*;
}

/// Pipe transport types (pipes are the room's own; see `docs/compat.md`).
pub mod pipe_transport {
    pub use ::mediasoup::pipe_transport::{PipeTransportOptions, PipeTransportRemoteParameters};
}

/// Producers: mediasoup's.
pub mod producer {
    pub use ::mediasoup::producer::*;
}

/// Consumers: mediasoup's.
pub mod consumer {
    pub use ::mediasoup::consumer::*;
}

/// Data producers: mediasoup's.
pub mod data_producer {
    pub use ::mediasoup::data_producer::*;
}

/// Data consumers: mediasoup's.
pub mod data_consumer {
    pub use ::mediasoup::data_consumer::*;
}

/// WebRTC transports.
pub mod webrtc_transport {
    pub use super::WebRtcTransport;
    pub use ::mediasoup::webrtc_transport::*;
}

/// Plain transports.
pub mod plain_transport {
    pub use super::PlainTransport;
    pub use ::mediasoup::plain_transport::*;
}

/// Direct transports.
pub mod direct_transport {
    pub use super::DirectTransport;
    pub use ::mediasoup::direct_transport::*;
}

/// Active speaker observers.
pub mod active_speaker_observer {
    pub use super::ActiveSpeakerObserver;
    pub use ::mediasoup::active_speaker_observer::*;
}

/// Audio level observers.
pub mod audio_level_observer {
    pub use super::AudioLevelObserver;
    pub use ::mediasoup::audio_level_observer::*;
}

/// What most applications import: `use mafalda::mediasoup::prelude::*;`.
pub mod prelude {
    pub use super::rtp_observer::RtpObserver;
    pub use super::transport::{Transport, TransportGeneric};
    pub use super::{
        ActiveSpeakerObserver, AudioLevelObserver, DirectTransport, PlainTransport, Router,
        WebRtcTransport, Worker, WorkerManager,
    };
    pub use ::mediasoup::prelude::{
        ActiveSpeakerObserverDominantSpeaker, ActiveSpeakerObserverOptions, AppData,
        AudioLevelObserverOptions, AudioLevelObserverVolume, ConsumeDataError, ConsumeError,
        Consumer, ConsumerId, ConsumerLayers, ConsumerOptions, DataConsumer, DataConsumerId,
        DataConsumerOptions, DataProducer, DataProducerId, DataProducerOptions,
        DirectTransportOptions, DtlsParameters, IceCandidate, IceParameters, ListenInfo, MediaKind,
        MimeTypeAudio, MimeTypeVideo, PlainTransportOptions, PlainTransportRemoteParameters,
        ProduceDataError, ProduceError, Producer, ProducerId, ProducerOptions, Protocol,
        RouterOptions, RtcpFeedback, RtcpParameters, RtpCapabilities, RtpCapabilitiesFinalized,
        RtpCodecCapability, RtpCodecParameters, RtpCodecParametersParameters,
        RtpEncodingParameters, RtpEncodingParametersRtx, RtpHeaderExtensionParameters,
        RtpHeaderExtensionUri, RtpObserverAddProducerOptions, RtpObserverId, RtpParameters,
        SctpStreamParameters, TransportId, WebRtcMessage, WebRtcTransportListenInfos,
        WebRtcTransportOptions, WebRtcTransportRemoteParameters,
    };
    pub use ::mediasoup::worker::WorkerSettings;
}
