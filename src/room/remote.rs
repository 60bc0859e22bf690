//! The target end of cross-node pipes, the calls between shards, and
//! producers announced from other nodes.
//!
//! The *target* end (this node needs a producer that lives on another
//! node's router) keeps the link as [`PipeLink::Remote`] and each hop's
//! pipe producer, fed from the far end. The *source* end (another node
//! needs one of this node's producers) keeps [`OutLink`]s with one pipe
//! consumer per hop, and reports their changes. The handshake is
//! described in [`fabric`](super::fabric).

use std::net::IpAddr;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::FutureExt;
use mafalda_actors::{ActorRef, NodeId};
use mediasoup::prelude::*;
use parking_lot::Mutex;
use tracing::Instrument;

use super::fabric::{
    HopChange, PipeTuple, RoomCall, ShardCall, ShardCallMsg, ShardError, ShardReply,
};
use super::messages::{ActOnProducer, Event, ProducerAction, ProducerInfo};
use super::pipes::{
    pipe_options, HopSource, PairFuture, PipeHandles, PipeHop, PipeHopClosed, PipeLink,
    RemoteHopState,
};
use super::wire::AsJson;
use super::{RoomActor, RoomError};
use crate::ids::{RoomId, RouterLoc};
use crate::metrics::{Counters, Resource, Tracked};
use crate::registry::ROOMS_ACTOR;
use crate::worker::RouterLease;
use mafalda_actors::trace::{self, TraceId};

/// The same room's shard on another node.
#[derive(Debug, Clone)]
pub(super) struct Far {
    to: ActorRef<RoomCall>,
    room: RoomId,
    me: NodeId,
}

impl RoomActor {
    /// `fut` as one request across the fabric: under the current trace id
    /// (a fresh one when there is none), which every fabric call it makes
    /// carries, in a span naming it (so both nodes' logs show the id).
    pub(super) fn traced<F: std::future::Future>(
        &self,
        op: &'static str,
        fut: F,
    ) -> impl std::future::Future<Output = F::Output> {
        let id = TraceId::resolve(trace::current());
        let span = tracing::info_span!(parent: &self.span, "fabric", op, trace = %id);
        trace::scope(id, fut.instrument(span))
    }
}

impl Far {
    fn call(&self, call: ShardCall) -> RoomCall {
        RoomCall {
            room: self.room.clone(),
            from: self.me.clone(),
            call,
            trace: None,
        }
    }

    /// Asks; a fabric failure is a refusal.
    pub(super) async fn ask_raw(&self, call: ShardCall) -> Result<ShardReply, ShardError> {
        match self.to.ask(self.call(call)).await {
            Ok(r) => r,
            Err(e) => Err(ShardError::Refused(e.to_string())),
        }
    }

    /// Asks, mapping every failure to a room error.
    async fn ask(&self, call: ShardCall) -> Result<ShardReply, RoomError> {
        match self.to.ask(self.call(call)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(ShardError::UnknownProducer(id))) => Err(RoomError::UnknownProducer(id)),
            Ok(Err(e)) => Err(RoomError::Remote(e.to_string())),
            Err(e) => Err(RoomError::Remote(e.to_string())),
        }
    }

    /// Tells, at most once; a failure is only logged (the far end cleans
    /// up when the link or the node goes).
    pub(super) fn tell(&self, call: ShardCall) {
        if let Err(e) = self.to.tell(self.call(call)) {
            tracing::debug!(error = %e, "cannot reach the room's shard on another node");
        }
    }
}

/// A call made to the far end when the last clone is dropped: closing a
/// link or a hop there.
#[derive(Debug)]
pub(super) struct FarCall {
    far: Far,
    call: Option<ShardCall>,
}

impl Drop for FarCall {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.far.tell(call);
        }
    }
}

/// A pipe transport for a link with another node: on the node's fabric
/// address, RTX on, SRTP on unless that address is a loopback one.
pub(super) fn far_pipe_options(ip: IpAddr, buffer_bytes: u32, srtp: bool) -> PipeTransportOptions {
    let mut options = pipe_options(ip, buffer_bytes);
    options.enable_rtx = true;
    options.enable_srtp = srtp;
    options
}

pub(super) fn tuple_of(t: &PipeTransport) -> Result<PipeTuple, String> {
    let tuple = t.tuple();
    let ip = tuple
        .local_address()
        .parse()
        .map_err(|_| format!("pipe transport address {}", tuple.local_address()))?;
    Ok(PipeTuple {
        ip,
        port: tuple.local_port(),
    })
}

