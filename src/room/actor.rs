//! The room actor itself: its state, its lifecycle (idle close, close,
//! worker loss), joins and leaves, and event delivery to peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use mediasoup::prelude::{ProducerId, RtpCodecCapability};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::Span;

use super::gate::RoomGate;
use super::messages::{
    CloseRoom, Event, Join, Joined, Leave, PeerCount, PeerInfo, ProducerInfo, RoomClosed,
    WorkerLost,
};
use super::outlinks::OutLink;
use super::peers::Peer;
use super::pipes::{PairFuture, PipeTreeOf, RemoteHopState};
use super::routers::RouterEntry;
use super::span::Role;
use super::{RoomEnv, RoomError};
use crate::ids::{PeerId, RoomId, RouterLoc};
use crate::metrics::{Resource, Tracked};
use mafalda_actors::NodeId;

/// One room on this node, spanning every worker its peers are placed on.
pub struct RoomActor {
    pub(super) id: RoomId,
    pub(super) env: Arc<RoomEnv>,
    pub(super) span: Span,
    /// The media codecs of the room's routers.
    pub(super) codecs: Arc<Vec<RtpCodecCapability>>,
    /// The embedding API's seats and what it registered (see `app`).
    pub(super) app: super::app::AppState,
    /// The active speaker observer (see `speaker`).
    pub(super) speaker: super::speaker::SpeakerState,
    /// One router per worker the room uses.
    pub(super) routers: HashMap<RouterLoc, RouterEntry>,
    /// Pipe trees, by producer.
    pub(super) pipes: HashMap<ProducerId, PipeTreeOf>,
    /// Pipe transport pairs, by (sending router, receiving router).
    pub(super) pipe_pairs: HashMap<(RouterLoc, RouterLoc), PairFuture>,
    /// In-flight operations (joins, capability queries) holding a router
    /// although no peer is on it yet.
    pub(super) router_users: HashMap<RouterLoc, usize>,
    next_id: u64,
    pub(super) peers: HashMap<PeerId, Peer>,
    /// Producers living on other nodes, as announced, with where they live.
    pub(super) remote_producers: HashMap<ProducerId, (ProducerInfo, RouterLoc)>,
    /// Links feeding other nodes' routers from ours, by (our router, theirs).
    pub(super) out_links: HashMap<(RouterLoc, RouterLoc), OutLink>,
    /// This node's part in the room: alone, home or shard.
    pub(super) role: Role,
    /// Peers on other nodes, with their node.
    pub(super) remote_peers: HashMap<PeerId, (PeerInfo, NodeId)>,
    /// The attach in flight, if any: its number and the node asked. The
    /// room stays open meanwhile.
    pub(super) attaching: Option<(u64, NodeId)>,
    /// Times in a row the room put off finding its home (see `span`).
    pub(super) refinds: u32,
    /// The last reported state of each hop fed from another node.
    pub(super) remote_hops: HashMap<(ProducerId, RouterLoc), Arc<Mutex<RemoteHopState>>>,
    pub(super) pending_joins: usize,
    pub(super) closing: bool,
    gate: RoomGate,
    /// Idle checks in a row that found the room empty.
    idle_ticks: u32,
    registry: Recipient<RoomClosed>,
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
    /// placed on. `gate` is shared with the registry that hands the room
    /// out; `registry` is told when the room has stopped.
    pub fn new(
        id: RoomId,
        env: Arc<RoomEnv>,
        gate: RoomGate,
        registry: Recipient<RoomClosed>,
    ) -> Self {
        let span = tracing::info_span!("room", node = %env.node, room = %id);
        let tracked = Tracked::new(Resource::Room, &[&env.counters]);
        let codecs = Arc::new(env.config.rtc.room_codecs());
        let role = if env.fabric.get().is_some() {
            Role::Finding(Vec::new())
        } else {
            Role::Alone
        };
        Self {
            id,
            env,
            span,
            codecs,
            app: Default::default(),
            speaker: Default::default(),
            routers: HashMap::new(),
            pipes: HashMap::new(),
            pipe_pairs: HashMap::new(),
            router_users: HashMap::new(),
            next_id: 0,
            peers: HashMap::new(),
            remote_producers: HashMap::new(),
            role,
            remote_peers: HashMap::new(),
            attaching: None,
            refinds: 0,
            out_links: HashMap::new(),
            remote_hops: HashMap::new(),
            pending_joins: 0,
            closing: false,
            gate,
            idle_ticks: 0,
            registry,
            _tracked: tracked,
        }
    }

