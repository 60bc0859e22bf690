//! [`RoomActor`]: one room's router, participants, producers and consumers.
//!
//! # Concurrency
//!
//! Handlers that await mediasoup return a [`ResponseActFuture`]: the mediasoup
//! call runs without holding the actor, and the state change happens in the
//! `map` closure, back on the actor, *after re-validating* what the await may
//! have invalidated (the peer left, its transport closed, the room is
//! closing). A handle created for a peer that is gone by then is simply
//! dropped, which closes it in mediasoup. This keeps the room responsive
//! (requests of different peers overlap) without the head-of-line blocking of
//! `AtomicResponse`, and every state change is still made atomically on the
//! actor.
//!
//! Callbacks from mediasoup (a consumer's producer closed, the router's worker
//! died) arrive on mediasoup's threads and are turned into messages to the
//! actor, carrying ids only, so handles never form reference cycles.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::{DtlsParameters, ListenInfo, Protocol};
use mediasoup::types::rtp_parameters::{
    MediaKind, RtpCapabilities, RtpCapabilitiesFinalized, RtpParameters,
};
use tokio::sync::mpsc;
use tracing::{Instrument, Span};

use crate::config::Config;
use crate::ids::{PeerId, RoomId, WorkerSlot};
use crate::metrics::{Counters, Resource, Tracked};
use crate::signalling::{
    ConsumeReply, Direction, ErrorCode, Event, JoinReply, PeerInfo, ProduceReply, ProducerInfo,
    SignalError, TransportReply,
};
use crate::worker::{CreateRouter, CreateRouterError, RouterLease, WorkerActor};

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
    /// No router could be created.
    #[error(transparent)]
    Router(#[from] CreateRouterError),
    /// Another mediasoup failure.
    #[error("mediasoup: {0}")]
    Mediasoup(String),
}

impl RoomError {
    /// A failed worker request: the worker's own refusal (`Response`) means
    /// the client's parameters were invalid; anything else is internal.
    fn from_request(e: mediasoup::worker::RequestError) -> Self {
        match e {
            mediasoup::worker::RequestError::Response { .. } => {
                RoomError::InvalidParameters(e.to_string())
            }
            other => RoomError::Mediasoup(other.to_string()),
        }
    }

    /// The signalling error sent to the client.
    pub fn to_signal(&self) -> SignalError {
        let code = match self {
            RoomError::RoomClosed => ErrorCode::UnknownRoom,
            RoomError::UnknownPeer(_) => ErrorCode::NotJoined,
            RoomError::UnknownTransport(_) | RoomError::WrongDirection(..) => {
                ErrorCode::UnknownTransport
            }
            RoomError::UnknownProducer(_) => ErrorCode::UnknownProducer,
            RoomError::UnknownConsumer(_) => ErrorCode::UnknownConsumer,
            RoomError::CannotConsume(_) => ErrorCode::CannotConsume,
            RoomError::InvalidParameters(_) => ErrorCode::InvalidParameters,
            RoomError::Router(CreateRouterError::WorkerGone(_)) => ErrorCode::Capacity,
            RoomError::Router(_) | RoomError::Mediasoup(_) => ErrorCode::Internal,
        };
        SignalError::new(code, self.to_string())
    }
}

/// What every room of a node shares.
#[derive(Debug)]
pub struct RoomEnv {
    /// Node name, for spans.
    pub node: Arc<str>,
    /// The node configuration.
    pub config: Arc<Config>,
    /// Node-wide counters.
    pub counters: Arc<Counters>,
}

/// Sent to the server when a room has stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RoomClosed {
    /// Which room.
    pub room: RoomId,
    /// Which incarnation of it (a new room of the same name may exist).
    pub addr: Addr<RoomActor>,
}

type RouterFuture = Shared<LocalBoxFuture<'static, Result<RouterLease, RoomError>>>;

