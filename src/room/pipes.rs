//! Pipe links and hops between the room's routers.
//!
//! A *link* is a connected pair of pipe transports from one router to
//! another, shared by every producer piped between them. A *hop* is one
//! producer carried over a link: a pipe consumer on the sending router and
//! a pipe producer with the same id on the receiving one. Which hops exist
//! is decided by each producer's [`PipeTree`](super::pipe_tree::PipeTree).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::{ListenInfo, Protocol};
use mediasoup::types::rtp_parameters::RtpCapabilities;
use tracing::Instrument;

use super::pipe_tree::{Hop, PipeTree};
use super::remote::FarCall;
use super::{RoomActor, RoomError};
use crate::ids::RouterLoc;
use crate::metrics::{Resource, Tracked};
use crate::worker::RouterLease;
use mafalda_actors::trace::{self, TraceId};

pub(super) type PipeFuture = Shared<LocalBoxFuture<'static, Result<PipeHandles, RoomError>>>;
pub(super) type PairFuture = Shared<LocalBoxFuture<'static, Result<PipeLink, RoomError>>>;
/// A producer's pipe tree, each hop carrying the future of its handles.
pub(super) type PipeTreeOf = PipeTree<PipeFuture>;

/// A link between two of the room's routers.
#[derive(Debug, Clone)]
pub(super) enum PipeLink {
    /// Both routers on this node: two pipe transports connected over
    /// 127.0.0.1, created by the room itself (rather than by
    /// `pipe_producer_to_router`) so that their sockets get
    /// `rtc.pipe_socket_buffer_bytes`. It closes once no hop uses it and no
    /// pipe consumer or producer holds it.
    Local {
        /// On the sending router.
        sending: PipeTransport,
        /// On the receiving router.
        receiving: PipeTransport,
    },
    /// From a router on another node: the receiving end, here; the sending
    /// end lives with the same room's shard there (see
    /// [`fabric`](super::fabric)). The guard closes the far end when the
    /// last clone goes.
    Remote {
        /// On the receiving router.
        receiving: PipeTransport,
        /// Tells the far end to close the link.
        _guard: Arc<FarCall>,
    },
}

/// Both ends of one hop. Dropping the last clone of both closes it (the
/// pipe producer closes its consumers; mediasoup closes the pipe transports
/// once unused).
#[derive(Debug, Clone)]
pub(super) struct PipeHandles {
    /// On the receiving router, same id as the original producer.
    pub producer: Producer,
    /// Where the hop's media comes from.
    pub source: HopSource,
}

/// The sending end of a hop.
#[derive(Debug, Clone)]
pub(super) enum HopSource {
    /// A pipe consumer on a router of this node.
    Local(Consumer),
    /// A pipe consumer with the room's shard on another node: its state as
    /// last reported, and the guard that closes it there.
    Remote {
        state: Arc<parking_lot::Mutex<RemoteHopState>>,
        _guard: Arc<FarCall>,
    },
}

/// A remote hop's source state, as last reported (highest `seq` wins).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RemoteHopState {
    pub seq: u64,
    pub paused: bool,
}

impl PipeHandles {
    /// Makes the pipe producer's paused state follow its source's, whatever
    /// order events came in. `Producer::paused()` only changes once the
    /// worker has answered, so a sync running while another's request is
    /// in flight may see a stale state and do nothing: each sync checks
    /// again after its own request, until the two agree.
    pub(super) async fn sync_paused(&self) {
        loop {
            let want = match &self.source {
                HopSource::Local(consumer) => consumer.producer_paused(),
                HopSource::Remote { state, .. } => state.lock().paused,
            };
            if self.producer.paused() == want {
                return;
            }
            let r = if want {
                self.producer.pause().await
            } else {
                self.producer.resume().await
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "pipe producer pause/resume failed");
                return;
            }
        }
    }
}

/// Which hop of which producer's pipe tree (ids tell incarnations apart).
#[derive(Debug, Clone)]
pub(super) struct PipeHop {
    pub producer_id: ProducerId,
    pub target: RouterLoc,
    pub id: u64,
}