    /// A room whose routers offer `codecs` instead of the node's list.
    pub fn with_codecs(mut self, codecs: Arc<Vec<RtpCodecCapability>>) -> Self {
        self.codecs = codecs;
        self
    }

    /// The room's home from the start: made by a shard attaching (the
    /// home rule chose this node).
    pub fn as_home(mut self) -> Self {
        if !matches!(self.role, Role::Alone) {
            self.role = Role::Finding(Vec::new());
            self.become_home();
        }
        self
    }

    pub(super) fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Closes the room if it is empty and no join is pending or about to
    /// arrive.
    pub(super) fn maybe_close(&mut self, ctx: &mut Context<Self>) {
        if self.closing
            || !self.peers.is_empty()
            || !self.app.is_empty()
            || self.pending_joins > 0
            || self.held_open()
        {
            return;
        }
        if self.gate.try_close() {
            let _e = self.span.clone().entered();
            tracing::info!("room empty: closing");
            self.closing = true;
            ctx.stop();
        }
    }

    /// Drops everything the room holds.
    fn clear(&mut self) {
        self.closing = true;
        self.gate.force_close();
        self.pipes.clear();
        self.pipe_pairs.clear();
        self.out_links.clear();
        self.remote_hops.clear();
        self.remote_producers.clear();
        self.peers.clear();
        self.app = Default::default();
        self.speaker = Default::default();
        self.routers.clear();
    }

    /// Sends an event to one peer; a peer whose queue is full is too slow
    /// and is removed.
    pub(super) fn send_to(&mut self, peer_id: PeerId, event: Event, ctx: &mut Context<Self>) {
        let full = match self.peers.get(&peer_id) {
            Some(peer) => matches!(
                peer.events.try_send(event),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            None => false,
        };
        if full {
            let _e = self.span.clone().entered();
            tracing::warn!(peer = %peer_id, "event queue full: disconnecting slow peer");
            drop(_e);
            self.remove_peer(peer_id, ctx);
        }
    }

    /// Sends an event to every peer but `from`.
    pub(super) fn broadcast(&mut self, from: PeerId, event: Event, ctx: &mut Context<Self>) {
        let others: Vec<PeerId> = self.peers.keys().copied().filter(|p| *p != from).collect();
        for p in others {
            self.send_to(p, event.clone(), ctx);
        }
    }

    /// Removes a peer with everything it owns, and tells the others.
    pub(super) fn remove_peer(&mut self, peer_id: PeerId, ctx: &mut Context<Self>) {
        let Some(peer) = self.peers.remove(&peer_id) else {
            return;
        };
        let _e = self.span.clone().entered();
        tracing::info!(peer = %peer_id, router = %peer.loc, "peer left");
        drop(_e);
        let producers = self.release_peer_media(&peer);
        let data_producers: Vec<_> = peer.data_producers.keys().copied().collect();
        // Dropping the peer closes its transports, and with them its
        // producers and consumers.
        drop(peer);
        self.data_producers_gone(peer_id, data_producers, ctx);
        self.publish_peer_left(peer_id, &producers);
        for producer_id in producers {
            self.unhear(producer_id);
            self.drop_pipes_of(producer_id);
            self.broadcast(peer_id, Event::ProducerClosed { producer_id }, ctx);
        }
        self.broadcast(peer_id, Event::PeerLeft { peer_id }, ctx);
        self.gc_routers();
        self.maybe_close(ctx);
    }

    /// The idle check: a room found empty twice in a row (no peer, no
    /// pending join, nobody holding its gate) closes.
    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        if self.peers.is_empty()
            && self.app.is_empty()
            && self.pending_joins == 0
            && !self.held_open()
        {
            self.idle_ticks += 1;
            if self.idle_ticks >= 2 {
                self.maybe_close(ctx);
            }
        } else {
            self.idle_ticks = 0;
        }
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("room started");
        // Checked twice per period, so an empty room closes within one to
        // one and a half periods.
        let period = Duration::from_millis(self.env.config.rooms.idle_close_ms.max(2) / 2);
        ctx.run_interval(period, |act, ctx| act.idle_check(ctx));
        self.find_role(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        self.leave_span();
        self.clear();
        tracing::info!("room closed");
        self.registry.do_send(RoomClosed {
            room: self.id.clone(),
            addr: ctx.address(),
        });
    }
}

impl Handler<CloseRoom> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: CloseRoom, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::warn!(reason = %msg.0, "closing room");
        // Detach now, while the fabric is surely still up.
        self.leave_span();
        self.role = Role::Alone;
        self.clear();
        ctx.stop();
    }
}