#[derive(Debug)]
struct Peer {
    info: PeerInfo,
    events: mpsc::Sender<Event>,
    transports: HashMap<TransportId, (Direction, WebRtcTransport)>,
    producers: HashMap<ProducerId, Producer>,
    consumers: HashMap<ConsumerId, Consumer>,
    _tracked: Tracked,
}

/// One room on this node.
pub struct RoomActor {
    id: RoomId,
    env: Arc<RoomEnv>,
    span: Span,
    worker: Addr<WorkerActor>,
    router: Option<RouterFuture>,
    peers: HashMap<PeerId, Peer>,
    pending_joins: usize,
    closing: bool,
    server: Recipient<RoomClosed>,
    _tracked: Tracked,
}

impl std::fmt::Debug for RoomActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomActor")
            .field("id", &self.id)
            .field("peers", &self.peers.len())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl RoomActor {
    /// A room whose router will live on `worker`.
    pub fn new(
        id: RoomId,
        env: Arc<RoomEnv>,
        worker: Addr<WorkerActor>,
        slot: WorkerSlot,
        server: Recipient<RoomClosed>,
    ) -> Self {
        let span = tracing::info_span!("room", node = %env.node, room = %id, worker = %slot);
        let tracked = Tracked::new(Resource::Room, &[&env.counters]);
        Self {
            id,
            env,
            span,
            worker,
            router: None,
            peers: HashMap::new(),
            pending_joins: 0,
            closing: false,
            server,
            _tracked: tracked,
        }
    }

    fn router_future(&self) -> Result<RouterFuture, RoomError> {
        match (&self.router, self.closing) {
            (Some(r), false) => Ok(r.clone()),
            _ => Err(RoomError::RoomClosed),
        }
    }

    /// Sends an event to one peer; a peer whose queue is full is too slow
    /// and is removed.
    fn send_to(&mut self, peer_id: PeerId, event: Event, ctx: &mut Context<Self>) {
        let full = match self.peers.get(&peer_id) {
            Some(peer) => matches!(
                peer.events.try_send(event),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            None => false,
        };
        if full {
            tracing::warn!(peer = %peer_id, "event queue full: disconnecting slow peer");
            self.remove_peer(peer_id, ctx);
        }
    }

    fn broadcast(&mut self, from: PeerId, event: Event, ctx: &mut Context<Self>) {
        let others: Vec<PeerId> = self.peers.keys().copied().filter(|p| *p != from).collect();
        for p in others {
            self.send_to(p, event.clone(), ctx);
        }
    }

    fn remove_peer(&mut self, peer_id: PeerId, ctx: &mut Context<Self>) {
        let Some(peer) = self.peers.remove(&peer_id) else {
            return;
        };
        tracing::info!(peer = %peer_id, "peer left");
        let producer_ids: Vec<ProducerId> = peer.producers.keys().copied().collect();
        // Dropping the peer closes its transports, and with them its
        // producers and consumers.
        drop(peer);
        for producer_id in producer_ids {
            self.broadcast(peer_id, Event::ProducerClosed { producer_id }, ctx);
        }
        self.broadcast(peer_id, Event::PeerLeft { peer_id }, ctx);
        self.maybe_close(ctx);
    }

    fn maybe_close(&mut self, ctx: &mut Context<Self>) {
        if self.peers.is_empty() && self.pending_joins == 0 && !self.closing {
            tracing::info!("room empty: closing");
            self.closing = true;
            ctx.stop();
        }
    }

    fn peer(&self, peer_id: PeerId) -> Result<&Peer, RoomError> {
        self.peers
            .get(&peer_id)
            .ok_or(RoomError::UnknownPeer(peer_id))
    }

    fn transport(
        &self,
        peer_id: PeerId,
        transport_id: TransportId,
        direction: Option<Direction>,
    ) -> Result<WebRtcTransport, RoomError> {
        let (dir, t) = self
            .peer(peer_id)?
            .transports
            .get(&transport_id)
            .ok_or(RoomError::UnknownTransport(transport_id))?;
        match direction {
            Some(wanted) if wanted != *dir => Err(RoomError::WrongDirection(transport_id, *dir)),
            _ => Ok(t.clone()),
        }
    }

    fn listen_infos(config: &Config) -> WebRtcTransportListenInfos {
        let info = |protocol| ListenInfo {
            protocol,
            ip: config.rtc.listen_ip,
            announced_address: config.rtc.announced_address.clone(),
            expose_internal_ip: false,
            port: None,
            port_range: Some(config.rtc.port_min..=config.rtc.port_max),
            flags: None,
            send_buffer_size: None,
            recv_buffer_size: None,
        };
        let infos = WebRtcTransportListenInfos::new(info(Protocol::Udp));
        if config.rtc.enable_tcp {
            infos.insert(info(Protocol::Tcp))
        } else {
            infos
        }
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("room started");
        let worker = self.worker.clone();
        let me = ctx.address();
        let span = self.span.clone();
        let fut = async move {
            let lease = worker
                .send(CreateRouter)
                .await
                .map_err(|_| RoomError::RoomClosed)??;
            // A router closes when its worker dies: the room cannot go on.
            lease
                .router
                .on_worker_close(move || me.do_send(CloseRoom("worker died".into())))
                .detach();
            Ok(lease)
        }
        .instrument(span)
        .boxed_local()
        .shared();
        self.router = Some(fut);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        self.closing = true;
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in peers {
            self.peers.remove(&p);
        }
        tracing::info!("room closed");
        self.server.do_send(RoomClosed {
            room: self.id.clone(),
            addr: ctx.address(),
        });
    }
}

/// Closes the room and disconnects everyone (e.g. its worker died).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseRoom(pub String);

impl Handler<CloseRoom> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: CloseRoom, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::warn!(reason = %msg.0, "closing room");
        self.closing = true;
        self.peers.clear();
        ctx.stop();
    }
}

