//! The participant layer: a room's peers in typed, in-process form. The
//! WebSocket signalling session is built on it (a client is one
//! [`Participant`]), and so are tools that act as participants (tests,
//! `examples/moderator.rs`). Applications embed Mafalda through
//! [`crate::mediasoup`] instead (see `docs/architecture.md`, "Embedding,
//! and the participant layer").
//!
//! An [`Sfu`] hands out [`Room`]s; joining one makes a [`Participant`],
//! on which transports, producers and consumers are created with
//! mediasoup's parameter types (`DtlsParameters`, `RtpParameters`,
//! `RtpCapabilities`, ...). Placement of participants over workers and
//! piping producers between them happen in the [`RoomActor`].
//!
//! Every handle is a cheap clone: the room's address, the participant's id
//! and the entity's id (plus what mediasoup reported when it was created).
//!
//! # Lifetimes
//!
//! - Dropping the **last clone of a [`Participant`]** (including the clones
//!   held inside its transports, producers and consumers) leaves the room,
//!   which closes everything the participant owned, as dropping the last
//!   mediasoup handle closes it.
//! - Producers and consumers live as long as their participant; dropping a
//!   [`Producer`] handle does not close it. [`Producer::close`] does.
//! - A consumer closes when its producer closes (event
//!   [`Event::ConsumerClosed`]).
//!
//! # Events
//!
//! The room pushes [`Event`]s to each participant through a bounded queue
//! (`signalling.max_pending_events`); take it once with
//! [`Participant::take_events`] and keep reading it: a participant whose
//! queue is full is removed from the room, like a slow WebSocket client.
//!
//! # Errors
//!
//! Every operation returns [`SfuError`]: the room's own refusal
//! ([`RoomError`]), or the room or node actor being gone.

use std::sync::Arc;

