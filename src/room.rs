//! [`RoomActor`]: one room's routers, participants, producers and consumers.
//!
//! # Placement and pipes
//!
//! A room spans every worker its peers are placed on. Each joining peer is
//! given a worker by the node's [`WorkerBoard`] (see [`crate::placement`]);
//! the room keeps one router per worker it uses (a map slot → shared router
//! future, created on demand and dropped when no peer, pipe or in-flight
//! request needs it). A consumer whose producer lives on another worker
//! receives it through a pipe (`Router::pipe_producer_to_router`, same id on
//! both routers): one pipe per (producer, target worker), shared by every
//! consumer there, created once however many requests race for it (a shared
//! future in a map), and closed when its last consumer leaves or its producer
//! closes. Pause and resume of the producer travel through the pipe inside
//! mediasoup (the pipe consumer's pause drives the pipe producer), as do
//! keyframe requests (RTCP over the pipe transports).
//!
//! When a worker dies the room drops its router and pipes there, and the
//! peers placed on it get a `reconnect` event and are removed; the others go
//! on.
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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::{DtlsParameters, ListenInfo, Protocol};
use mediasoup::types::rtp_parameters::{
    MediaKind, RtpCapabilities, RtpCapabilitiesFinalized, RtpParameters,
};
use mediasoup::worker::WorkerId;
use tokio::sync::mpsc;
use tracing::{Instrument, Span};

use crate::config::Config;
use crate::ids::{PeerId, RoomId, WorkerSlot};
use crate::metrics::{Counters, Resource, Tracked};
use crate::placement::WorkerBoard;
use crate::signalling::{
    ConsumeReply, Direction, ErrorCode, Event, JoinReply, PeerInfo, PlainTransportReply,
    ProduceReply, ProducerInfo, SignalError, TransportReply,
};
use crate::worker::{CreateRouter, CreateRouterError, RouterLease};

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
            RoomError::UnknownTransport(_)
            | RoomError::WrongDirection(..)
            | RoomError::WrongTransportKind(..) => ErrorCode::UnknownTransport,
            RoomError::UnknownProducer(_) => ErrorCode::UnknownProducer,
            RoomError::UnknownConsumer(_) => ErrorCode::UnknownConsumer,
            RoomError::CannotConsume(_) => ErrorCode::CannotConsume,
            RoomError::InvalidParameters(_) => ErrorCode::InvalidParameters,
            RoomError::NoWorker | RoomError::Router(CreateRouterError::WorkerGone(_)) => {
                ErrorCode::Capacity
            }
            RoomError::Router(_) | RoomError::Mediasoup(_) => ErrorCode::Internal,
        };
        SignalError::new(code, self.to_string())
    }
}

