//! Membership and failure detection: SWIM (`foca`) over QUIC datagrams,
//! metadata gossip as foca custom broadcasts, and membership events.
//!
//! One task owns the `Foca` instance and is fed by a channel: SWIM packets
//! from link drivers, timer expiries, joins, metadata updates and the final
//! leave. After every input it compares foca's member table with the node's
//! view and emits `Up` / `Suspect` / `Alive` / `Down` events; a member going
//! down (or restarting with a new generation) closes its link, which fails
//! all pending asks towards it at once.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    num::{NonZeroU8, NonZeroUsize},
    sync::Arc,
    time::Duration,
};

use bytes::{Buf, BufMut, Bytes};
use foca::{
    AccumulatingRuntime, BroadcastHandler, Codec, Foca, Header, Invalidates, Member,
    OwnedNotification, PeriodicParams, State, Timer,
};
use parking_lot::Mutex;
use rand_swim::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{
    codec,
    error::{CodecError, MetadataError},
    id::{Incarnation, NodeId},
    node::NodeInner,
};

/// Largest encoded metadata broadcast, so it fits SWIM datagrams.
pub const MAX_METADATA_BYTES: usize = 512;

/// Small metadata gossiped by every node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeMetadata {
    /// The node accepts no new work.
    pub draining: bool,
    /// Opaque application bytes: the fabric gossips them without looking
    /// inside (the application chooses their encoding). Keep them small:
    /// the whole metadata must encode to at most [`MAX_METADATA_BYTES`].
    pub app: Vec<u8>,
}

/// SWIM state of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed probes; will be declared down unless it refutes.
    Suspect,
    /// Declared down (or left).
    Down,
}

/// A member as seen by this node.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInfo {
    /// Node name.
    pub id: NodeId,
    /// Advertised address.
    pub addr: SocketAddr,
    /// Generation (changes on restart).
    pub generation: u64,
    /// SWIM state.
    pub state: MemberState,
    /// Latest gossiped metadata of this generation, if received.
    pub metadata: Option<NodeMetadata>,
}

/// A membership change, delivered to subscribers.
#[derive(Debug, Clone, PartialEq, actix::Message)]
#[rtype(result = "()")]
pub enum MembershipEvent {
    /// A node joined (or restarted, or came back after being down).
    Up(MemberInfo),
    /// A node missed probes and is suspected to be down.
    Suspect(NodeId),
    /// A suspected node refuted the suspicion.
    Alive(NodeId),
    /// A node was declared down or left; its links are closed.
    Down(NodeId),
    /// A node published new metadata.
    Metadata {
        /// The node.
        node: NodeId,
        /// Its metadata.
        metadata: NodeMetadata,
    },
}

/// Inputs of the SWIM task.
#[derive(Debug)]
pub(crate) enum SwimCmd {
    Data(Bytes),
    Timer(Timer<Incarnation>),
    Announce(Incarnation),
    Metadata(NodeMetadata),
    Leave(oneshot::Sender<()>),
}

/// Metadata as gossiped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MetaBroadcast {
    node: NodeId,
    generation: u64,
    version: u64,
    metadata: NodeMetadata,
}

#[derive(Debug, Default)]
struct MetaInner {
    local: NodeMetadata,
    remote: HashMap<NodeId, (u64, u64, NodeMetadata)>,
}

/// Latest metadata per node.
#[derive(Debug, Default)]
pub(crate) struct MetaStore {
    inner: Mutex<MetaInner>,
}

impl MetaStore {
    pub(crate) fn get(&self, node: &NodeId, generation: u64) -> Option<NodeMetadata> {
        let inner = self.inner.lock();
        let (g, _, m) = inner.remote.get(node)?;
        (*g == generation).then(|| m.clone())
    }

    pub(crate) fn local(&self) -> NodeMetadata {
        self.inner.lock().local.clone()
    }

    /// Stores `b` if newer; returns whether it was.
    fn update(&self, b: &MetaBroadcast) -> bool {
        let mut inner = self.inner.lock();
        match inner.remote.get(&b.node) {
            Some((g, v, _)) if (*g, *v) >= (b.generation, b.version) => false,
            _ => {
                inner.remote.insert(
                    b.node.clone(),
                    (b.generation, b.version, b.metadata.clone()),
                );
                true
            }
        }
    }
}