impl RoomActor {
    /// The hop of `producer_id` (living on `origin`) into `target`, started
    /// if needed; the caller must hand the returned hop id back to
    /// [`Self::finish_pipe`]. A new hop is fed from the shallowest router of
    /// the producer's tree that forwards to fewer than `pipe_fanout` others.
    pub(super) fn pipe_for(
        &mut self,
        producer_id: ProducerId,
        origin: &RouterLoc,
        target: &RouterLoc,
        via: Option<RouterLoc>,
        ctx: &mut Context<Self>,
    ) -> Result<(u64, PipeFuture), RoomError> {
        let fanout = self.env.config.placement.pipe_fanout.max(1) as usize;
        let (parent, parent_depth, parent_fut) = match self.pipes.get_mut(&producer_id) {
            Some(tree) => {
                if let Some(e) = tree.hop_mut(target) {
                    e.in_flight += 1;
                    return Ok((e.id, e.handle.clone()));
                }
                let (parent, depth) = tree.parent_for_new_hop(fanout, target);
                let fut = tree.hop(&parent).map(|e| e.handle.clone());
                (parent, depth, fut)
            }
            None => (origin.clone(), 0, None),
        };
        // Another node's router the source's node pointed us to (its own
        // fan-out being full).
        let (parent, parent_depth, parent_fut) = match via {
            Some(via) if via.node != self.env.node && parent.node != self.env.node => {
                (via, parent_depth + 1, None)
            }
            _ => (parent, parent_depth, parent_fut),
        };
        let dst = self.lease(target)?;
        let id = self.fresh_id();
        let hop = PipeHop {
            producer_id,
            target: target.clone(),
            id,
        };
        let counters = Arc::clone(&self.env.counters);
        let fut = if parent.node == self.env.node {
            let src = self.lease(&parent)?;
            let link = self.link_for(&parent, &src, target, &dst);
            make_hop(hop, parent_fut, link, (src, dst), counters, ctx.address())
                .instrument(self.span.clone())
                .boxed_local()
        } else {
            // One trace id for the link (if it is opened now) and the hop.
            let _trace = trace::enter(TraceId::resolve(trace::current()));
            let link = self.remote_link_for(&parent, target, &dst)?;
            let far = self.far(&parent.node)?;
            let hop = self.remote_hop(hop, parent.clone(), link, dst, far, counters);
            self.traced("open_hop", hop).boxed_local()
        }
        .shared();
        self.pipes
            .entry(producer_id)
            .or_insert_with(|| PipeTree::new(origin.clone()))
            .insert(
                target.clone(),
                Hop::new(id, parent, parent_depth + 1, fut.clone()),
            );
        Ok((id, fut))
    }

    /// The link from `from` to `to`, created on first use (concurrent hops
    /// share one creation).
    fn link_for(
        &mut self,
        from: &RouterLoc,
        src: &RouterLease,
        to: &RouterLoc,
        dst: &RouterLease,
    ) -> PairFuture {
        let key = (from.clone(), to.clone());
        if let Some(f) = self.pipe_pairs.get(&key) {
            return f.clone();
        }
        let fut = local_link(
            src.router.clone(),
            dst.router.clone(),
            self.env.config.rtc.pipe_socket_buffer_bytes,
        )
        .instrument(self.span.clone())
        .boxed_local()
        .shared();
        self.pipe_pairs.insert(key, fut.clone());
        fut
    }

    /// Ends one consume request's use of a hop; registers its consumer when
    /// it got one. Returns whether the hop is still the room's (it may have
    /// been dropped meanwhile because its producer closed or a worker died).
    pub(super) fn finish_pipe(
        &mut self,
        producer_id: ProducerId,
        target: &RouterLoc,
        id: u64,
        consumer: Option<ConsumerId>,
    ) -> bool {
        let Some(tree) = self.pipes.get_mut(&producer_id) else {
            return false;
        };
        let Some(e) = tree.hop_mut(target).filter(|e| e.id == id) else {
            return false;
        };
        e.in_flight -= 1;
        if let Some(c) = consumer {
            e.consumers.insert(c);
        }
        if tree.prune_from(target) {
            if tree.is_empty() {
                self.pipes.remove(&producer_id);
            }
            self.gc_routers();
        }
        true
    }

