//! The node handle: configuration, start-up, the public API and shutdown.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix::Recipient;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument;

use crate::{
    actor_ref::ActorRef,
    error::{AskError, MetadataError, NameError, RegisterError, StartError},
    id::{validate_actor_name, ActorPath, Incarnation, NodeId},
    link::Peer,
    membership::{self, MemberInfo, MembershipEvent, MetaStore, NodeMetadata, SwimCmd},
    message::RemoteMessage,
    registry::Registry,
    tls::TlsConfig,
    traffic::{LinkStats, PeerTraffic},
    wire::close_code,
};

/// Where the node's QUIC endpoint comes from.
#[derive(Debug)]
pub enum EndpointSource {
    /// Bind a new UDP socket on this address (port 0 for an ephemeral port).
    Bind(SocketAddr),
    /// Use this already bound UDP socket.
    Socket(std::net::UdpSocket),
    /// Use this quinn endpoint; the node installs its own server config.
    Endpoint(quinn::Endpoint),
}

/// SWIM (foca) timings and gossip settings. All nodes of a cluster must use
/// the same values.
#[derive(Debug, Clone)]
pub struct SwimConfig {
    /// Time between two probes of a random member.
    pub probe_period: Duration,
    /// Time to wait for a direct ack before asking others to probe.
    pub probe_rtt: Duration,
    /// Members asked to probe indirectly.
    pub num_indirect_probes: usize,
    /// How long a member stays suspect before being declared down.
    pub suspect_to_down_after: Duration,
    /// Period of the extra gossip rounds.
    pub gossip_period: Duration,
    /// Members contacted per gossip round.
    pub gossip_fanout: usize,
    /// Period of re-announcing to a random member (heals partitions).
    pub announce_period: Duration,
    /// How long a down member is remembered before it may rejoin with the
    /// same incarnation (a restarted node has a new one and rejoins at once).
    pub remove_down_after: Duration,
    /// Maximum SWIM packet, must fit in a QUIC datagram.
    pub max_packet_bytes: usize,
    /// Local metadata is re-gossiped with this period (so late joiners get it).
    pub metadata_refresh: Duration,
}

impl Default for SwimConfig {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(1000),
            probe_rtt: Duration::from_millis(400),
            num_indirect_probes: 3,
            suspect_to_down_after: Duration::from_secs(3),
            gossip_period: Duration::from_millis(200),
            gossip_fanout: 3,
            announce_period: Duration::from_secs(10),
            remove_down_after: Duration::from_secs(30),
            max_packet_bytes: 1100,
            metadata_refresh: Duration::from_secs(10),
        }
    }
}

impl SwimConfig {
    /// Fast timings for tests and examples on loopback.
    pub fn fast() -> Self {
        Self {
            probe_period: Duration::from_millis(300),
            probe_rtt: Duration::from_millis(150),
            suspect_to_down_after: Duration::from_millis(900),
            gossip_period: Duration::from_millis(100),
            announce_period: Duration::from_secs(2),
            remove_down_after: Duration::from_secs(10),
            metadata_refresh: Duration::from_secs(2),
            ..Self::default()
        }
    }

    /// Upper estimate of the time for a crashed member to be declared down
    /// by everybody, in a cluster of `cluster_size` nodes: a full
    /// round of probes, one more period, then the suspicion timeout.
    pub fn detection_time(&self, cluster_size: usize) -> Duration {
        let rounds = cluster_size.max(2) as u32 + 1;
        self.probe_period * rounds + self.suspect_to_down_after
    }