pub(crate) fn encoded_metadata_len(
    inner: &NodeInner,
    metadata: &NodeMetadata,
) -> Result<usize, MetadataError> {
    let b = MetaBroadcast {
        node: inner.id().clone(),
        generation: inner.me.generation,
        version: u64::MAX,
        metadata: metadata.clone(),
    };
    Ok(codec::encode(&b)?.len())
}

#[derive(Debug, Clone)]
struct MetaKey {
    node: NodeId,
    generation: u64,
    version: u64,
}

impl Invalidates for MetaKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node
            && (self.generation, self.version) > (other.generation, other.version)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad metadata broadcast: {0}")]
struct MetaError(CodecError);

struct MetaHandler {
    inner: Arc<NodeInner>,
}

impl BroadcastHandler<Incarnation> for MetaHandler {
    type Key = MetaKey;
    type Error = MetaError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Incarnation>,
    ) -> Result<Option<MetaKey>, MetaError> {
        let b: MetaBroadcast = codec::decode(data).map_err(MetaError)?;
        let key = MetaKey {
            node: b.node.clone(),
            generation: b.generation,
            version: b.version,
        };
        if b.node == *self.inner.id() {
            // Only our own additions are disseminated; echoes are ignored.
            return Ok(sender.is_none().then_some(key));
        }
        if self.inner.meta.update(&b) {
            self.inner.emit(MembershipEvent::Metadata {
                node: b.node,
                metadata: b.metadata,
            });
            Ok(Some(key))
        } else {
            Ok(None)
        }
    }
}

/// foca's codec: its headers and members through [`crate::codec`].
#[derive(Debug, Default)]
struct SwimCodec;

#[derive(Debug, thiserror::Error)]
enum SwimCodecError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("packet buffer full")]
    Full,
}

fn put(bytes: &[u8], mut buf: impl BufMut) -> Result<(), SwimCodecError> {
    if buf.remaining_mut() < bytes.len() {
        return Err(SwimCodecError::Full);
    }
    buf.put_slice(bytes);
    Ok(())
}

fn take<T: serde::de::DeserializeOwned>(mut buf: impl Buf) -> Result<T, SwimCodecError> {
    // foca hands out contiguous buffers.
    if buf.chunk().len() != buf.remaining() {
        return Err(CodecError::Decode("non-contiguous buffer".into()).into());
    }
    let (value, used) = codec::decode_prefix(buf.chunk())?;
    buf.advance(used);
    Ok(value)
}

impl Codec<Incarnation> for SwimCodec {
    type Error = SwimCodecError;