use actix::{Addr, MailboxError};
use mediasoup::prelude::{ConsumerId, ProducerId, TransportId};
use mediasoup::types::data_structures::{DtlsParameters, IceCandidate, IceParameters};
use mediasoup::types::rtp_parameters::{
    MediaKind, RtpCapabilities, RtpCapabilitiesFinalized, RtpParameters,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::ids::{PeerId, RoomId};
use crate::node::RunningNode;
use crate::registry::GetRoomError;
use crate::room::{
    ActOnProducer, CanConsume, ConnectPlainTransport, ConnectTransport, Consume, ConsumerInfo,
    ConsumerStats, CreatePlainTransport, CreateTransport, GetRtpCapabilities, Join, Joined, Leave,
    PlainTransportInfo, Produce, ProducerAction, ProducerStats, RoomActor, RoomError, Toggle,
    ToggleConsumer, WebRtcTransportInfo,
};
use crate::server::{NodeStatus, Server};
use crate::signalling::SignalError;

pub use mediasoup::consumer::ConsumerRtpStreamStat;
pub use mediasoup::producer::ProducerStat;

pub use crate::room::{Direction, Event, PeerInfo, ProducerInfo};

/// Why a facade operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SfuError {
    /// The room refused the request (unknown id, invalid parameters, ...).
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The node could not provide the room.
    #[error(transparent)]
    GetRoom(#[from] GetRoomError),
    /// The room actor stopped (the room closed); handles on it are dead.
    #[error("the room is closed")]
    RoomGone,
    /// The node's actors stopped.
    #[error("node actor unavailable")]
    NodeGone,
}

impl SfuError {
    /// The signalling error a WebSocket client gets for it.
    pub fn to_signal(&self) -> SignalError {
        self.into()
    }
}

fn room_gone(_: MailboxError) -> SfuError {
    SfuError::RoomGone
}

/// A handle on a running node: the entry point of the facade, in place of a
/// mediasoup `Worker` (the node manages its workers itself).
#[derive(Debug, Clone)]
pub struct Sfu {
    server: Server,
    event_capacity: usize,
}

impl Sfu {
    /// On the node actor of a running node.
    pub fn from_node(node: &RunningNode) -> Self {
        Self::new(node.server.clone(), node.config())
    }

    /// On a node's actors started with `config`.
    pub fn new(server: Server, config: &Config) -> Self {
        Self {
            server,
            event_capacity: config.signalling.max_pending_events.max(1),
        }
    }

    /// The room `name`, created on first use (it closes again when its last
    /// participant leaves). In place of `Worker::create_router`.
    pub async fn room(&self, name: impl Into<String>) -> Result<Room, SfuError> {
        let id = RoomId::new(name.into());
        let ticket = self.ticket(&id).await?;
        Ok(Room {
            sfu: self.clone(),
            id,
            addr: Arc::new(Mutex::new(ticket.addr)),
        })
    }

    async fn ticket(&self, id: &RoomId) -> Result<crate::registry::RoomTicket, SfuError> {
        Ok(self
            .server
            .room(id.clone())
            .await
            .map_err(|_| SfuError::NodeGone)??)
    }

    /// The node's resource counts (what `/api/status` serves).
    pub async fn status(&self) -> Result<NodeStatus, SfuError> {
        self.server.status().await.map_err(|_| SfuError::NodeGone)
    }
}

/// One room: a mediasoup `Router` spread over the node's workers.
///
/// A room closes when its last participant leaves; a `Room` handle outlives
/// that: [`Room::join`] then opens a fresh room of the same name (and the
/// handle follows it), while the other methods return
/// [`SfuError::RoomGone`] until then.
#[derive(Debug, Clone)]
pub struct Room {
    sfu: Sfu,
    id: RoomId,
    addr: Arc<Mutex<Addr<RoomActor>>>,
}

impl Room {
    /// Its name.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    fn addr(&self) -> Addr<RoomActor> {
        self.addr.lock().clone()
    }

    /// The routers' RTP capabilities (`Router::rtp_capabilities`).
    pub async fn rtp_capabilities(&self) -> Result<RtpCapabilitiesFinalized, SfuError> {
        Ok(self
            .addr()
            .send(GetRtpCapabilities)
            .await
            .map_err(room_gone)??)
    }

    /// Whether `rtp_capabilities` can receive `producer_id`
    /// (`Router::can_consume`); `false` for an unknown producer.
    pub async fn can_consume(
        &self,
        producer_id: &ProducerId,
        rtp_capabilities: &RtpCapabilities,
    ) -> Result<bool, SfuError> {
        self.addr()
            .send(CanConsume {
                producer_id: *producer_id,
                rtp_capabilities: rtp_capabilities.clone(),
            })
            .await
            .map_err(room_gone)
    }

    /// Joins as a new participant, placed on a worker. The node holds the
    /// room open for the join; if the room had closed since this handle was
    /// made, a fresh one of the same name is opened (and the handle follows
    /// it).
    pub async fn join(&self, display_name: impl Into<String>) -> Result<Participant, SfuError> {
        let ticket = self.sfu.ticket(&self.id).await?;
        let addr = ticket.addr;
        *self.addr.lock() = addr.clone();
        let (tx, rx) = mpsc::channel(self.sfu.event_capacity);
        let reply = addr
            .send(Join {
                display_name: display_name.into(),
                events: tx,
                hold: ticket.hold,
            })
            .await
            .map_err(room_gone)??;
        Ok(Participant {
            inner: Arc::new(ParticipantInner {
                room: addr,
                room_id: self.id.clone(),
                reply,
                events: Mutex::new(Some(rx)),
            }),
        })
    }
}

#[derive(Debug)]
struct ParticipantInner {
    room: Addr<RoomActor>,
    room_id: RoomId,
    reply: Joined,
    events: Mutex<Option<mpsc::Receiver<Event>>>,
}

impl Drop for ParticipantInner {
    fn drop(&mut self) {
        self.room.do_send(Leave {
            peer_id: self.reply.peer_id,
        });
    }
}

/// One peer in a room. Dropping the last clone leaves the room.
#[derive(Debug, Clone)]
pub struct Participant {
    inner: Arc<ParticipantInner>,
}

impl Participant {
    /// Its id.
    pub fn id(&self) -> PeerId {
        self.inner.reply.peer_id
    }

    /// Its room.
    pub fn room_id(&self) -> &RoomId {
        &self.inner.room_id
    }

    /// What the room told it on joining: router capabilities, the peers and
    /// producers already there.
    pub fn join_info(&self) -> &Joined {
        &self.inner.reply
    }

    /// Its event queue; `Some` only the first time. The queue ends when the
    /// room removes the participant (it closed, the participant's worker
    /// died, or the queue overflowed).
    pub fn take_events(&self) -> Option<mpsc::Receiver<Event>> {
        self.inner.events.lock().take()
    }