    /// A consumer at `loc` of `producer_id` is gone; closes the hop it used
    /// when it was the last user.
    pub(super) fn release_consumer(
        &mut self,
        producer_id: ProducerId,
        loc: &RouterLoc,
        id: ConsumerId,
    ) {
        let Some(tree) = self.pipes.get_mut(&producer_id) else {
            return;
        };
        if let Some(e) = tree.hop_mut(loc) {
            e.consumers.remove(&id);
            tree.prune_from(loc);
            if tree.is_empty() {
                self.pipes.remove(&producer_id);
            }
        }
    }

    /// Closes every pipe of a producer that went away.
    pub(super) fn drop_pipes_of(&mut self, producer_id: ProducerId) {
        self.pipes.remove(&producer_id);
    }

    /// The hop's future, if the hop is still the room's.
    pub(super) fn hop_future(&self, hop: &PipeHop) -> Option<PipeFuture> {
        let e = self
            .pipes
            .get(&hop.producer_id)?
            .hop(&hop.target)
            .filter(|e| e.id == hop.id)?;
        Some(e.handle.clone())
    }
}

/// Options of every pipe transport of a room, local or to another node:
/// UDP on `ip`, `buffer_bytes` socket buffers, media only (no SCTP).
pub(super) fn pipe_options(ip: IpAddr, buffer_bytes: u32) -> PipeTransportOptions {
    let mut options = PipeTransportOptions::new(ListenInfo {
        protocol: Protocol::Udp,
        ip,
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: Some(buffer_bytes),
        recv_buffer_size: Some(buffer_bytes),
    });
    options.enable_sctp = false;
    options
}

/// The local link from `from` to `to`: two pipe transports with large
/// socket buffers, connected to each other over 127.0.0.1.
async fn local_link(from: Router, to: Router, buffer_bytes: u32) -> Result<PipeLink, RoomError> {
    let options = pipe_options(IpAddr::V4(Ipv4Addr::LOCALHOST), buffer_bytes);
    let (sending, receiving) = connected_pair(from, to, options).await?;
    Ok(PipeLink::Local { sending, receiving })
}

/// Two pipe transports made with `options` on `from` and `to`, connected
/// to each other over 127.0.0.1.
pub(super) async fn connected_pair(
    from: Router,
    to: Router,
    options: PipeTransportOptions,
) -> Result<(PipeTransport, PipeTransport), RoomError> {
    let (sending, receiving) = futures::try_join!(
        from.create_pipe_transport(options.clone()),
        to.create_pipe_transport(options),
    )
    .map_err(RoomError::mediasoup)?;
    for (a, b) in [(&sending, &receiving), (&receiving, &sending)] {
        a.connect(PipeTransportRemoteParameters {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: b.tuple().local_port(),
            srtp_parameters: None,
        })
        .await
        .map_err(RoomError::mediasoup)?;
    }
    Ok((sending, receiving))
}