/// A peer joins; the room assigns its id.
#[derive(Debug, Message)]
#[rtype(result = "Result<JoinReply, RoomError>")]
pub struct Join {
    /// Its display name.
    pub display_name: String,
    /// Where its events go.
    pub events: mpsc::Sender<Event>,
}

impl Handler<Join> for RoomActor {
    type Result = ResponseActFuture<Self, Result<JoinReply, RoomError>>;

    fn handle(&mut self, msg: Join, _ctx: &mut Self::Context) -> Self::Result {
        let router = match self.router_future() {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        self.pending_joins += 1;
        Box::pin(router.into_actor(self).map(move |lease, act, ctx| {
            act.pending_joins -= 1;
            let _e = act.span.clone().entered();
            let lease = match lease {
                Ok(lease) if !act.closing => lease,
                Ok(_) => return Err(RoomError::RoomClosed),
                Err(e) => {
                    drop(_e);
                    act.maybe_close(ctx);
                    return Err(e);
                }
            };
            let peer_id = PeerId::new();
            let info = PeerInfo {
                peer_id,
                display_name: msg.display_name,
            };
            let peers = act.peers.values().map(|p| p.info.clone()).collect();
            let producers = act
                .peers
                .values()
                .flat_map(|p| {
                    p.producers.values().map(|pr| ProducerInfo {
                        producer_id: pr.id(),
                        peer_id: p.info.peer_id,
                        kind: pr.kind(),
                        paused: pr.paused(),
                    })
                })
                .collect();
            act.peers.insert(
                peer_id,
                Peer {
                    info: info.clone(),
                    events: msg.events,
                    transports: HashMap::new(),
                    producers: HashMap::new(),
                    consumers: HashMap::new(),
                    _tracked: Tracked::new(Resource::Peer, &[&act.env.counters]),
                },
            );
            tracing::info!(peer = %peer_id, name = %info.display_name, "peer joined");
            drop(_e);
            act.broadcast(peer_id, Event::PeerJoined(info), ctx);
            Ok(JoinReply {
                peer_id,
                room_id: act.id.clone(),
                router_rtp_capabilities: lease.router.rtp_capabilities(),
                peers,
                producers,
            })
        }))
    }
}

/// A peer leaves (or its socket closed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Who.
    pub peer_id: PeerId,
}