    /// The routers' RTP capabilities (`Router::rtp_capabilities`).
    pub async fn rtp_capabilities(&self) -> Result<RtpCapabilitiesFinalized, SfuError> {
        Ok(self
            .inner
            .room
            .send(GetRtpCapabilities)
            .await
            .map_err(room_gone)??)
    }

    /// Leaves the room now (every clone becomes dead), rather than when the
    /// last clone is dropped.
    pub fn leave(&self) {
        self.inner.room.do_send(Leave { peer_id: self.id() });
    }

    /// Sends the room any request made for this participant (`make` gets
    /// its id): the controls and DataChannel requests of
    /// [`crate::room`] without a method of their own here.
    pub async fn request<M, T>(&self, make: impl FnOnce(PeerId) -> M) -> Result<T, SfuError>
    where
        M: actix::Message<Result = Result<T, RoomError>> + Send + 'static,
        T: Send + 'static,
        RoomActor: actix::Handler<M>,
    {
        self.ask(make(self.id())).await
    }

    async fn ask<M, T>(&self, msg: M) -> Result<T, SfuError>
    where
        M: actix::Message<Result = Result<T, RoomError>> + Send + 'static,
        T: Send + 'static,
        RoomActor: actix::Handler<M>,
    {
        Ok(self.inner.room.send(msg).await.map_err(room_gone)??)
    }

    /// A WebRTC transport on the participant's worker
    /// (`Router::create_webrtc_transport`; the listen addresses come from the
    /// node configuration).
    pub async fn create_webrtc_transport(
        &self,
        direction: Direction,
    ) -> Result<WebRtcTransport, SfuError> {
        self.create_webrtc_transport_with(direction, false).await
    }

    /// A WebRTC transport, with SCTP (for DataChannels) when `enable_sctp`.
    pub async fn create_webrtc_transport_with(
        &self,
        direction: Direction,
        enable_sctp: bool,
    ) -> Result<WebRtcTransport, SfuError> {
        let reply = self
            .ask(CreateTransport {
                peer_id: self.id(),
                direction,
                enable_sctp,
            })
            .await?;
        Ok(WebRtcTransport {
            participant: self.clone(),
            direction,
            reply: Arc::new(reply),
        })
    }

    /// A plain RTP transport on the participant's worker
    /// (`Router::create_plain_transport` with RTCP multiplexed and no SRTP),
    /// for servers, recorders and load generators. With `comedia` the node
    /// learns the remote address from the first packet; otherwise call
    /// [`PlainTransport::connect`].
    pub async fn create_plain_transport(
        &self,
        direction: Direction,
        comedia: bool,
    ) -> Result<PlainTransport, SfuError> {
        let reply = self
            .ask(CreatePlainTransport {
                peer_id: self.id(),
                direction,
                comedia,
            })
            .await?;
        Ok(PlainTransport {
            participant: self.clone(),
            direction,
            reply: Arc::new(reply),
        })
    }

    /// Connects one of its plain transports by id (what
    /// [`PlainTransport::connect`] does).
    pub async fn connect_plain_transport(
        &self,
        transport_id: TransportId,
        remote: std::net::SocketAddr,
    ) -> Result<(), SfuError> {
        self.ask(ConnectPlainTransport {
            peer_id: self.id(),
            transport_id,
            remote,
        })
        .await
    }

    /// RTP statistics of one of its producers by id.
    pub async fn producer_stats(
        &self,
        producer_id: ProducerId,
    ) -> Result<Vec<ProducerStat>, SfuError> {
        self.ask(ProducerStats {
            peer_id: self.id(),
            producer_id,
        })
        .await
    }

    /// RTP statistics of one of its consumers by id.
    pub async fn consumer_stats(
        &self,
        consumer_id: ConsumerId,
    ) -> Result<Vec<ConsumerRtpStreamStat>, SfuError> {
        self.ask(ConsumerStats {
            peer_id: self.id(),
            consumer_id,
        })
        .await
    }

    /// Connects one of its transports by id (what
    /// [`WebRtcTransport::connect`] does).
    pub async fn connect_transport(
        &self,
        transport_id: TransportId,
        dtls_parameters: DtlsParameters,
    ) -> Result<(), SfuError> {
        self.ask(ConnectTransport {
            peer_id: self.id(),
            transport_id,
            dtls_parameters,
        })
        .await
    }