    fn validate(&self) -> Result<(), StartError> {
        let bad = |m: &str| Err(StartError::Config(m.to_string()));
        if self.probe_rtt.is_zero() || self.probe_rtt >= self.probe_period {
            return bad("swim.probe_rtt must be > 0 and < swim.probe_period");
        }
        if self.num_indirect_probes == 0 || self.gossip_fanout == 0 {
            return bad("swim.num_indirect_probes and swim.gossip_fanout must be > 0");
        }
        if !(256..=1200).contains(&self.max_packet_bytes) {
            return bad("swim.max_packet_bytes must be within 256..=1200");
        }
        if self.gossip_period.is_zero()
            || self.announce_period.is_zero()
            || self.metadata_refresh.is_zero()
        {
            return bad("swim periods must be > 0");
        }
        Ok(())
    }
}

/// Configuration of one node.
#[derive(Debug)]
pub struct NodeConfig {
    /// This node's name; must match its certificate.
    pub name: NodeId,
    /// The UDP socket / QUIC endpoint to use.
    pub endpoint: EndpointSource,
    /// Address other nodes dial; defaults to the endpoint's local address
    /// (required when binding a wildcard address).
    pub advertise_addr: Option<SocketAddr>,
    /// CA, node certificate and key.
    pub tls: TlsConfig,
    /// Addresses of nodes to join through.
    pub seeds: Vec<SocketAddr>,
    /// Largest frame accepted or sent, in bytes (checked before allocating).
    pub max_frame_bytes: usize,
    /// Default timeout of [`ActorRef::ask`].
    pub ask_timeout: Duration,
    /// Timeout of a dial (QUIC + TLS + fabric handshake).
    pub connect_timeout: Duration,
    /// A link without any traffic for this long is dead (keep-alives are
    /// sent at a third of it).
    pub idle_timeout: Duration,
    /// A link replaced by a newer one to the same incarnation stays open
    /// this long for in-flight streams.
    pub link_grace: Duration,
    /// Tells queued per peer before `tell` fails with `QueueFull`.
    pub tell_queue: usize,
    /// Membership settings.
    pub swim: SwimConfig,
}

impl NodeConfig {
    /// A configuration with defaults: 1 MiB frames, 5 s asks, 5 s connect,
    /// 10 s idle timeout, default SWIM timings, no seeds.
    pub fn new(name: NodeId, tls: TlsConfig, endpoint: EndpointSource) -> Self {
        Self {
            name,
            endpoint,
            advertise_addr: None,
            tls,
            seeds: Vec::new(),
            max_frame_bytes: 1 << 20,
            ask_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            link_grace: Duration::from_secs(5),
            tell_queue: 100_000,
            swim: SwimConfig::default(),
        }
    }
}

/// Settings kept after start.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) max_frame_bytes: usize,
    pub(crate) ask_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) link_grace: Duration,
    pub(crate) tell_queue: usize,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) swim: SwimConfig,
}

/// Monotonic counters, see [`Node::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) tells_sent: AtomicU64,
    pub(crate) tells_received: AtomicU64,
    pub(crate) tells_dropped: AtomicU64,
    pub(crate) asks_served: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) unknown_messages: AtomicU64,
    pub(crate) refused_links: AtomicU64,
}

/// A snapshot of the node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FabricStats {
    /// Tells written to links.
    pub tells_sent: u64,
    /// Tells delivered to local actors from links.
    pub tells_received: u64,
    /// Tells dropped (peer unreachable, link lost, oversized).
    pub tells_dropped: u64,
    /// Asks answered for remote nodes.
    pub asks_served: u64,
    /// Frames or payloads that failed to decode.
    pub decode_errors: u64,
    /// Messages for an unknown actor or tag.
    pub unknown_messages: u64,
    /// Connections refused at the TLS or fabric handshake.
    pub refused_links: u64,
}

/// Description of a live link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Generation of the peer at the other end.
    pub peer_generation: u64,
    /// UDP address of the peer.
    pub remote_addr: SocketAddr,
    /// Whether this node dialed the link.
    pub dialed_by_us: bool,
}