/// Where the node's client-facing transports listen: `[rtc]`'s address,
/// announced address and port range.
pub fn rtc_listen_info(rtc: &crate::config::RtcSection, protocol: Protocol) -> ListenInfo {
    ListenInfo {
        protocol,
        ip: rtc.listen_ip,
        announced_address: rtc.announced_address.clone(),
        expose_internal_ip: false,
        port: None,
        port_range: Some(rtc.port_min..=rtc.port_max),
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
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
    /// The node's live workers, for placement.
    pub workers: Arc<WorkerBoard>,
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
type PipeFuture = Shared<LocalBoxFuture<'static, Result<PipeHandles, RoomError>>>;
type PairFuture = Shared<LocalBoxFuture<'static, Result<PipePair, RoomError>>>;

/// Two connected pipe transports between the room's routers on two workers,
/// created by the room itself (rather than by `pipe_producer_to_router`) so
/// that their sockets get `rtc.pipe_socket_buffer_bytes`. Every producer
/// piped between the two workers shares it; it closes once no hop uses it
/// and no pipe consumer or producer holds it.
#[derive(Debug, Clone)]
struct PipePair {
    /// On the sending worker's router.
    local: PipeTransport,
    /// On the receiving worker's router.
    remote: PipeTransport,
}

/// The room's router on one worker. `id` tells incarnations apart, so that a
/// handler can check after an await that the router it used is still the
/// slot's.
struct RouterEntry {
    id: u64,
    /// The mediasoup worker it is (being) created on.
    worker_id: WorkerId,
    fut: RouterFuture,
}

/// Both ends of one producer piped into another worker's router. Dropping
/// the last clone of both closes the pipe (the pipe producer closes its
/// consumers; mediasoup closes the pipe transports once unused).
#[derive(Debug, Clone)]
struct PipeHandles {
    /// On the target router, same id as the original producer.
    producer: Producer,
    /// On the producer's router.
    _consumer: Consumer,
}

/// One hop of a producer's pipe tree: the producer piped from worker `from`
/// into this hop's worker, shared by every consumer of it there and by the
/// hops fed from here.
struct PipeEntry {
    id: u64,
    /// The worker it is piped from: the producer's own, or another hop's.
    from: WorkerSlot,
    /// Pipes between the producer's worker and here (1 = piped directly).
    depth: u32,
    fut: PipeFuture,
    /// Consumers on this worker that receive through this hop.
    consumers: HashSet<ConsumerId>,
    /// Consume requests waiting for the hop.
    in_flight: usize,
}

/// Where one producer is piped: a tree rooted at its own worker, each
/// worker forwarding to at most `placement.pipe_fanout` others.
struct PipeTree {
    /// The producer's own worker.
    origin: WorkerSlot,
    /// Hops by the worker they bring the producer to.
    hops: HashMap<WorkerSlot, PipeEntry>,
}

impl PipeTree {
    /// How many hops are fed from `slot`.
    fn children(&self, slot: WorkerSlot) -> usize {
        self.hops.values().filter(|e| e.from == slot).count()
    }

    /// Where a new hop attaches: the shallowest worker holding the producer
    /// with room for one more child (ties: fewer children, lower slot). A
    /// leaf always has room, so there is always one.
    fn parent_for_new_hop(&self, fanout: usize) -> (WorkerSlot, u32) {
        let origin = (0u32, self.children(self.origin), self.origin);
        let hops = self
            .hops
            .iter()
            .map(|(slot, e)| (e.depth, self.children(*slot), *slot));
        std::iter::once(origin)
            .chain(hops)
            .filter(|(_, children, _)| *children < fanout)
            .min()
            .map_or((self.origin, 0), |(depth, _, slot)| (slot, depth))
    }

    /// Removes the hops into or out of `slot`, and every hop below them.
    fn cut(&mut self, slot: WorkerSlot) {
        self.hops.retain(|t, e| *t != slot && e.from != slot);
        loop {
            let orphans: Vec<WorkerSlot> = self
                .hops
                .iter()
                .filter(|(_, e)| e.from != self.origin && !self.hops.contains_key(&e.from))
                .map(|(t, _)| *t)
                .collect();
            if orphans.is_empty() {
                break;
            }
            for o in orphans {
                self.hops.remove(&o);
            }
        }
    }
}

/// A peer's transport: WebRTC (browsers) or plain RTP (servers, loadgen).
#[derive(Debug, Clone)]
enum PeerTransport {
    WebRtc(WebRtcTransport),
    Plain(PlainTransport),
}

impl PeerTransport {
    fn id(&self) -> TransportId {
        match self {
            PeerTransport::WebRtc(t) => t.id(),
            PeerTransport::Plain(t) => t.id(),
        }
    }

    async fn produce(&self, options: ProducerOptions) -> Result<Producer, ProduceError> {
        match self {
            PeerTransport::WebRtc(t) => t.produce(options).await,
            PeerTransport::Plain(t) => t.produce(options).await,
        }
    }

    async fn consume(&self, options: ConsumerOptions) -> Result<Consumer, ConsumeError> {
        match self {
            PeerTransport::WebRtc(t) => t.consume(options).await,
            PeerTransport::Plain(t) => t.consume(options).await,
        }
    }
}

#[derive(Debug)]
struct Peer {
    info: PeerInfo,
    /// The worker its transports live on.
    slot: WorkerSlot,
    events: mpsc::Sender<Event>,
    transports: HashMap<TransportId, (Direction, PeerTransport)>,
    producers: HashMap<ProducerId, Producer>,
    consumers: HashMap<ConsumerId, Consumer>,
    _tracked: Tracked,
}

/// One room on this node, spanning every worker its peers are placed on.
pub struct RoomActor {
    id: RoomId,
    env: Arc<RoomEnv>,
    span: Span,
    /// One router per worker the room uses.
    routers: HashMap<WorkerSlot, RouterEntry>,
    /// Pipe trees, by producer.
    pipes: HashMap<ProducerId, PipeTree>,
    /// Pipe transport pairs, by (sending worker, receiving worker).
    pipe_pairs: HashMap<(WorkerSlot, WorkerSlot), PairFuture>,
    /// In-flight operations (joins, capability queries) holding a worker's
    /// router although no peer is on it yet.
    slot_users: HashMap<WorkerSlot, usize>,
    next_id: u64,
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
            .field("routers", &self.routers.len())
            .field("pipes", &self.pipes.len())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl RoomActor {
    /// An empty room; routers are created on the workers its peers are
    /// placed on.
    pub fn new(id: RoomId, env: Arc<RoomEnv>, server: Recipient<RoomClosed>) -> Self {
        let span = tracing::info_span!("room", node = %env.node, room = %id);
        let tracked = Tracked::new(Resource::Room, &[&env.counters]);
        Self {
            id,
            env,
            span,
            routers: HashMap::new(),
            pipes: HashMap::new(),
            pipe_pairs: HashMap::new(),
            slot_users: HashMap::new(),
            next_id: 0,
            peers: HashMap::new(),
            pending_joins: 0,
            closing: false,
            server,
            _tracked: tracked,
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The room's router on `slot`, created on demand (concurrent callers
    /// share one creation).
    fn router_for(
        &mut self,
        slot: WorkerSlot,
        ctx: &mut Context<Self>,
    ) -> Result<(u64, RouterFuture), RoomError> {
        if self.closing {
            return Err(RoomError::RoomClosed);
        }
        if let Some(e) = self.routers.get(&slot) {
            return Ok((e.id, e.fut.clone()));
        }
        let seat = self
            .env
            .workers
            .get(slot)
            .ok_or(RoomError::Router(CreateRouterError::WorkerGone(slot)))?;
        let me = ctx.address();
        let worker_id = seat.worker_id;
        let fut = async move {
            let lease = seat
                .addr
                .send(CreateRouter)
                .await
                .map_err(|_| CreateRouterError::WorkerGone(slot))??;
            let worker_id = lease.worker_id;
            lease
                .router
                .on_worker_close(move || {
                    me.do_send(WorkerLost {
                        slot,
                        worker_id,
                        reason: format!("worker {slot} closed"),
                    })
                })
                .detach();
            Ok(lease)
        }
        .instrument(self.span.clone())
        .boxed_local()
        .shared();
        let id = self.fresh_id();
        self.routers.insert(
            slot,
            RouterEntry {
                id,
                worker_id,
                fut: fut.clone(),
            },
        );
        Ok((id, fut))
    }

    /// The resolved router of `slot`, if it is still the room's.
    fn lease(&self, slot: WorkerSlot) -> Result<RouterLease, RoomError> {
        match self.routers.get(&slot).and_then(|e| e.fut.peek()) {
            Some(Ok(lease)) => Ok(lease.clone()),
            _ => Err(RoomError::RoomClosed),
        }
    }

    fn peer_lease(&self, peer_id: PeerId) -> Result<RouterLease, RoomError> {
        self.lease(self.peer(peer_id)?.slot)
    }

    fn current_router(&self, slot: WorkerSlot, id: u64) -> bool {
        self.routers.get(&slot).is_some_and(|e| e.id == id)
    }

    fn release_slot_user(&mut self, slot: WorkerSlot) {
        if let Some(n) = self.slot_users.get_mut(&slot) {
            *n -= 1;
            if *n == 0 {
                self.slot_users.remove(&slot);
            }
        }
    }

    /// Drops routers that no peer, pipe or in-flight operation needs (and
    /// failed creations, so that the next use retries).
    fn gc_routers(&mut self) {
        let mut used: HashSet<WorkerSlot> = self.peers.values().map(|p| p.slot).collect();
        used.extend(self.slot_users.keys().copied());
        for tree in self.pipes.values() {
            for (target, e) in &tree.hops {
                used.insert(*target);
                used.insert(e.from);
            }
        }
        // Pipe transport pairs go with the last hop between their workers
        // (and failed creations, so that the next use retries).
        let links: HashSet<(WorkerSlot, WorkerSlot)> = self
            .pipes
            .values()
            .flat_map(|t| t.hops.iter().map(|(target, e)| (e.from, *target)))
            .collect();
        self.pipe_pairs
            .retain(|link, fut| links.contains(link) && !matches!(fut.peek(), Some(Err(_))));
        self.routers.retain(|slot, e| {
            let failed = matches!(e.fut.peek(), Some(Err(_)));
            // A failed creation is forgotten once no request waits on it.
            let in_flight = self.slot_users.contains_key(slot);
            let keep = used.contains(slot) && (in_flight || !failed);
            if !keep {
                tracing::debug!(worker = %slot, "router no longer needed: closing");
            }
            keep
        });
    }

    /// The hop of `producer_id` (living on `origin`) into `target`, started
    /// if needed; the caller must hand the returned entry id back to
    /// [`Self::finish_pipe`]. A new hop is fed from the shallowest worker of
    /// the producer's tree that forwards to fewer than `pipe_fanout` others.
    fn pipe_for(
        &mut self,
        producer_id: ProducerId,
        origin: WorkerSlot,
        target: WorkerSlot,
        ctx: &mut Context<Self>,
    ) -> Result<(u64, PipeFuture), RoomError> {
        let fanout = self.env.config.placement.pipe_fanout.max(1) as usize;
        let (parent, parent_depth, parent_fut) = match self.pipes.get_mut(&producer_id) {
            Some(tree) => {
                if let Some(e) = tree.hops.get_mut(&target) {
                    e.in_flight += 1;
                    return Ok((e.id, e.fut.clone()));
                }
                let (parent, depth) = tree.parent_for_new_hop(fanout);
                let fut = tree.hops.get(&parent).map(|e| e.fut.clone());
                (parent, depth, fut)
            }
            None => (origin, 0, None),
        };
        let src = self.lease(parent)?;
        let dst = self.lease(target)?;
        let pair = self.pipe_pair_for(&src, &dst);
        let node = Arc::clone(&self.env.counters);
        let id = self.fresh_id();
        let me = ctx.address();
        let fut = async move {
            // A hop fed from another hop waits until that one is piped.
            if let Some(parent) = parent_fut {
                parent.await?;
            }
            let pair = pair.await?;
            // What `Router::pipe_producer_to_router` does, on our own pair:
            // a pipe consumer on the sending router, a pipe producer with
            // the same id on the receiving one.
            let consumer = pair
                .local
                .consume(ConsumerOptions::new(
                    producer_id,
                    RtpCapabilities::default(),
                ))
                .await
                .map_err(|e| match e {
                    ConsumeError::ProducerNotFound(id) => RoomError::UnknownProducer(id),
                    other => RoomError::Mediasoup(other.to_string()),
                })?;
            let mut options = ProducerOptions::new_pipe_transport(
                producer_id,
                consumer.kind(),
                consumer.rtp_parameters().clone(),
            );
            options.paused = consumer.producer_paused();
            let producer = pair
                .remote
                .produce(options)
                .await
                .map_err(|e| RoomError::Mediasoup(e.to_string()))?;
            // Pause, resume and close of the source travel down the hop
            // through the room (callbacks run on mediasoup's threads).
            let hop = PipeHop {
                producer_id,
                target: dst.slot,
                id,
            };
            for paused in [true, false] {
                let me = me.clone();
                let handler = move || me.do_send(PipePaused { hop, paused });
                if paused {
                    consumer.on_pause(handler).detach();
                } else {
                    consumer.on_resume(handler).detach();
                }
            }
            let (sc, dc) = (&src.worker_counters, &dst.worker_counters);
            let guards = (
                Tracked::new(Resource::Consumer, &[&node, sc]),
                Tracked::new(Resource::PipeConsumer, &[&node, sc]),
            );
            consumer
                .on_close(move || {
                    drop(guards);
                    me.do_send(PipeHopClosed(hop));
                })
                .detach();
            let guards = (
                Tracked::new(Resource::Producer, &[&node, dc]),
                Tracked::new(Resource::PipeProducer, &[&node, dc]),
            );
            producer.on_close(move || drop(guards)).detach();
            tracing::debug!(producer = %producer_id, from = %src.slot, to = %dst.slot, "producer piped");
            Ok(PipeHandles {
                producer,
                _consumer: consumer,
            })
        }
        .instrument(self.span.clone())
        .boxed_local()
        .shared();
        let tree = self.pipes.entry(producer_id).or_insert_with(|| PipeTree {
            origin,
            hops: HashMap::new(),
        });
        tree.hops.insert(
            target,
            PipeEntry {
                id,
                from: parent,
                depth: parent_depth + 1,
                fut: fut.clone(),
                consumers: HashSet::new(),
                in_flight: 1,
            },
        );
        Ok((id, fut))
    }

    /// The pipe transport pair from `src`'s worker to `dst`'s, created on
    /// first use (concurrent hops share one creation).
    fn pipe_pair_for(&mut self, src: &RouterLease, dst: &RouterLease) -> PairFuture {
        let key = (src.slot, dst.slot);
        if let Some(f) = self.pipe_pairs.get(&key) {
            return f.clone();
        }
        let bytes = self.env.config.rtc.pipe_socket_buffer_bytes;
        let listen = ListenInfo {
            protocol: Protocol::Udp,
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            announced_address: None,
            expose_internal_ip: false,
            port: None,
            port_range: None,
            flags: None,
            send_buffer_size: Some(bytes),
            recv_buffer_size: Some(bytes),
        };
        let (from, to) = (src.router.clone(), dst.router.clone());
        let fut = async move {
            let mut options = PipeTransportOptions::new(listen);
            // Media only: no SCTP association on the pipe transports.
            options.enable_sctp = false;
            let err = |e: mediasoup::worker::RequestError| RoomError::Mediasoup(e.to_string());
            let (local, remote) = futures::try_join!(
                from.create_pipe_transport(options.clone()),
                to.create_pipe_transport(options),
            )
            .map_err(err)?;
            for (a, b) in [(&local, &remote), (&remote, &local)] {
                let tuple = b.tuple();
                a.connect(PipeTransportRemoteParameters {
                    ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    port: tuple.local_port(),
                    srtp_parameters: None,
                })
                .await
                .map_err(err)?;
            }
            Ok(PipePair { local, remote })
        }
        .instrument(self.span.clone())
        .boxed_local()
        .shared();
        self.pipe_pairs.insert(key, fut.clone());
        fut
    }

    /// Ends one consume request's use of a hop; registers its consumer when
    /// it got one. Returns whether the hop is still the room's (it may have
    /// been dropped meanwhile because its producer closed or a worker died).
    fn finish_pipe(
        &mut self,
        key: (ProducerId, WorkerSlot),
        id: u64,
        consumer: Option<ConsumerId>,
    ) -> bool {
        let (producer_id, slot) = key;
        let Some(e) = self
            .pipes
            .get_mut(&producer_id)
            .and_then(|t| t.hops.get_mut(&slot))
            .filter(|e| e.id == id)
        else {
            return false;
        };
        e.in_flight -= 1;
        if let Some(c) = consumer {
            e.consumers.insert(c);
        }
        if self.prune_hops(producer_id, slot) {
            self.gc_routers();
        }
        true
    }

    /// Drops the hop of `producer_id` into `slot` if nothing uses it any more
    /// (no consumer, no waiting request, no hop fed from it), then its
    /// parents in turn. Returns whether any hop was dropped.
    fn prune_hops(&mut self, producer_id: ProducerId, slot: WorkerSlot) -> bool {
        let Some(tree) = self.pipes.get_mut(&producer_id) else {
            return false;
        };
        let mut slot = slot;
        let mut pruned = false;
        loop {
            let unused = tree
                .hops
                .get(&slot)
                .is_some_and(|e| e.in_flight == 0 && e.consumers.is_empty())
                && tree.children(slot) == 0;
            if !unused {
                break;
            }
            let Some(e) = tree.hops.remove(&slot) else {
                break;
            };
            tracing::debug!(producer = %producer_id, to = %slot, "pipe no longer used: closing");
            pruned = true;
            slot = e.from;
        }
        if tree.hops.is_empty() {
            self.pipes.remove(&producer_id);
        }
        pruned
    }

    /// A consumer on `slot` of `producer_id` is gone; closes the hop it used
    /// when it was the last user.
    fn release_consumer(&mut self, producer_id: ProducerId, slot: WorkerSlot, id: ConsumerId) {
        let hop = self
            .pipes
            .get_mut(&producer_id)
            .and_then(|t| t.hops.get_mut(&slot));
        if let Some(e) = hop {
            e.consumers.remove(&id);
            self.prune_hops(producer_id, slot);
        }
    }

    /// Closes every pipe of a producer that went away.
    fn drop_pipes_of(&mut self, producer_id: ProducerId) {
        self.pipes.remove(&producer_id);
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
        tracing::info!(peer = %peer_id, worker = %peer.slot, "peer left");
        let producer_ids: Vec<ProducerId> = peer.producers.keys().copied().collect();
        for (id, c) in &peer.consumers {
            self.release_consumer(c.producer_id(), peer.slot, *id);
        }
        // Dropping the peer closes its transports, and with them its
        // producers and consumers.
        drop(peer);
        for producer_id in producer_ids {
            self.drop_pipes_of(producer_id);
            self.broadcast(peer_id, Event::ProducerClosed { producer_id }, ctx);
        }
        self.broadcast(peer_id, Event::PeerLeft { peer_id }, ctx);
        self.gc_routers();
        self.maybe_close(ctx);
    }

    fn maybe_close(&mut self, ctx: &mut Context<Self>) {
        if self.peers.is_empty() && self.pending_joins == 0 && !self.closing {
            tracing::info!("room empty: closing");
            self.closing = true;
            ctx.stop();
        }
    }

    /// Drops everything the room holds.
    fn clear(&mut self) {
        self.closing = true;
        self.pipes.clear();
        self.pipe_pairs.clear();
        self.peers.clear();
        self.routers.clear();
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
    ) -> Result<PeerTransport, RoomError> {
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
        let info = |protocol| rtc_listen_info(&config.rtc, protocol);
        let infos = WebRtcTransportListenInfos::new(info(Protocol::Udp));
        if config.rtc.enable_tcp {
            infos.insert(info(Protocol::Tcp))
        } else {
            infos
        }
    }

    fn find_producer(&self, producer_id: ProducerId) -> Option<(PeerId, &Producer)> {
        self.peers.iter().find_map(|(pid, p)| {
            p.producers
                .get(&producer_id)
                .map(|producer| (*pid, producer))
        })
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("room started");
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        self.clear();
        tracing::info!("room closed");
        self.server.do_send(RoomClosed {
            room: self.id.clone(),
            addr: ctx.address(),
        });
    }
}

/// Closes the room and disconnects everyone (e.g. the node is stopping).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseRoom(pub String);

impl Handler<CloseRoom> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: CloseRoom, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::warn!(reason = %msg.0, "closing room");
        self.clear();
        ctx.stop();
    }
}

/// A worker of the node died (or was killed): the room drops its router
/// there and every pipe into or out of it; the peers placed there get a
/// `reconnect` event and are removed (their sockets close). Peers on other
/// workers stay. Sent by the server, and by the router's `on_worker_close`.
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

impl Handler<WorkerLost> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: WorkerLost, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        // The slot may hold a router on a replacement worker by now.
        let ours = self
            .routers
            .get(&msg.slot)
            .is_some_and(|e| e.worker_id == msg.worker_id);
        if !ours {
            return;
        }
        let victims: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.slot == msg.slot)
            .map(|(id, _)| *id)
            .collect();
        tracing::warn!(worker = %msg.slot, reason = %msg.reason, peers = victims.len(), "worker lost: dropping its router and peers");
        self.routers.remove(&msg.slot);
        // Hops into or out of the lost worker go, with the hops below them:
        // their consumers close, and their peers are offered the producer
        // again (see `ConsumerGone`).
        for tree in self.pipes.values_mut() {
            tree.cut(msg.slot);
        }
        self.pipes.retain(|_, t| !t.hops.is_empty());
        for p in &victims {
            self.send_to(
                *p,
                Event::Reconnect {
                    reason: msg.reason.clone(),
                },
                ctx,
            );
        }
        for p in victims {
            self.remove_peer(p, ctx);
        }
        self.gc_routers();
        self.maybe_close(ctx);
    }
}