    fn encode_header(
        &mut self,
        header: &Header<Incarnation>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        put(&codec::encode(header)?, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<Incarnation>, Self::Error> {
        take(buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<Incarnation>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        put(&codec::encode(member)?, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<Incarnation>, Self::Error> {
        take(buf)
    }
}

type Swim = Foca<Incarnation, SwimCodec, rand_swim::rngs::SmallRng, MetaHandler>;

fn foca_config(inner: &NodeInner) -> foca::Config {
    let s = &inner.settings.swim;
    let mut c = foca::Config::simple();
    c.probe_period = s.probe_period;
    c.probe_rtt = s.probe_rtt;
    c.num_indirect_probes = NonZeroUsize::new(s.num_indirect_probes).unwrap_or(NonZeroUsize::MIN);
    c.max_transmissions = NonZeroU8::new(10).unwrap_or(NonZeroU8::MIN);
    c.suspect_to_down_after = s.suspect_to_down_after;
    c.remove_down_after = Some(s.remove_down_after);
    c.max_packet_size = NonZeroUsize::new(s.max_packet_bytes).unwrap_or(NonZeroUsize::MIN);
    c.notify_down_members = true;
    c.periodic_announce = Some(PeriodicParams {
        frequency: s.announce_period,
        num_members: NonZeroUsize::MIN,
    });
    c.periodic_announce_to_down_members = Some(PeriodicParams {
        frequency: s.announce_period * 3,
        num_members: NonZeroUsize::MIN,
    });
    c.periodic_gossip = Some(PeriodicParams {
        frequency: s.gossip_period,
        num_members: NonZeroUsize::new(s.gossip_fanout).unwrap_or(NonZeroUsize::MIN),
    });
    c
}

struct SwimTask {
    inner: Arc<NodeInner>,
    foca: Swim,
    rt: AccumulatingRuntime<Incarnation>,
    meta_version: u64,
}

impl SwimTask {
    fn publish_metadata(&mut self) {
        self.meta_version += 1;
        let b = MetaBroadcast {
            node: self.inner.id().clone(),
            generation: self.inner.me.generation,
            version: self.meta_version,
            metadata: self.inner.meta.local(),
        };
        match codec::encode(&b) {
            Ok(bytes) => {
                if let Err(e) = self.foca.add_broadcast(&bytes) {
                    tracing::warn!(error = %e, "metadata not gossiped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "metadata not encodable"),
        }
    }

    fn handle(&mut self, cmd: SwimCmd) -> Option<oneshot::Sender<()>> {
        let result = match cmd {
            SwimCmd::Data(data) => self.foca.handle_data(&data, &mut self.rt),
            SwimCmd::Timer(timer) => self.foca.handle_timer(timer, &mut self.rt),
            SwimCmd::Announce(to) => self.foca.announce(to, &mut self.rt),
            SwimCmd::Metadata(metadata) => {
                self.inner.meta.inner.lock().local = metadata;
                self.publish_metadata();
                Ok(())
            }
            SwimCmd::Leave(done) => {
                if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
                    tracing::debug!(error = %e, "leave_cluster");
                }
                return Some(done);
            }
        };
        if let Err(e) = result {
            // Hostile or stale packets land here; never fatal.
            tracing::debug!(error = %e, "SWIM input rejected");
        }
        None
    }

    /// Executes what foca asked for: sends, timers, notifications.
    fn flush(&mut self) {
        while let Some((to, data)) = self.rt.to_send() {
            self.inner.send_swim(to, &data);
        }
        while let Some((after, timer)) = self.rt.to_schedule() {
            let tx = self.inner.swim_tx.clone();
            self.inner.spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(SwimCmd::Timer(timer));
            });
        }
        let mut republish = false;
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::MemberUp(_) => republish = true,
                OwnedNotification::Defunct if self.inner.is_stopping() => {
                    tracing::debug!("left the cluster")
                }
                OwnedNotification::Defunct => {
                    tracing::warn!("this node was declared down by the cluster; rejoining")
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(bump = id.bump, "rejoined the cluster")
                }
                other => tracing::trace!(notification = ?other, "SWIM"),
            }
        }
        if republish {
            // Newcomers learn our metadata from fresh broadcasts.
            self.publish_metadata();
        }
    }

    /// Diffs foca's member table against the view and emits events.
    fn sync_view(&mut self) {
        let mut events = Vec::new();
        let mut closes = Vec::new();
        {
            let mut view = self.inner.view.write();
            let mut seen = HashSet::new();
            for m in self.foca.iter_membership_state() {
                let id = m.id();
                let state = match m.state() {
                    State::Alive => MemberState::Alive,
                    State::Suspect => MemberState::Suspect,
                    State::Down => MemberState::Down,
                };
                seen.insert(id.node.clone());
                let info = MemberInfo {
                    id: id.node.clone(),
                    addr: id.addr,
                    generation: id.generation,
                    state,
                    metadata: None,
                };
                let previous = view.insert(id.node.clone(), info.clone());
                match previous {
                    None => {
                        if state != MemberState::Down {
                            events.push(MembershipEvent::Up(info.clone()));
                        }
                        if state == MemberState::Suspect {
                            events.push(MembershipEvent::Suspect(id.node.clone()));
                        }
                    }
                    Some(old) if old.generation != id.generation => {
                        if old.state != MemberState::Down {
                            events.push(MembershipEvent::Down(id.node.clone()));
                        }
                        closes.push((id.node.clone(), old.generation, "peer restarted"));
                        if state != MemberState::Down {
                            events.push(MembershipEvent::Up(info.clone()));
                        }
                    }
                    Some(old) => match (old.state, state) {
                        (MemberState::Alive, MemberState::Suspect) => {
                            events.push(MembershipEvent::Suspect(id.node.clone()))
                        }
                        (MemberState::Suspect, MemberState::Alive) => {
                            events.push(MembershipEvent::Alive(id.node.clone()))
                        }
                        (MemberState::Alive | MemberState::Suspect, MemberState::Down) => {
                            events.push(MembershipEvent::Down(id.node.clone()));
                            closes.push((id.node.clone(), id.generation, "declared down"));
                        }
                        (MemberState::Down, MemberState::Alive | MemberState::Suspect) => {
                            events.push(MembershipEvent::Up(info.clone()))
                        }
                        _ => {}
                    },
                }
            }
            view.retain(|id, m| {
                let keep = seen.contains(id);
                if !keep && m.state != MemberState::Down {
                    events.push(MembershipEvent::Down(id.clone()));
                    closes.push((id.clone(), m.generation, "removed from membership"));
                }
                keep
            });
        }
        for (node, generation, why) in closes {
            self.inner.peer_down(&node, generation, why);
        }
        for event in events {
            match &event {
                MembershipEvent::Up(m) => {
                    tracing::info!(member = %m.id, addr = %m.addr, "member up")
                }
                MembershipEvent::Down(id) => tracing::info!(member = %id, "member down"),
                MembershipEvent::Suspect(id) => tracing::info!(member = %id, "member suspect"),
                MembershipEvent::Alive(id) => tracing::info!(member = %id, "member alive again"),
                MembershipEvent::Metadata { .. } => {}
            }
            let event = match event {
                MembershipEvent::Up(mut m) => {
                    m.metadata = self.inner.meta.get(&m.id, m.generation);
                    MembershipEvent::Up(m)
                }
                other => other,
            };
            self.inner.emit(event);
        }
    }
}

/// The SWIM task.
pub(crate) async fn run(inner: Arc<NodeInner>, mut rx: mpsc::UnboundedReceiver<SwimCmd>) {
    let foca = Foca::with_custom_broadcast(
        inner.me.clone(),
        foca_config(&inner),
        rand_swim::rngs::SmallRng::seed_from_u64(rand::random()),
        SwimCodec,
        MetaHandler {
            inner: inner.clone(),
        },
    );
    let mut task = SwimTask {
        inner: inner.clone(),
        foca,
        rt: AccumulatingRuntime::new(),
        meta_version: 0,
    };
    let mut stop = inner.stop.subscribe();
    let mut refresh = tokio::time::interval(inner.settings.swim.metadata_refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let done = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => task.handle(cmd),
                None => break,
            },
            _ = refresh.tick() => {
                if task.foca.iter_members().next().is_some() {
                    task.publish_metadata();
                    if let Err(e) = task.foca.gossip(&mut task.rt) {
                        tracing::debug!(error = %e, "gossip");
                    }
                }
                None
            }
            () = crate::link::wait_stop(&mut stop) => break,
        };
        task.flush();
        task.sync_view();
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
    tracing::debug!("SWIM task stopped");
}

/// Joins the cluster through the seeds, and rejoins through them whenever
/// no other member is alive.
pub(crate) async fn join_loop(inner: Arc<NodeInner>) {
    let seeds: Vec<SocketAddr> = inner
        .settings
        .seeds
        .iter()
        .copied()
        .filter(|s| *s != inner.me.addr)
        .collect();
    if seeds.is_empty() {
        return;
    }
    let mut stop = inner.stop.subscribe();
    let min = Duration::from_millis(200);
    let max = inner.settings.swim.announce_period.max(min);
    let mut delay = min;
    loop {
        let alive = inner
            .view
            .read()
            .values()
            .any(|m| m.state != MemberState::Down);
        if alive {
            delay = max;
        } else {
            let linked: HashSet<SocketAddr> = inner
                .linked_peers()
                .iter()
                .filter_map(|id| inner.current_link(id))
                .map(|l| l.peer.addr)
                .collect();
            for seed in &seeds {
                let inner2 = inner.clone();
                let seed = *seed;
                if let Some(link) = linked
                    .contains(&seed)
                    .then(|| {
                        inner
                            .linked_peers()
                            .into_iter()
                            .filter_map(|id| inner.current_link(&id))
                            .find(|l| l.peer.addr == seed)
                    })
                    .flatten()
                {
                    let _ = inner.swim_tx.send(SwimCmd::Announce(link.peer));
                    continue;
                }
                inner.spawn(async move {
                    match inner2.dial(seed, None).await {
                        Ok(link) => {
                            let _ = inner2.swim_tx.send(SwimCmd::Announce(link.peer));
                        }
                        Err(e) => crate::link::log_dial_error("seed", seed, &e),
                    }
                });
            }
            delay = (delay * 2).min(max);
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = crate::link::wait_stop(&mut stop) => return,
        }
    }
}