/// Pipes one producer over `link`, once the hop it is fed from (if any) is
/// up. What `Router::pipe_producer_to_router` does, on our own link.
async fn make_hop(
    hop: PipeHop,
    parent: Option<PipeFuture>,
    link: PairFuture,
    (src, dst): (RouterLease, RouterLease),
    node: Arc<crate::metrics::Counters>,
    me: Addr<RoomActor>,
) -> Result<PipeHandles, RoomError> {
    if let Some(parent) = parent {
        parent.await?;
    }
    let PipeLink::Local { sending, receiving } = link.await? else {
        return Err(RoomError::mediasoup("a local hop on a remote link"));
    };
    let producer_id = hop.producer_id;
    let consumer = sending
        .consume(ConsumerOptions::new(
            producer_id,
            RtpCapabilities::default(),
        ))
        .await
        .map_err(|e| match e {
            ConsumeError::ProducerNotFound(id) => RoomError::UnknownProducer(id),
            other => RoomError::mediasoup(other),
        })?;
    // Pause and resume of the source travel down the hop through the room;
    // watched from here on, and the state is synced once the pipe producer
    // exists, so that a change while it is being made is not lost.
    for paused in [true, false] {
        let (me, hop) = (me.clone(), hop.clone());
        let handler = move || me.do_send(PipePaused { hop: hop.clone() });
        if paused {
            consumer.on_pause(handler).detach();
        } else {
            consumer.on_resume(handler).detach();
        }
    }
    let mut options = ProducerOptions::new_pipe_transport(
        producer_id,
        consumer.kind(),
        consumer.rtp_parameters().clone(),
    );
    options.paused = consumer.producer_paused();
    let producer = produce_pipe(&receiving, options).await?;
    let (sc, dc) = (&src.worker_counters, &dst.worker_counters);
    let guards = (
        Tracked::new(Resource::Consumer, &[&node, sc]),
        Tracked::new(Resource::PipeConsumer, &[&node, sc]),
    );
    let closed = hop.clone();
    consumer
        .on_close(move || {
            drop(guards);
            me.do_send(PipeHopClosed(closed.clone()));
        })
        .detach();
    let guards = (
        Tracked::new(Resource::Producer, &[&node, dc]),
        Tracked::new(Resource::PipeProducer, &[&node, dc]),
    );
    producer.on_close(move || drop(guards)).detach();
    let handles = PipeHandles {
        producer,
        source: HopSource::Local(consumer),
    };
    handles.sync_paused().await;
    tracing::debug!(producer = %producer_id, from = %src.slot, to = %dst.slot, "producer piped");
    Ok(handles)
}

/// Makes a hop's pipe producer. A hop into the same router dropped just
/// before (its last consumer went, then a consume came again) closes its
/// pipe producer of the same id asynchronously: mediasoup sends that close
/// from a task of its own, so the new one may reach the worker first and
/// be refused as a duplicate id. It is then tried again, briefly.
pub(super) async fn produce_pipe(
    receiving: &PipeTransport,
    options: ProducerOptions,
) -> Result<Producer, RoomError> {
    const ATTEMPTS: u32 = 50;
    for attempt in 1..=ATTEMPTS {
        match receiving.produce(options.clone()).await {
            Err(ProduceError::Request(mediasoup::worker::RequestError::Response { reason }))
                if reason.contains("already exists") && attempt < ATTEMPTS =>
            {
                tracing::debug!(attempt, "pipe producer id still closing: trying again");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => return other.map_err(RoomError::mediasoup),
        }
    }
    Err(RoomError::mediasoup("pipe producer id never freed"))
}

/// Internal: the source of a hop was paused or resumed; so is the hop's
/// pipe producer (and with it every consumer and hop below), once the hop
/// is up.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PipePaused {
    hop: PipeHop,
}

impl Handler<PipePaused> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: PipePaused, ctx: &mut Self::Context) {
        self.sync_hop_later(&msg.hop, ctx);
    }
}

impl RoomActor {
    /// Once the hop is up, makes its pipe producer follow its source's
    /// current paused state.
    pub(super) fn sync_hop_later(&mut self, hop: &PipeHop, ctx: &mut Context<Self>) {
        let Some(hop) = self.hop_future(hop) else {
            return;
        };
        let fut = async move {
            if let Ok(handles) = hop.await {
                handles.sync_paused().await;
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
pub(super) struct PipeHopClosed(pub PipeHop);

impl Handler<PipeHopClosed> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: PipeHopClosed, _ctx: &mut Self::Context) {
        let hop = msg.0;
        let Some(tree) = self.pipes.get_mut(&hop.producer_id) else {
            return;
        };
        if tree.hop(&hop.target).is_none_or(|e| e.id != hop.id) {
            // Dropped by the room already.
            return;
        }
        let _e = self.span.clone().entered();
        tracing::warn!(producer = %hop.producer_id, to = %hop.target, "pipe closed underneath: dropping the hop and those below");
        tree.cut(&hop.target);
        if tree.is_empty() {
            self.pipes.remove(&hop.producer_id);
        }
        drop(_e);
        self.gc_routers();
    }
}