/// Shared state of a node. Tasks hold an `Arc` to it.
pub(crate) struct NodeInner {
    pub(crate) me: Incarnation,
    pub(crate) settings: Settings,
    pub(crate) endpoint: quinn::Endpoint,
    /// What links this node dials present (replaced by [`Node::reload_tls`]).
    pub(crate) client_config: parking_lot::RwLock<quinn::ClientConfig>,
    /// The QUIC transport settings, to build new TLS configurations with.
    pub(crate) transport: Arc<quinn::TransportConfig>,
    pub(crate) registry: Registry,
    pub(crate) peers: Mutex<HashMap<NodeId, Peer>>,
    /// Traffic per peer ever linked (kept for the node's life: bounded by
    /// the cluster's size).
    pub(crate) traffic: Mutex<HashMap<NodeId, Arc<PeerTraffic>>>,
    pub(crate) view: RwLock<HashMap<NodeId, MemberInfo>>,
    pub(crate) meta: MetaStore,
    pub(crate) events: broadcast::Sender<MembershipEvent>,
    pub(crate) subscribers: Mutex<Vec<Recipient<MembershipEvent>>>,
    pub(crate) swim_tx: mpsc::UnboundedSender<SwimCmd>,
    pub(crate) pending: Mutex<HashMap<u64, NodeId>>,
    pub(crate) next_ask: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) stopping: AtomicBool,
    pub(crate) done: watch::Sender<bool>,
    pub(crate) span: tracing::Span,
}

impl fmt::Debug for NodeInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeInner").field("me", &self.me).finish()
    }
}

impl NodeInner {
    pub(crate) fn id(&self) -> &NodeId {
        &self.me.node
    }

    /// The traffic counts of `peer`, created on first use.
    pub(crate) fn traffic_of(&self, peer: &NodeId) -> Arc<PeerTraffic> {
        Arc::clone(self.traffic.lock().entry(peer.clone()).or_default())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Spawns a task carrying the node's span.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(fut.instrument(self.span.clone()));
    }

    pub(crate) fn emit(&self, event: MembershipEvent) {
        let _ = self.events.send(event.clone());
        let mut subs = self.subscribers.lock();
        subs.retain(|r| r.connected());
        for r in subs.iter() {
            r.do_send(event.clone());
        }
    }

    async fn shutdown(self: &Arc<Self>) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            let mut done = self.done.subscribe();
            let _ = done.wait_for(|d| *d).await;
            return;
        }
        tracing::info!("node shutting down");
        let (tx, rx) = oneshot::channel();
        if self.swim_tx.send(SwimCmd::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
            // Let the endpoint driver put the leave datagrams on the wire.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.send_replace(true);
        self.endpoint
            .close(close_code::SHUTDOWN.into(), b"node shutting down");
        self.peers.lock().clear();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        // `send_replace` stores the value even when nobody is subscribed yet, so
        // a later `shutdown` or `stopped` sees it.
        self.done.send_replace(true);
        tracing::info!("node stopped");
    }
}

/// A running fabric node. Cheap to clone; all clones drive the same node.
///
/// Supervision tree (see `docs/architecture.md`): the node owns the QUIC
/// endpoint, an accept task, the SWIM task, the seed-join task, and one
/// task group per peer link (link driver, tell writer, stream servers).
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.me.node)
            .field("addr", &self.inner.me.addr)
            .field("generation", &self.inner.me.generation)
            .finish()
    }
}