    /// Produces on one of its send transports by id (what
    /// [`WebRtcTransport::produce`] does).
    pub async fn produce(
        &self,
        transport_id: TransportId,
        options: ProducerOptions,
    ) -> Result<Producer, SfuError> {
        let kind = options.kind;
        let id = self
            .ask(Produce {
                peer_id: self.id(),
                transport_id,
                kind,
                rtp_parameters: options.rtp_parameters,
            })
            .await?;
        Ok(Producer {
            participant: self.clone(),
            id,
            kind,
        })
    }

    /// Consumes on one of its receive transports by id (what
    /// [`WebRtcTransport::consume`] does).
    pub async fn consume(
        &self,
        transport_id: TransportId,
        options: ConsumerOptions,
    ) -> Result<Consumer, SfuError> {
        let reply = self
            .ask(Consume {
                peer_id: self.id(),
                transport_id,
                producer_id: options.producer_id,
                rtp_capabilities: options.rtp_capabilities,
            })
            .await?;
        Ok(Consumer {
            participant: self.clone(),
            reply: Arc::new(reply),
        })
    }

    /// Pauses, resumes or closes one of its producers by id.
    pub async fn act_on_producer(
        &self,
        producer_id: ProducerId,
        action: ProducerAction,
    ) -> Result<(), SfuError> {
        self.ask(ActOnProducer {
            peer_id: self.id(),
            producer_id,
            action,
        })
        .await
    }

    /// Pauses or resumes one of its consumers by id.
    pub async fn toggle_consumer(
        &self,
        consumer_id: ConsumerId,
        action: Toggle,
    ) -> Result<(), SfuError> {
        self.ask(ToggleConsumer {
            peer_id: self.id(),
            consumer_id,
            action,
        })
        .await
    }
}

/// What to produce (mediasoup's `ProducerOptions::new`).
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Audio or video.
    pub kind: MediaKind,
    /// What the participant sends.
    pub rtp_parameters: RtpParameters,
}

impl ProducerOptions {
    /// Like mediasoup's `ProducerOptions::new`.
    pub fn new(kind: MediaKind, rtp_parameters: RtpParameters) -> Self {
        Self {
            kind,
            rtp_parameters,
        }
    }
}

/// What to consume (mediasoup's `ConsumerOptions::new`). Consumers always
/// start paused, as mediasoup recommends: resume them once the receiver is
/// ready.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// The producer to receive.
    pub producer_id: ProducerId,
    /// What the receiver can decode.
    pub rtp_capabilities: RtpCapabilities,
}

impl ConsumerOptions {
    /// Like mediasoup's `ConsumerOptions::new`.
    pub fn new(producer_id: ProducerId, rtp_capabilities: RtpCapabilities) -> Self {
        Self {
            producer_id,
            rtp_capabilities,
        }
    }
}

/// A participant's WebRTC transport (mediasoup's `WebRtcTransport`).
#[derive(Debug, Clone)]
pub struct WebRtcTransport {
    participant: Participant,
    direction: Direction,
    reply: Arc<WebRtcTransportInfo>,
}

impl WebRtcTransport {
    /// Its id.
    pub fn id(&self) -> TransportId {
        self.reply.id
    }

    /// Send or receive.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Its owner.
    pub fn participant(&self) -> &Participant {
        &self.participant
    }

    /// ICE username fragment and password.
    pub fn ice_parameters(&self) -> &IceParameters {
        &self.reply.ice_parameters
    }

    /// Where the remote end sends media.
    pub fn ice_candidates(&self) -> &Vec<IceCandidate> {
        &self.reply.ice_candidates
    }

    /// The node's SCTP parameters, when made with SCTP.
    pub fn sctp_parameters(&self) -> Option<mediasoup::types::sctp_parameters::SctpParameters> {
        self.reply.sctp_parameters
    }

    /// The node's DTLS role and fingerprints.
    pub fn dtls_parameters(&self) -> DtlsParameters {
        self.reply.dtls_parameters.clone()
    }

    /// Connects with the remote end's DTLS parameters
    /// (`WebRtcTransport::connect(WebRtcTransportRemoteParameters { .. })`).
    pub async fn connect(&self, dtls_parameters: DtlsParameters) -> Result<(), SfuError> {
        self.participant
            .connect_transport(self.id(), dtls_parameters)
            .await
    }

    /// Starts receiving a track from the participant (a send transport).
    pub async fn produce(&self, options: ProducerOptions) -> Result<Producer, SfuError> {
        self.participant.produce(self.id(), options).await
    }