impl Handler<Leave> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        self.remove_peer(msg.peer_id, ctx);
    }
}

/// The router's RTP capabilities.
#[derive(Debug, Message)]
#[rtype(result = "Result<RtpCapabilitiesFinalized, RoomError>")]
pub struct GetRtpCapabilities;

impl Handler<GetRtpCapabilities> for RoomActor {
    type Result = ResponseActFuture<Self, Result<RtpCapabilitiesFinalized, RoomError>>;
    fn handle(&mut self, _msg: GetRtpCapabilities, _ctx: &mut Self::Context) -> Self::Result {
        let router = self.router_future();
        Box::pin(async move { Ok(router?.await?.router.rtp_capabilities()) }.into_actor(self))
    }
}

/// Creates a WebRTC transport for a peer.
#[derive(Debug, Message)]
#[rtype(result = "Result<TransportReply, RoomError>")]
pub struct CreateTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Send or receive.
    pub direction: Direction,
}

impl Handler<CreateTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<TransportReply, RoomError>>;

    fn handle(&mut self, msg: CreateTransport, _ctx: &mut Self::Context) -> Self::Result {
        let checked = self
            .peer(msg.peer_id)
            .map(|_| ())
            .and_then(|_| self.router_future());
        let router = match checked {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let mut options = WebRtcTransportOptions::new(Self::listen_infos(&self.env.config));
        options.initial_available_outgoing_bitrate =
            u64::from(self.env.config.rtc.initial_outgoing_bitrate);
        let node_counters = Arc::clone(&self.env.counters);
        let fut = async move {
            let lease = router.await?;
            let transport = lease
                .router
                .create_webrtc_transport(options)
                .await
                .map_err(|e| RoomError::Mediasoup(e.to_string()))?;
            let tracked = Tracked::new(
                Resource::Transport,
                &[&node_counters, &lease.worker_counters],
            );
            transport.on_close(Box::new(move || drop(tracked))).detach();
            Ok::<_, RoomError>(transport)
        }
        .instrument(self.span.clone());
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            let transport: WebRtcTransport = res?;
            let peer = act
                .peers
                .get_mut(&msg.peer_id)
                .ok_or(RoomError::UnknownPeer(msg.peer_id))?;
            let reply = TransportReply {
                id: transport.id(),
                ice_parameters: transport.ice_parameters().clone(),
                ice_candidates: transport.ice_candidates().clone(),
                dtls_parameters: transport.dtls_parameters(),
            };
            peer.transports
                .insert(transport.id(), (msg.direction, transport));
            Ok(reply)
        }))
    }
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

impl Handler<ConnectTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ConnectTransport, _ctx: &mut Self::Context) -> Self::Result {
        let transport = match self.transport(msg.peer_id, msg.transport_id, None) {
            Ok(t) => t,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let fut = async move {
            transport
                .connect(WebRtcTransportRemoteParameters {
                    dtls_parameters: msg.dtls_parameters,
                })
                .await
                .map_err(RoomError::from_request)
        }
        .instrument(self.span.clone());
        Box::pin(fut.into_actor(self))
    }
}

/// A peer starts sending a track.
#[derive(Debug, Message)]
#[rtype(result = "Result<ProduceReply, RoomError>")]
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

impl Handler<Produce> for RoomActor {
    type Result = ResponseActFuture<Self, Result<ProduceReply, RoomError>>;