/// A peer joins; the room assigns its id and places it on a worker.
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

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.closing {
            return Box::pin(fut::ready(Err(RoomError::RoomClosed)));
        }
        let Some(seat) = self.env.workers.pick(&self.env.config.placement) else {
            return Box::pin(fut::ready(Err(RoomError::NoWorker)));
        };
        let slot = seat.slot;
        let (router_id, router) = match self.router_for(slot, ctx) {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        // Counted on the worker at once, so that concurrent joins see it.
        let tracked = Tracked::new(Resource::Peer, &[&self.env.counters, &seat.counters]);
        self.pending_joins += 1;
        *self.slot_users.entry(slot).or_default() += 1;
        Box::pin(router.into_actor(self).map(move |lease, act, ctx| {
            act.pending_joins -= 1;
            act.release_slot_user(slot);
            let _e = act.span.clone().entered();
            let lease = match lease {
                Ok(lease) if !act.closing && act.current_router(slot, router_id) => Ok(lease),
                Ok(_) => Err(RoomError::RoomClosed),
                Err(e) => Err(e),
            };
            let lease = match lease {
                Ok(l) => l,
                Err(e) => {
                    drop(_e);
                    act.gc_routers();
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
                    slot,
                    events: msg.events,
                    transports: HashMap::new(),
                    producers: HashMap::new(),
                    consumers: HashMap::new(),
                    _tracked: tracked,
                },
            );
            tracing::info!(peer = %peer_id, name = %info.display_name, worker = %slot, "peer joined");
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

/// The routers' RTP capabilities (every router of a room offers the same).
#[derive(Debug, Message)]
#[rtype(result = "Result<RtpCapabilitiesFinalized, RoomError>")]
pub struct GetRtpCapabilities;

impl Handler<GetRtpCapabilities> for RoomActor {
    type Result = ResponseActFuture<Self, Result<RtpCapabilitiesFinalized, RoomError>>;
    fn handle(&mut self, _msg: GetRtpCapabilities, ctx: &mut Self::Context) -> Self::Result {
        let existing = self.routers.values().find_map(|e| match e.fut.peek() {
            Some(Ok(lease)) => Some(lease.router.rtp_capabilities()),
            _ => None,
        });
        if let Some(caps) = existing {
            return Box::pin(fut::ready(Ok(caps)));
        }
        // No router yet: make one where the next peer would go; it is closed
        // again unless a peer comes to use it.
        let Some(seat) = self.env.workers.pick(&self.env.config.placement) else {
            return Box::pin(fut::ready(Err(RoomError::NoWorker)));
        };
        let slot = seat.slot;
        let router = match self.router_for(slot, ctx) {
            Ok((_, r)) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        *self.slot_users.entry(slot).or_default() += 1;
        Box::pin(router.into_actor(self).map(move |res, act, _ctx| {
            act.release_slot_user(slot);
            act.gc_routers();
            Ok(res?.router.rtp_capabilities())
        }))
    }
}

/// Creates a WebRTC transport for a peer, on its worker's router.
#[derive(Debug, Message)]
#[rtype(result = "Result<TransportReply, RoomError>")]
pub struct CreateTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Send or receive.
    pub direction: Direction,
}

impl RoomActor {
    /// Creates a transport for a peer on its worker's router (`create`
    /// gets the router), counts it, and files it under the peer as `finish`
    /// wraps it; a transport made for a peer that left meanwhile is dropped,
    /// which closes it.
    fn create_peer_transport<T, R>(
        &self,
        peer_id: PeerId,
        direction: Direction,
        create: impl FnOnce(Router) -> LocalBoxFuture<'static, Result<T, mediasoup::worker::RequestError>>
            + 'static,
        finish: impl FnOnce(T) -> (R, PeerTransport) + 'static,
    ) -> ResponseActFuture<Self, Result<R, RoomError>>
    where
        T: Transport + 'static,
        R: 'static,
    {
        let lease = match self.peer_lease(peer_id) {
            Ok(l) => l,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let node_counters = Arc::clone(&self.env.counters);
        let fut = async move {
            let transport = create(lease.router.clone())
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
            let transport = res?;
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            let (reply, transport) = finish(transport);
            peer.transports
                .insert(transport.id(), (direction, transport));
            Ok(reply)
        }))
    }
}

impl Handler<CreateTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<TransportReply, RoomError>>;

    fn handle(&mut self, msg: CreateTransport, _ctx: &mut Self::Context) -> Self::Result {
        let mut options = WebRtcTransportOptions::new(Self::listen_infos(&self.env.config));
        options.initial_available_outgoing_bitrate =
            u64::from(self.env.config.rtc.initial_outgoing_bitrate);
        self.create_peer_transport(
            msg.peer_id,
            msg.direction,
            move |router| {
                async move { router.create_webrtc_transport(options).await }.boxed_local()
            },
            |transport: WebRtcTransport| {
                let reply = TransportReply {
                    id: transport.id(),
                    ice_parameters: transport.ice_parameters().clone(),
                    ice_candidates: transport.ice_candidates().clone(),
                    dtls_parameters: transport.dtls_parameters(),
                };
                (reply, PeerTransport::WebRtc(transport))
            },
        )
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
            Ok(PeerTransport::WebRtc(t)) => t,
            Ok(PeerTransport::Plain(_)) => {
                let e = RoomError::WrongTransportKind(msg.transport_id, "WebRTC");
                return Box::pin(fut::ready(Err(e)));
            }
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

/// Creates a plain RTP transport for a peer, on its worker's router: RTCP
/// multiplexed, no SRTP; the remote address comes from
/// [`ConnectPlainTransport`] or, with `comedia`, from the first packet.
#[derive(Debug, Message)]
#[rtype(result = "Result<PlainTransportReply, RoomError>")]
pub struct CreatePlainTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Send or receive.
    pub direction: Direction,
    /// Learn the remote address from the first packet.
    pub comedia: bool,
}

impl Handler<CreatePlainTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<PlainTransportReply, RoomError>>;

    fn handle(&mut self, msg: CreatePlainTransport, _ctx: &mut Self::Context) -> Self::Result {
        let mut options =
            PlainTransportOptions::new(rtc_listen_info(&self.env.config.rtc, Protocol::Udp));
        options.rtcp_mux = true;
        options.comedia = msg.comedia;
        self.create_peer_transport(
            msg.peer_id,
            msg.direction,
            move |router| async move { router.create_plain_transport(options).await }.boxed_local(),
            |transport: PlainTransport| {
                let tuple = transport.tuple();
                let reply = PlainTransportReply {
                    id: transport.id(),
                    ip: tuple.local_address().clone(),
                    port: tuple.local_port(),
                };
                (reply, PeerTransport::Plain(transport))
            },
        )
    }
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

impl Handler<ConnectPlainTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ConnectPlainTransport, _ctx: &mut Self::Context) -> Self::Result {
        let transport = match self.transport(msg.peer_id, msg.transport_id, None) {
            Ok(PeerTransport::Plain(t)) => t,
            Ok(PeerTransport::WebRtc(_)) => {
                let e = RoomError::WrongTransportKind(msg.transport_id, "plain");
                return Box::pin(fut::ready(Err(e)));
            }
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let fut = async move {
            transport
                .connect(PlainTransportRemoteParameters {
                    ip: Some(msg.remote.ip()),
                    port: Some(msg.remote.port()),
                    rtcp_port: None,
                    srtp_parameters: None,
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
        let checked = self
            .transport(msg.peer_id, msg.transport_id, Some(Direction::Send))
            .and_then(|t| Ok((t, self.peer_lease(msg.peer_id)?)));
        let (transport, lease) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let node = Arc::clone(&self.env.counters);
        let mut options = ProducerOptions::new(msg.kind, msg.rtp_parameters);
        options.key_frame_request_delay = self.env.config.rtc.key_frame_request_delay_ms;
        let fut = async move {
            let producer = transport.produce(options).await.map_err(|e| match e {
                ProduceError::Request(e) => RoomError::from_request(e),
                other => RoomError::InvalidParameters(other.to_string()),
            })?;
            let tracked = Tracked::new(Resource::Producer, &[&node, &lease.worker_counters]);
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

/// A peer starts receiving another peer's track; the consumer starts paused.
/// When the producer lives on another worker, it is piped into the
/// consumer's worker first (one pipe per producer and worker, shared).
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

/// Which hop of which producer's pipe tree (ids tell incarnations apart).
#[derive(Debug, Clone, Copy)]
struct PipeHop {
    producer_id: ProducerId,
    target: WorkerSlot,
    id: u64,
}

impl RoomActor {
    /// The hop's pipe producer, if the hop is still the room's and piped.
    fn hop_producer(&self, hop: PipeHop) -> Option<Producer> {
        let e = self
            .pipes
            .get(&hop.producer_id)?
            .hops
            .get(&hop.target)
            .filter(|e| e.id == hop.id)?;
        match e.fut.peek() {
            Some(Ok(handles)) => Some(handles.producer.clone()),
            _ => None,
        }
    }
}

/// Internal: the source of a hop was paused or resumed; so is the hop's
/// pipe producer (and with it every consumer and hop below).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PipePaused {
    hop: PipeHop,
    paused: bool,
}

impl Handler<PipePaused> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: PipePaused, ctx: &mut Self::Context) {
        let Some(producer) = self.hop_producer(msg.hop) else {
            return;
        };
        let fut = async move {
            let r = if msg.paused {
                producer.pause().await
            } else {
                producer.resume().await
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "pipe producer pause/resume failed");
            }
        }
        .instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self));
    }
}

/// Internal: a hop's pipe consumer closed without the room dropping the hop
/// (its source went away underneath): the hop and the hops below it go, and
/// their consumers are offered the producer again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PipeHopClosed(PipeHop);

impl Handler<PipeHopClosed> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: PipeHopClosed, _ctx: &mut Self::Context) {
        let hop = msg.0;
        let Some(tree) = self.pipes.get_mut(&hop.producer_id) else {
            return;
        };
        if tree.hops.get(&hop.target).is_none_or(|e| e.id != hop.id) {
            // Dropped by the room already.
            return;
        }
        let _e = self.span.clone().entered();
        tracing::warn!(producer = %hop.producer_id, to = %hop.target, "pipe closed underneath: dropping the hop and those below");
        tree.cut(hop.target);
        if tree.hops.is_empty() {
            self.pipes.remove(&hop.producer_id);
        }
        drop(_e);
        self.gc_routers();
    }
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
            .and_then(|p| p.consumers.remove(&msg.consumer_id).map(|_| p.slot));
        if let Some(slot) = removed {
            self.release_consumer(msg.producer_id, slot, msg.consumer_id);
            self.gc_routers();
            self.send_to(
                msg.peer_id,
                Event::ConsumerClosed {
                    consumer_id: msg.consumer_id,
                    producer_id: msg.producer_id,
                },
                ctx,
            );
            // The producer is still there: the consumer lost the pipe it came
            // through (a worker on the way died). Offer the producer again;
            // consuming it now builds a new path.
            let again = self
                .find_producer(msg.producer_id)
                .map(|(owner, p)| ProducerInfo {
                    producer_id: p.id(),
                    peer_id: owner,
                    kind: p.kind(),
                    paused: p.paused(),
                });
            if let Some(info) = again.filter(|i| i.peer_id != msg.peer_id) {
                let _e = self.span.clone().entered();
                tracing::info!(peer = %msg.peer_id, producer = %msg.producer_id, "pipe lost: offering the producer again");
                drop(_e);
                self.send_to(msg.peer_id, Event::NewProducer(info), ctx);
            }
        }
    }
}