    /// Starts sending another participant's track to this one (a receive
    /// transport); the consumer starts paused.
    pub async fn consume(&self, options: ConsumerOptions) -> Result<Consumer, SfuError> {
        self.participant.consume(self.id(), options).await
    }
}

/// A participant's plain RTP transport (mediasoup's `PlainTransport`, RTCP
/// multiplexed, no SRTP).
#[derive(Debug, Clone)]
pub struct PlainTransport {
    participant: Participant,
    direction: Direction,
    reply: Arc<PlainTransportInfo>,
}

impl PlainTransport {
    /// Its id.
    pub fn id(&self) -> TransportId {
        self.reply.id
    }

    /// Send or receive.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Its owner.
    pub fn participant(&self) -> &Participant {
        &self.participant
    }

    /// The node's address and port, where the remote end sends RTP and RTCP
    /// (mediasoup's `tuple().local_address()` and `local_port()`).
    pub fn local(&self) -> (&str, u16) {
        (&self.reply.ip, self.reply.port)
    }

    /// Where the node sends RTP and RTCP (not needed with `comedia`).
    pub async fn connect(&self, remote: std::net::SocketAddr) -> Result<(), SfuError> {
        self.participant
            .connect_plain_transport(self.id(), remote)
            .await
    }

    /// Starts receiving a track from the participant (a send transport).
    pub async fn produce(&self, options: ProducerOptions) -> Result<Producer, SfuError> {
        self.participant.produce(self.id(), options).await
    }

    /// Starts sending another participant's track to this one (a receive
    /// transport); the consumer starts paused.
    pub async fn consume(&self, options: ConsumerOptions) -> Result<Consumer, SfuError> {
        self.participant.consume(self.id(), options).await
    }
}

/// A participant's producer (mediasoup's `Producer`). Dropping the handle
/// does not close it; [`Producer::close`] or leaving the room does.
#[derive(Debug, Clone)]
pub struct Producer {
    participant: Participant,
    id: ProducerId,
    kind: MediaKind,
}

impl Producer {
    /// Its id (the same on every worker it is piped to).
    pub fn id(&self) -> ProducerId {
        self.id
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Its owner.
    pub fn participant(&self) -> &Participant {
        &self.participant
    }

    /// Its RTP statistics (mediasoup's `Producer::get_stats`).
    pub async fn get_stats(&self) -> Result<Vec<ProducerStat>, SfuError> {
        self.participant.producer_stats(self.id).await
    }

    /// Pauses it (its consumers get `producerPaused`).
    pub async fn pause(&self) -> Result<(), SfuError> {
        self.participant
            .act_on_producer(self.id, ProducerAction::Pause)
            .await
    }

    /// Resumes it.
    pub async fn resume(&self) -> Result<(), SfuError> {
        self.participant
            .act_on_producer(self.id, ProducerAction::Resume)
            .await
    }

    /// Closes it, with its pipes and consumers.
    pub async fn close(&self) -> Result<(), SfuError> {
        self.participant
            .act_on_producer(self.id, ProducerAction::Close)
            .await
    }
}

/// A participant's consumer (mediasoup's `Consumer`). It lives until its
/// producer closes or its participant leaves.
#[derive(Debug, Clone)]
pub struct Consumer {
    participant: Participant,
    reply: Arc<ConsumerInfo>,
}

impl Consumer {
    /// Its id.
    pub fn id(&self) -> ConsumerId {
        self.reply.id
    }

    /// The producer it receives.
    pub fn producer_id(&self) -> ProducerId {
        self.reply.producer_id
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.reply.kind
    }

    /// What the receiver gets.
    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.reply.rtp_parameters
    }

    /// Whether the producer was paused when the consumer was created.
    pub fn producer_paused(&self) -> bool {
        self.reply.producer_paused
    }

    /// Its owner.
    pub fn participant(&self) -> &Participant {
        &self.participant
    }

    /// Its RTP statistics (mediasoup's `Consumer::get_stats`).
    pub async fn get_stats(&self) -> Result<Vec<ConsumerRtpStreamStat>, SfuError> {
        self.participant.consumer_stats(self.id()).await
    }

    /// Resumes it.
    pub async fn resume(&self) -> Result<(), SfuError> {
        self.participant
            .toggle_consumer(self.id(), Toggle::Resume)
            .await
    }

    /// Pauses it.
    pub async fn pause(&self) -> Result<(), SfuError> {
        self.participant
            .toggle_consumer(self.id(), Toggle::Pause)
            .await
    }
}