impl RoomActor {
    /// The room's shard on `node`.
    pub(super) fn far(&self, node: &NodeId) -> Result<Far, RoomError> {
        let fabric = self.env.fabric.get().ok_or(RoomError::NotClustered)?;
        let to = fabric
            .actor_ref::<RoomCall>(node, ROOMS_ACTOR)
            .map_err(|e| RoomError::Remote(e.to_string()))?;
        Ok(Far {
            to,
            room: self.id.clone(),
            me: self.env.node.clone(),
        })
    }

    /// The link from `from` (another node's router) to our router `to`,
    /// opened on first use (concurrent hops share one opening).
    pub(super) fn remote_link_for(
        &mut self,
        from: &RouterLoc,
        to: &RouterLoc,
        dst: &RouterLease,
    ) -> Result<PairFuture, RoomError> {
        let key = (from.clone(), to.clone());
        if let Some(f) = self.pipe_pairs.get(&key) {
            return Ok(f.clone());
        }
        let far = self.far(&from.node)?;
        let ip = self.env.pipe_ip().ok_or(RoomError::NotClustered)?;
        let options = far_pipe_options(
            ip,
            self.env.config.rtc.pipe_socket_buffer_bytes,
            !ip.is_loopback(),
        );
        let router = dst.router.clone();
        let (from, to) = key.clone();
        let fut = async move {
            let receiving = router
                .create_pipe_transport(options)
                .await
                .map_err(RoomError::mediasoup)?;
            let tuple = tuple_of(&receiving).map_err(RoomError::Mediasoup)?;
            let srtp = receiving.srtp_parameters().map(|p| AsJson::new(&p));
            let reply = far
                .ask(ShardCall::OpenLink {
                    from: from.clone(),
                    to: to.clone(),
                    tuple,
                    srtp,
                })
                .await?;
            // From here on the far end has its side: close it with ours.
            let guard = Arc::new(FarCall {
                far,
                call: Some(ShardCall::CloseLink {
                    from: from.clone(),
                    to: to.clone(),
                }),
            });
            let ShardReply::Link { tuple, srtp } = reply else {
                return Err(RoomError::Remote("unexpected answer to OpenLink".into()));
            };
            tuple
                .check()
                .map_err(|e| RoomError::Remote(e.to_string()))?;
            let srtp_parameters = srtp
                .map(|s| s.get())
                .transpose()
                .map_err(|e| RoomError::Remote(e.to_string()))?;
            receiving
                .connect(PipeTransportRemoteParameters {
                    ip: tuple.ip,
                    port: tuple.port,
                    srtp_parameters,
                })
                .await
                .map_err(RoomError::mediasoup)?;
            tracing::info!(from = %from, to = %to, "cross-node pipe link up");
            Ok(PipeLink::Remote {
                receiving,
                _guard: guard,
            })
        };
        let fut = self.traced("open_link", fut).boxed_local().shared();
        self.pipe_pairs.insert(key, fut.clone());
        Ok(fut)
    }