impl Node {
    /// Starts a node on the current tokio runtime (plain tokio, or inside
    /// an actix `System`). The node stops when `shutdown` completes or
    /// [`Node::shutdown`] is called.
    pub async fn start<F>(config: NodeConfig, shutdown: F) -> Result<Self, StartError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if !(1024..=u32::MAX as usize).contains(&config.max_frame_bytes) {
            return Err(StartError::Config(
                "max_frame_bytes must be within 1024..=u32::MAX".into(),
            ));
        }
        if config.tell_queue == 0 {
            return Err(StartError::Config("tell_queue must be > 0".into()));
        }
        if config.idle_timeout < Duration::from_millis(100) {
            return Err(StartError::Config("idle_timeout must be >= 100ms".into()));
        }
        config.swim.validate()?;
        config.tls.check_name(&config.name)?;
        tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;

        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                config
                    .idle_timeout
                    .try_into()
                    .map_err(|_| StartError::Config("idle_timeout too large".into()))?,
            ))
            .keep_alive_interval(Some(config.idle_timeout / 3))
            .datagram_receive_buffer_size(Some(1 << 20))
            .max_concurrent_bidi_streams(4096u32.into())
            .max_concurrent_uni_streams(64u32.into())
            .stream_receive_window((8u32 << 20).into())
            .receive_window((16u32 << 20).into())
            .send_window(16 << 20);
        let transport = Arc::new(transport);
        let server_config = config.tls.server_config(transport.clone())?;
        let client_config = config.tls.client_config(transport.clone())?;

        let endpoint = match config.endpoint {
            EndpointSource::Bind(addr) => quinn::Endpoint::server(server_config, addr)?,
            EndpointSource::Socket(socket) => quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(server_config),
                socket,
                quinn::default_runtime().ok_or(StartError::NoRuntime)?,
            )?,
            EndpointSource::Endpoint(endpoint) => {
                endpoint.set_server_config(Some(server_config));
                endpoint
            }
        };
        let local = endpoint.local_addr()?;
        let addr = config.advertise_addr.unwrap_or(local);
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(StartError::Config(
                "advertise_addr is required when binding a wildcard address".into(),
            ));
        }
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        let me = Incarnation {
            node: config.name.clone(),
            addr,
            generation,
            bump: 0,
        };
        let span = tracing::info_span!("fabric", node = %config.name);
        let (swim_tx, swim_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(NodeInner {
            me,
            settings: Settings {
                max_frame_bytes: config.max_frame_bytes,
                ask_timeout: config.ask_timeout,
                connect_timeout: config.connect_timeout,
                link_grace: config.link_grace,
                tell_queue: config.tell_queue,
                seeds: config.seeds,
                swim: config.swim,
            },
            endpoint,
            client_config: parking_lot::RwLock::new(client_config),
            transport,
            registry: Registry::default(),
            peers: Mutex::new(HashMap::new()),
            traffic: Mutex::new(HashMap::new()),
            view: RwLock::new(HashMap::new()),
            meta: MetaStore::default(),
            events: broadcast::channel(1024).0,
            subscribers: Mutex::new(Vec::new()),
            swim_tx,
            pending: Mutex::new(HashMap::new()),
            next_ask: AtomicU64::new(0),
            counters: Counters::default(),
            stop: watch::channel(false).0,
            stopping: AtomicBool::new(false),
            done: watch::channel(false).0,
            span,
        });
        tracing::info!(parent: &inner.span, %addr, generation, "node started");

        inner.spawn(crate::link::accept_loop(inner.clone()));
        inner.spawn(membership::run(inner.clone(), swim_rx));
        inner.spawn(membership::join_loop(inner.clone()));
        let watcher = inner.clone();
        inner.spawn(async move {
            let mut stop = watcher.stop.subscribe();
            tokio::select! {
                () = shutdown => watcher.shutdown().await,
                () = crate::link::wait_stop(&mut stop) => {}
            }
        });
        Ok(Self { inner })
    }

    /// This node's name.
    pub fn id(&self) -> &NodeId {
        self.inner.id()
    }

    /// Replaces the node's certificate (and CA) without a restart: links
    /// made from now on, dialed or accepted, use `tls`; links already up
    /// keep the certificate they were made with until they close. Refused
    /// (and nothing changes) when the certificate is not for this node.
    pub fn reload_tls(&self, tls: crate::TlsConfig) -> Result<(), crate::error::CertError> {
        tls.check_name(&self.inner.me.node)?;
        let server = tls.server_config(Arc::clone(&self.inner.transport))?;
        let client = tls.client_config(Arc::clone(&self.inner.transport))?;
        self.inner.endpoint.set_server_config(Some(server));
        *self.inner.client_config.write() = client;
        tracing::info!(node = %self.inner.me.node, "certificate reloaded");
        Ok(())
    }

    /// The address peers dial (advertised address).
    pub fn addr(&self) -> SocketAddr {
        self.inner.me.addr
    }

    /// This process's generation (start time in µs; a restart changes it).
    pub fn generation(&self) -> u64 {
        self.inner.me.generation
    }

    /// Exposes `recipient` as `name` for message type `M`. Call once per
    /// message type the actor accepts.
    pub fn register<M: RemoteMessage>(
        &self,
        name: &str,
        recipient: Recipient<M>,
    ) -> Result<ActorRef<M>, RegisterError> {
        self.inner.registry.register(name, recipient)?;
        Ok(ActorRef::named(self.inner.clone(), Arc::from(name)))
    }

    /// Convenience for [`register`](Self::register) with an actor address.
    pub fn register_actor<A, M>(
        &self,
        name: &str,
        addr: &actix::Addr<A>,
    ) -> Result<ActorRef<M>, RegisterError>
    where
        M: RemoteMessage,
        A: actix::Actor + actix::Handler<M>,
        A::Context: actix::dev::ToEnvelope<A, M>,
    {
        self.register(name, addr.clone().recipient())
    }

    /// Removes every registration of `name`. Returns whether it existed.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.registry.unregister(name)
    }

    /// Names registered on this node.
    pub fn registered(&self) -> Vec<String> {
        self.inner.registry.names()
    }

    /// A reference to actor `actor` on `node` (this node or another). No
    /// network traffic; an unknown actor shows up as an error on use.
    pub fn actor_ref<M: RemoteMessage>(
        &self,
        node: &NodeId,
        actor: &str,
    ) -> Result<ActorRef<M>, NameError> {
        validate_actor_name(actor)?;
        Ok(if node == self.id() {
            ActorRef::named(self.inner.clone(), Arc::from(actor))
        } else {
            ActorRef::remote(self.inner.clone(), node.clone(), Arc::from(actor))
        })
    }

    /// Like [`actor_ref`](Self::actor_ref) from a `node/actor` path.
    pub fn lookup<M: RemoteMessage>(&self, path: &str) -> Result<ActorRef<M>, NameError> {
        let path: ActorPath = path.parse()?;
        self.actor_ref(&path.node, &path.actor)
    }

    /// Checks with the hosting node's registry that `node/actor` accepts
    /// `M`, and returns a reference to it.
    pub async fn resolve<M: RemoteMessage>(
        &self,
        node: &NodeId,
        actor: &str,
    ) -> Result<ActorRef<M>, AskError> {
        let r = self
            .actor_ref::<M>(node, actor)
            .map_err(|e| AskError::UnknownActor {
                node: node.clone(),
                actor: e.to_string(),
            })?;
        if node == self.id() {
            return match self.inner.registry.lookup(actor, M::TAG) {
                crate::registry::Lookup::Found(_) => Ok(r),
                crate::registry::Lookup::UnknownActor => Err(AskError::UnknownActor {
                    node: node.clone(),
                    actor: actor.into(),
                }),
                crate::registry::Lookup::UnknownMessage => Err(AskError::UnknownMessage {
                    node: node.clone(),
                    actor: actor.into(),
                    tag: M::TAG.into(),
                }),
            };
        }
        self.inner
            .lookup_remote(node, actor, M::TAG, self.inner.settings.ask_timeout)
            .await?;
        Ok(r)
    }

    /// Joins the cluster of the node at `addr` now (as a seed does at
    /// start-up): dials it and announces this node to it. Two clusters
    /// that formed apart (a partition, or nodes started without seeds)
    /// merge this way.
    pub async fn join(&self, addr: SocketAddr) -> Result<(), crate::error::DialError> {
        let link = self.inner.dial(addr, None).await?;
        let _ = self.inner.swim_tx.send(SwimCmd::Announce(link.peer));
        Ok(())
    }

    /// Delivers membership events to an actix recipient.
    pub fn subscribe(&self, recipient: Recipient<MembershipEvent>) {
        self.inner.subscribers.lock().push(recipient);
    }

    /// A channel of membership events (for non-actix code and tests).
    pub fn events(&self) -> broadcast::Receiver<MembershipEvent> {
        self.inner.events.subscribe()
    }

    /// Every member this node knows of (not itself), with its latest
    /// metadata.
    pub fn members(&self) -> Vec<MemberInfo> {
        let mut members: Vec<MemberInfo> = self
            .inner
            .view
            .read()
            .values()
            .map(|m| {
                let mut m = m.clone();
                m.metadata = self.inner.meta.get(&m.id, m.generation);
                m
            })
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members
    }

    /// Sets and gossips this node's metadata (drain flag and opaque
    /// application bytes).
    pub fn set_local_metadata(&self, metadata: NodeMetadata) -> Result<(), MetadataError> {
        let len = membership::encoded_metadata_len(&self.inner, &metadata)?;
        if len > membership::MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge {
                len,
                max: membership::MAX_METADATA_BYTES,
            });
        }
        self.inner
            .swim_tx
            .send(SwimCmd::Metadata(metadata))
            .map_err(|_| MetadataError::Stopped)
    }

    /// This node's current metadata.
    pub fn local_metadata(&self) -> NodeMetadata {
        self.inner.meta.local()
    }

    /// Number of asks from this node still waiting for a reply.
    pub fn pending_asks(&self) -> usize {
        self.inner.pending.lock().len()
    }

    /// Pending asks towards one node.
    pub fn pending_asks_to(&self, node: &NodeId) -> usize {
        self.inner
            .pending
            .lock()
            .values()
            .filter(|n| *n == node)
            .count()
    }

    /// Nodes with a live link.
    pub fn linked_peers(&self) -> Vec<NodeId> {
        self.inner.linked_peers()
    }

    /// The live link to `node`, if any.
    pub fn link_info(&self, node: &NodeId) -> Option<LinkInfo> {
        self.inner.current_link(node).map(|l| LinkInfo {
            peer_generation: l.peer.generation,
            remote_addr: l.conn.remote_address(),
            dialed_by_us: l.dialed_by_us,
        })
    }

    /// Counters.
    pub fn stats(&self) -> FabricStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FabricStats {
            tells_sent: get(&c.tells_sent),
            tells_received: get(&c.tells_received),
            tells_dropped: get(&c.tells_dropped),
            asks_served: get(&c.asks_served),
            decode_errors: get(&c.decode_errors),
            unknown_messages: get(&c.unknown_messages),
            refused_links: get(&c.refused_links),
        }
    }

    /// Traffic with every peer this node ever had a link to, sorted by
    /// peer: messages and UDP bytes in each direction since the node
    /// started (every count only grows, across lost and replaced links),
    /// and the round-trip time of the live link, if any.
    pub fn link_stats(&self) -> Vec<LinkStats> {
        let mut peers: Vec<(NodeId, Arc<PeerTraffic>)> = self
            .inner
            .traffic
            .lock()
            .iter()
            .map(|(id, t)| (id.clone(), Arc::clone(t)))
            .collect();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        peers
            .into_iter()
            .map(|(id, t)| {
                let rtt = self.inner.current_link(&id).map(|l| l.conn.rtt());
                t.stats(id, rtt)
            })
            .collect()
    }

    /// Leaves the cluster (gossiping our departure), closes every link
    /// and the endpoint. Idempotent; returns once stopped.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// Completes when the node has stopped.
    pub async fn stopped(&self) {
        let mut done = self.inner.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }
}