impl Handler<WorkerLost> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: WorkerLost, ctx: &mut Self::Context) {
        let lost = self.local_loc(msg.slot);
        // The slot may hold a router on a replacement worker by now.
        let ours = self
            .routers
            .get(&lost)
            .is_some_and(|e| e.worker_id == msg.worker_id);
        if !ours {
            return;
        }
        let victims: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.loc == lost)
            .map(|(id, _)| *id)
            .collect();
        let _e = self.span.clone().entered();
        tracing::warn!(router = %lost, reason = %msg.reason, peers = victims.len(), "worker lost: dropping its router and peers");
        drop(_e);
        self.routers.remove(&lost);
        // Hops into or out of the lost router go, with the hops below them:
        // their consumers close, and their peers are offered the producer
        // again (see `ConsumerGone`).
        for tree in self.pipes.values_mut() {
            tree.cut(&lost);
        }
        self.pipes.retain(|_, t| !t.is_empty());
        for p in &victims {
            let reason = msg.reason.clone();
            self.send_to(*p, Event::Reconnect { reason, url: None }, ctx);
        }
        for p in victims {
            self.remove_peer(p, ctx);
        }
        self.speaker_worker_lost(msg.slot, ctx);
        self.gc_routers();
        self.maybe_close(ctx);
    }
}

impl Handler<Join> for RoomActor {
    type Result = ResponseActFuture<Self, Result<Joined, RoomError>>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        // The join is pending from here on; the gate hold it carried can go.
        let Join {
            display_name,
            events,
            hold,
        } = msg;
        drop(hold);
        if self.closing {
            return Box::pin(fut::ready(Err(RoomError::RoomClosed)));
        }
        let here = self.peers.len() + self.remote_peers.len() + self.pending_joins;
        let max = self.env.config.limits.peers_per_room;
        if let Err(e) = RoomError::check_limit("peers_per_room", here, max) {
            return Box::pin(fut::ready(Err(e)));
        }
        let Some(seat) = self.env.workers.pick(&self.env.config.placement) else {
            return Box::pin(fut::ready(Err(RoomError::NoWorker)));
        };
        let loc = self.local_loc(seat.slot);
        let (router_id, router) = match self.router_for(&loc, ctx) {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        // Counted on the worker at once, so that concurrent joins see it.
        let tracked = Tracked::new(Resource::Peer, &[&self.env.counters, &seat.counters]);
        self.pending_joins += 1;
        *self.router_users.entry(loc.clone()).or_default() += 1;
        Box::pin(router.into_actor(self).map(move |lease, act, ctx| {
            act.pending_joins -= 1;
            act.release_router_user(&loc);
            let lease = match lease {
                Ok(lease) if !act.closing && act.current_router(&loc, router_id) => Ok(lease),
                Ok(_) => Err(RoomError::RoomClosed),
                Err(e) => Err(e),
            };
            let lease = match lease {
                Ok(l) => l,
                Err(e) => {
                    act.gc_routers();
                    act.maybe_close(ctx);
                    return Err(e);
                }
            };
            let peer_id = PeerId::new();
            let info = PeerInfo {
                peer_id,
                display_name,
            };
            let peers = act
                .peers
                .values()
                .map(|p| p.info.clone())
                .chain(act.remote_peer_infos())
                .collect();
            let producers = act.producer_infos();
            let data_producers = act.data_producer_infos();
            act.peers.insert(
                peer_id,
                Peer::new(info.clone(), loc.clone(), events, tracked),
            );
            let _e = act.span.clone().entered();
            tracing::info!(peer = %peer_id, name = %info.display_name, router = %loc, "peer joined");
            drop(_e);
            act.publish_peer_joined(&info);
            act.broadcast(peer_id, Event::PeerJoined(info), ctx);
            act.tell_current_speaker(peer_id, ctx);
            Ok(Joined {
                peer_id,
                room_id: act.id.clone(),
                rtp_capabilities: lease.router.rtp_capabilities(),
                peers,
                producers,
                data_producers,
            })
        }))
    }
}

impl Handler<Leave> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        self.remove_peer(msg.peer_id, ctx);
    }
}

impl Handler<PeerCount> for RoomActor {
    type Result = usize;
    fn handle(&mut self, _msg: PeerCount, _ctx: &mut Self::Context) -> usize {
        self.peers.len()
    }
}