impl Handler<Consume> for RoomActor {
    type Result = ResponseActFuture<Self, Result<ConsumeReply, RoomError>>;

    fn handle(&mut self, msg: Consume, ctx: &mut Self::Context) -> Self::Result {
        let checked = (|| {
            let transport = self.transport(msg.peer_id, msg.transport_id, Some(Direction::Recv))?;
            let owner = match self.find_producer(msg.producer_id) {
                Some((owner, _)) if owner != msg.peer_id => owner,
                _ => return Err(RoomError::UnknownProducer(msg.producer_id)),
            };
            let source = self.peer(owner)?.slot;
            let lease = self.peer_lease(msg.peer_id)?;
            Ok((transport, source, lease))
        })();
        let (transport, source, lease) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let target = lease.slot;
        let pipe_key = (msg.producer_id, target);
        let pipe = if source == target {
            None
        } else {
            match self.pipe_for(msg.producer_id, source, target, ctx) {
                Ok(p) => Some(p),
                Err(e) => return Box::pin(fut::ready(Err(e))),
            }
        };
        let pipe_id = pipe.as_ref().map(|(id, _)| *id);
        let node = Arc::clone(&self.env.counters);
        let me = ctx.address();
        let peer_id = msg.peer_id;
        let fut = async move {
            if let Some((_, pipe)) = pipe {
                pipe.await?;
            }
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
            let tracked = Tracked::new(Resource::Consumer, &[&node, &lease.worker_counters]);
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
            // Re-validate everything the awaits may have invalidated; on any
            // failure the consumer is dropped (closed) here.
            let valid = match &res {
                Ok(c) if c.closed() => Err(RoomError::UnknownProducer(c.producer_id())),
                Ok(_) => match act.peers.get(&peer_id) {
                    None => Err(RoomError::UnknownPeer(peer_id)),
                    Some(p) if !p.transports.contains_key(&transport_id) => {
                        Err(RoomError::UnknownTransport(transport_id))
                    }
                    Some(p) if p.slot != target => Err(RoomError::UnknownPeer(peer_id)),
                    Some(_) => Ok(()),
                },
                Err(e) => Err(e.clone()),
            };
            let registered = valid
                .as_ref()
                .ok()
                .and_then(|_| res.as_ref().ok())
                .map(|c| c.id());
            if let Some(pipe_id) = pipe_id {
                if !act.finish_pipe(pipe_key, pipe_id, registered) && valid.is_ok() {
                    // The pipe was dropped meanwhile: its producer closed.
                    return Err(RoomError::UnknownProducer(pipe_key.0));
                }
            }
            valid?;
            let consumer = res?;
            let reply = ConsumeReply {
                id: consumer.id(),
                producer_id: consumer.producer_id(),
                kind: consumer.kind(),
                rtp_parameters: consumer.rtp_parameters().clone(),
                producer_paused: consumer.producer_paused(),
            };
            if let Some(peer) = act.peers.get_mut(&peer_id) {
                peer.consumers.insert(consumer.id(), consumer);
            }
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
                // Its pipes close with it (and their consumers with them).
                self.drop_pipes_of(producer_id);
                self.gc_routers();
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

impl Handler<ProducerStats> for RoomActor {
    type Result = ResponseFuture<Result<Vec<mediasoup::producer::ProducerStat>, RoomError>>;
    fn handle(&mut self, msg: ProducerStats, _ctx: &mut Self::Context) -> Self::Result {
        let producer = self.peer(msg.peer_id).and_then(|p| {
            p.producers
                .get(&msg.producer_id)
                .cloned()
                .ok_or(RoomError::UnknownProducer(msg.producer_id))
        });
        Box::pin(async move {
            producer?
                .get_stats()
                .await
                .map_err(|e| RoomError::Mediasoup(e.to_string()))
        })
    }
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

impl Handler<ConsumerStats> for RoomActor {
    type Result =
        ResponseFuture<Result<Vec<mediasoup::consumer::ConsumerRtpStreamStat>, RoomError>>;
    fn handle(&mut self, msg: ConsumerStats, _ctx: &mut Self::Context) -> Self::Result {
        let consumer = self.peer(msg.peer_id).and_then(|p| {
            p.consumers
                .get(&msg.consumer_id)
                .cloned()
                .ok_or(RoomError::UnknownConsumer(msg.consumer_id))
        });
        Box::pin(async move {
            consumer?
                .get_stats()
                .await
                .map_err(|e| RoomError::Mediasoup(e.to_string()))
        })
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

impl Handler<CanConsume> for RoomActor {
    type Result = bool;
    fn handle(&mut self, msg: CanConsume, _ctx: &mut Self::Context) -> bool {
        self.find_producer(msg.producer_id)
            .and_then(|(owner, _)| self.peer_lease(owner).ok())
            .is_some_and(|lease| {
                lease
                    .router
                    .can_consume(&msg.producer_id, &msg.rtp_capabilities)
            })
    }
}