    fn handle(&mut self, msg: Produce, _ctx: &mut Self::Context) -> Self::Result {
        let transport = match self.transport(msg.peer_id, msg.transport_id, Some(Direction::Send)) {
            Ok(t) => t,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let counters = self.router_counters();
        let fut = async move {
            let producer = transport
                .produce(ProducerOptions::new(msg.kind, msg.rtp_parameters))
                .await
                .map_err(|e| match e {
                    ProduceError::Request(e) => RoomError::from_request(e),
                    other => RoomError::InvalidParameters(other.to_string()),
                })?;
            let tracked = Tracked::new(Resource::Producer, &counters.iter().collect::<Vec<_>>());
            producer.on_close(move || drop(tracked)).detach();
            Ok::<_, RoomError>(producer)
        }
        .instrument(self.span.clone());
        let peer_id = msg.peer_id;
        let transport_id = msg.transport_id;
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let producer: Producer = res?;
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            if !peer.transports.contains_key(&transport_id) {
                return Err(RoomError::UnknownTransport(transport_id));
            }
            let info = ProducerInfo {
                producer_id: producer.id(),
                peer_id,
                kind: producer.kind(),
                paused: producer.paused(),
            };
            peer.producers.insert(producer.id(), producer);
            let _e = act.span.clone().entered();
            tracing::info!(peer = %peer_id, producer = %info.producer_id, kind = ?info.kind, "producer created");
            drop(_e);
            act.broadcast(peer_id, Event::NewProducer(info.clone()), ctx);
            Ok(ProduceReply {
                id: info.producer_id,
            })
        }))
    }
}

impl RoomActor {
    /// The counters a new router-scoped resource is tracked in: the node's,
    /// and the worker's once the router exists.
    fn router_counters(&self) -> Vec<Arc<Counters>> {
        let mut v = vec![Arc::clone(&self.env.counters)];
        if let Some(Some(Ok(lease))) = self.router.as_ref().map(|r| r.peek()) {
            v.push(Arc::clone(&lease.worker_counters));
        }
        v
    }

    fn find_producer(&self, producer_id: ProducerId) -> Option<(PeerId, &Producer)> {
        self.peers.iter().find_map(|(pid, p)| {
            p.producers
                .get(&producer_id)
                .map(|producer| (*pid, producer))
        })
    }
}

/// A peer starts receiving another peer's track; the consumer starts paused.
#[derive(Debug, Message)]
#[rtype(result = "Result<ConsumeReply, RoomError>")]
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

/// Internal: a consumer's producer went away.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ConsumerGone {
    peer_id: PeerId,
    consumer_id: ConsumerId,
    producer_id: ProducerId,
}

impl Handler<ConsumerGone> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: ConsumerGone, ctx: &mut Self::Context) {
        let removed = self
            .peers
            .get_mut(&msg.peer_id)
            .and_then(|p| p.consumers.remove(&msg.consumer_id))
            .is_some();
        if removed {
            self.send_to(
                msg.peer_id,
                Event::ConsumerClosed {
                    consumer_id: msg.consumer_id,
                    producer_id: msg.producer_id,
                },
                ctx,
            );
        }
    }
}

impl Handler<Consume> for RoomActor {
    type Result = ResponseActFuture<Self, Result<ConsumeReply, RoomError>>;