    /// A hop fed from another node's router `from`, over `link`, into our
    /// router `dst`.
    pub(super) fn remote_hop(
        &mut self,
        hop: PipeHop,
        from: RouterLoc,
        link: PairFuture,
        dst: RouterLease,
        far: Far,
        node: Arc<Counters>,
    ) -> impl std::future::Future<Output = Result<PipeHandles, RoomError>> + 'static {
        let state = Arc::new(Mutex::new(RemoteHopState::default()));
        self.remote_hops
            .insert((hop.producer_id, hop.target.clone()), Arc::clone(&state));
        async move {
            let PipeLink::Remote { receiving, .. } = link.await? else {
                return Err(RoomError::mediasoup("a remote hop on a local link"));
            };
            let (producer_id, to) = (hop.producer_id, hop.target.clone());
            let reply = far
                .ask(ShardCall::OpenHop {
                    from: from.clone(),
                    to: to.clone(),
                    producer_id,
                })
                .await?;
            let guard = Arc::new(FarCall {
                far,
                call: Some(ShardCall::CloseHop {
                    from,
                    to,
                    producer_id,
                }),
            });
            let ShardReply::Hop {
                kind,
                rtp_parameters,
                paused,
                seq,
            } = reply
            else {
                return Err(RoomError::Remote("unexpected answer to OpenHop".into()));
            };
            let rtp_parameters = rtp_parameters
                .get()
                .map_err(|e| RoomError::Remote(e.to_string()))?;
            {
                // A change reported before this answer arrived wins.
                let mut s = state.lock();
                if s.seq <= seq {
                    *s = RemoteHopState { seq, paused };
                }
            }
            let mut options =
                ProducerOptions::new_pipe_transport(producer_id, kind, rtp_parameters);
            options.paused = paused;
            let producer = super::pipes::produce_pipe(&receiving, options).await?;
            let guards = (
                Tracked::new(Resource::Producer, &[&node, &dst.worker_counters]),
                Tracked::new(Resource::PipeProducer, &[&node, &dst.worker_counters]),
            );
            producer.on_close(move || drop(guards)).detach();
            let handles = PipeHandles {
                producer,
                source: HopSource::Remote {
                    state,
                    _guard: guard,
                },
            };
            handles.sync_paused().await;
            tracing::debug!(producer = %producer_id, to = %dst.slot, "producer piped from another node");
            Ok(handles)
        }
    }

    /// A producer announced from another node: kept, and offered to the
    /// local peers. Returns whether it was new.
    pub(super) fn announce(
        &mut self,
        info: ProducerInfo,
        loc: RouterLoc,
        ctx: &mut Context<Self>,
    ) -> bool {
        let id = info.producer_id;
        if self.remote_producers.contains_key(&id) || self.find_producer(id).is_some() {
            return false;
        }
        self.remote_producers.insert(id, (info.clone(), loc));
        let audio = info.kind == mediasoup::prelude::MediaKind::Audio;
        self.broadcast(info.peer_id, Event::NewProducer(info), ctx);
        if audio {
            self.hear(id, ctx);
        }
        true
    }

    /// An announced producer went away: its pipes close, and the local
    /// peers are told.
    pub(super) fn forget(&mut self, producer_id: ProducerId, ctx: &mut Context<Self>) {
        let Some((info, _)) = self.remote_producers.remove(&producer_id) else {
            return;
        };
        self.unhear(producer_id);
        self.drop_pipes_of(producer_id);
        self.gc_routers();
        self.broadcast(info.peer_id, Event::ProducerClosed { producer_id }, ctx);
    }

    /// Target end: asks, from `start` on, which router to take a producer
    /// from (at most 8 redirections, never to a node that is not alive in
    /// this node's view); `None` when not clustered.
    pub(super) fn resolve_source(
        &self,
        producer_id: ProducerId,
        start: RouterLoc,
    ) -> impl std::future::Future<Output = Option<RouterLoc>> + 'static {
        let fabric = self.env.fabric.get().cloned();
        let (room, me) = (self.id.clone(), self.env.node.clone());
        async move {
            let fabric = fabric?;
            let mut at = start;
            for _ in 0..8 {
                let far = Far {
                    to: fabric.actor_ref::<RoomCall>(&at.node, ROOMS_ACTOR).ok()?,
                    room: room.clone(),
                    me: me.clone(),
                };
                match far
                    .ask_raw(ShardCall::PipeSource {
                        producer_id,
                        from: at.clone(),
                    })
                    .await
                {
                    // A relay that is not alive in this node's view is no
                    // source (the node asked may not have seen it go yet).
                    Ok(ShardReply::Source(next))
                        if next != at
                            && next.node != me
                            && crate::cluster::is_alive(&fabric, &next.node) =>
                    {
                        at = next
                    }
                    _ => break,
                }
            }
            Some(at)
        }
    }

    /// Target end: the source of one of our remote hops changed.
    fn remote_hop_changed(
        &mut self,
        to: RouterLoc,
        producer_id: ProducerId,
        change: HopChange,
        seq: u64,
        ctx: &mut Context<Self>,
    ) {
        let Some(state) = self.remote_hops.get(&(producer_id, to.clone())).cloned() else {
            return;
        };
        let Some(id) = self
            .pipes
            .get(&producer_id)
            .and_then(|t| t.hop(&to))
            .map(|h| h.id)
        else {
            return;
        };
        let hop = PipeHop {
            producer_id,
            target: to,
            id,
        };
        if change == HopChange::Closed {
            ctx.notify(PipeHopClosed(hop));
            return;
        }
        {
            let mut s = state.lock();
            if seq <= s.seq {
                return;
            }
            *s = RemoteHopState {
                seq,
                paused: change == HopChange::Paused,
            };
        }
        self.sync_hop_later(&hop, ctx);
    }

    /// Forgets the state of remote hops that are gone.
    pub(super) fn gc_remote_hops(&mut self) {
        let pipes = &self.pipes;
        self.remote_hops
            .retain(|(p, to), _| pipes.get(p).is_some_and(|t| t.hop(to).is_some()));
    }
}

impl Handler<ShardCallMsg> for RoomActor {
    type Result = ResponseActFuture<Self, Result<ShardReply, ShardError>>;

    fn handle(&mut self, msg: ShardCallMsg, ctx: &mut Self::Context) -> Self::Result {
        let done = |r: Result<(), ShardError>| -> Self::Result {
            Box::pin(fut::ready(r.map(|()| ShardReply::Done)))
        };
        if self.closing {
            return done(Err(ShardError::UnknownRoom(self.id.clone())));
        }
        // Work started here, and fabric calls made for it, keep the
        // caller's trace id.
        let _trace = trace::enter(msg.trace);
        let _e = self.span.clone().entered();
        tracing::debug!(from = %msg.from, call = ?msg.call, trace = ?msg.trace.map(|t| t.to_string()), "shard call");
        drop(_e);
        if let Some(answer) = self.map_call(&msg.from, &msg.call, ctx) {
            return Box::pin(fut::ready(answer));
        }
        match msg.call {
            ShardCall::OpenLink {
                from,
                to,
                tuple,
                srtp,
            } => self.open_out_link(msg.from, from, to, tuple, srtp),
            ShardCall::OpenHop { ref to, .. }
            | ShardCall::CloseHop { ref to, .. }
            | ShardCall::CloseLink { ref to, .. }
                if to.node != msg.from =>
            {
                done(Err(ShardError::WrongNode(format!(
                    "{to} named by {}",
                    msg.from
                ))))
            }
            ShardCall::OpenHop {
                from,
                to,
                producer_id,
            } => self.open_out_hop(from, to, producer_id, ctx),
            ShardCall::CloseHop {
                from,
                to,
                producer_id,
            } => {
                self.drop_out_hops(&(from, to), Some(producer_id));
                done(Ok(()))
            }
            ShardCall::CloseLink { from, to } => {
                let key = (from, to);
                self.drop_out_hops(&key, None);
                self.out_links.remove(&key);
                done(Ok(()))
            }
            ShardCall::HopChanged {
                from,
                to,
                producer_id,
                change,
                seq,
            } => {
                if from.node != msg.from {
                    return done(Err(ShardError::WrongNode(format!(
                        "{from} reported by {}",
                        msg.from
                    ))));
                }
                self.remote_hop_changed(to, producer_id, change, seq, ctx);
                done(Ok(()))
            }
            ShardCall::Describe => Box::pin(fut::ready(Ok(self.snapshot()))),
            ShardCall::SetProducerPaused {
                producer_id,
                paused,
            } => {
                let Some((peer_id, _)) = self.find_producer(producer_id) else {
                    return done(Err(ShardError::UnknownProducer(producer_id)));
                };
                let action = if paused {
                    ProducerAction::Pause
                } else {
                    ProducerAction::Resume
                };
                let act = ctx.address().send(ActOnProducer {
                    peer_id,
                    producer_id,
                    action,
                });
                let room = self.id.clone();
                Box::pin(
                    async move {
                        match act.await {
                            Ok(Ok(())) => Ok(ShardReply::Done),
                            Ok(Err(RoomError::UnknownProducer(id))) => {
                                Err(ShardError::UnknownProducer(id))
                            }
                            Ok(Err(e)) => Err(ShardError::Refused(e.to_string())),
                            Err(_) => Err(ShardError::UnknownRoom(room)),
                        }
                    }
                    .into_actor(self),
                )
            }
            ShardCall::PipeSource { producer_id, from } => {
                Box::pin(fut::ready(self.pipe_source(producer_id, from)))
            }
            // Calls about the room map were answered above.
            ShardCall::Attach
            | ShardCall::AttachWith { .. }
            | ShardCall::Detach
            | ShardCall::PeerJoined { .. }
            | ShardCall::PeerLeft { .. }
            | ShardCall::ProducerAnnounced { .. }
            | ShardCall::ProducerGone { .. }
            | ShardCall::ProducerPaused { .. }
            | ShardCall::Rehome { .. } => done(Ok(())),
        }
    }
}