    fn handle(&mut self, msg: Consume, ctx: &mut Self::Context) -> Self::Result {
        let checked = (|| {
            let transport = self.transport(msg.peer_id, msg.transport_id, Some(Direction::Recv))?;
            match self.find_producer(msg.producer_id) {
                Some((owner, _)) if owner != msg.peer_id => {}
                _ => return Err(RoomError::UnknownProducer(msg.producer_id)),
            }
            let router = self.router_future()?;
            Ok((transport, router))
        })();
        let (transport, router) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let counters = self.router_counters();
        let me = ctx.address();
        let peer_id = msg.peer_id;
        let fut = async move {
            let lease = router.await?;
            if !lease
                .router
                .can_consume(&msg.producer_id, &msg.rtp_capabilities)
            {
                return Err(RoomError::CannotConsume(msg.producer_id));
            }
            let mut options = ConsumerOptions::new(msg.producer_id, msg.rtp_capabilities);
            options.paused = true;
            let consumer = transport.consume(options).await.map_err(|e| match e {
                ConsumeError::ProducerNotFound(id) => RoomError::UnknownProducer(id),
                ConsumeError::Request(e) => RoomError::from_request(e),
                other => RoomError::InvalidParameters(other.to_string()),
            })?;
            let tracked = Tracked::new(Resource::Consumer, &counters.iter().collect::<Vec<_>>());
            consumer.on_close(move || drop(tracked)).detach();
            let consumer_id = consumer.id();
            let producer_id = msg.producer_id;
            consumer
                .on_producer_close(move || {
                    me.do_send(ConsumerGone {
                        peer_id,
                        consumer_id,
                        producer_id,
                    })
                })
                .detach();
            Ok::<_, RoomError>(consumer)
        }
        .instrument(self.span.clone());
        let transport_id = msg.transport_id;
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            let consumer: Consumer = res?;
            if consumer.closed() {
                return Err(RoomError::UnknownProducer(consumer.producer_id()));
            }
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            if !peer.transports.contains_key(&transport_id) {
                return Err(RoomError::UnknownTransport(transport_id));
            }
            let reply = ConsumeReply {
                id: consumer.id(),
                producer_id: consumer.producer_id(),
                kind: consumer.kind(),
                rtp_parameters: consumer.rtp_parameters().clone(),
                producer_paused: consumer.producer_paused(),
            };
            peer.consumers.insert(consumer.id(), consumer);
            Ok(reply)
        }))
    }
}

/// Pause or resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl Handler<ToggleConsumer> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ToggleConsumer, _ctx: &mut Self::Context) -> Self::Result {
        let consumer = match self.peer(msg.peer_id).and_then(|p| {
            p.consumers
                .get(&msg.consumer_id)
                .cloned()
                .ok_or(RoomError::UnknownConsumer(msg.consumer_id))
        }) {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let fut = async move {
            match msg.action {
                Toggle::Pause => consumer.pause().await,
                Toggle::Resume => consumer.resume().await,
            }
            .map_err(|e| RoomError::Mediasoup(e.to_string()))
        };
        Box::pin(fut.into_actor(self))
    }
}

/// What to do with a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl Handler<ActOnProducer> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ActOnProducer, ctx: &mut Self::Context) -> Self::Result {
        let (peer_id, producer_id) = (msg.peer_id, msg.producer_id);
        let producer = match self.peer(peer_id).and_then(|p| {
            p.producers
                .get(&producer_id)
                .cloned()
                .ok_or(RoomError::UnknownProducer(producer_id))
        }) {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let toggle = match msg.action {
            ProducerAction::Close => {
                drop(producer);
                if let Some(peer) = self.peers.get_mut(&peer_id) {
                    peer.producers.remove(&producer_id);
                }
                let _e = self.span.clone().entered();
                tracing::info!(peer = %peer_id, producer = %producer_id, "producer closed");
                drop(_e);
                self.broadcast(peer_id, Event::ProducerClosed { producer_id }, ctx);
                return Box::pin(fut::ready(Ok(())));
            }
            t => t,
        };
        let fut = async move {
            match toggle {
                ProducerAction::Pause => producer.pause().await,
                _ => producer.resume().await,
            }
            .map_err(|e| RoomError::Mediasoup(e.to_string()))
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            res?;
            let event = if toggle == ProducerAction::Pause {
                Event::ProducerPaused { producer_id }
            } else {
                Event::ProducerResumed { producer_id }
            };
            if act.peers.contains_key(&peer_id) {
                act.broadcast(peer_id, event, ctx);
            }
            Ok(())
        }))
    }
}

/// How many peers the room has (for status and tests).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct PeerCount;

impl Handler<PeerCount> for RoomActor {
    type Result = usize;
    fn handle(&mut self, _msg: PeerCount, _ctx: &mut Self::Context) -> usize {
        self.peers.len()
    }
}
