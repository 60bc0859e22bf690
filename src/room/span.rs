//! The room across nodes: whether this node's room actor is the room's
//! *home* (it keeps the room-wide map of peers and producers and relays
//! every change to the room's shards) or a *shard* of a home on another
//! node (it reports its local changes to the home and hears the others'),
//! and how the map changes.
//!
//! A room actor of a clustered node finds its role when it starts, by the
//! home rule ([`crate::home`]): it asks the other candidates in rendezvous
//! order whether they are the room's home (a room still finding its role,
//! or a shard, answers no); the first that is, is the home, and this actor
//! attaches to it as a shard ([`ShardCall::Attach`], answered with a
//! snapshot of the map). If none is and this node is the top candidate, it
//! is the home; otherwise it attaches to the top candidate, whose registry
//! creates the room there as its home (or whose room, still finding its
//! role, becomes the home). Two rooms starting at once on two nodes thus
//! agree: both see no home, and both pick the same top candidate. Local
//! changes made before the role is known are queued and sent once it is.

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use mafalda_actors::NodeId;
use mediasoup::prelude::ProducerId;
use tracing::Instrument;

use super::fabric::{ShardCall, ShardError, ShardReply};
use super::messages::{Event, PeerInfo, ProducerInfo};
use super::peers::producer_info;
use super::RoomActor;
use crate::cluster::{find_home, Home};
use crate::ids::{PeerId, RouterLoc};

/// How long each home candidate has to answer while a room finds its home.
const HOME_ASK: Duration = Duration::from_secs(1);

/// This node's part in a room that may span nodes.
#[derive(Debug)]
pub(super) enum Role {
    /// Not clustered: the whole room is on this node.
    Alone,
    /// Finding the home; the calls to send once it is known.
    Finding(Vec<ShardCall>),
    /// The room's home, with its shards on other nodes.
    Home { shards: HashSet<NodeId> },
    /// A shard of the room whose home is on another node.
    Shard { home: NodeId },
}

/// Whether this room is its home (asked for `sfu.HostsRoom/v1`).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct IsHome;

impl Handler<IsHome> for RoomActor {
    type Result = bool;
    fn handle(&mut self, _msg: IsHome, _ctx: &mut Self::Context) -> bool {
        matches!(self.role, Role::Home { .. }) && !self.closing
    }
}

/// A node (re)joined the cluster: a home of the room asks whether that node
/// is a home of the room too (the two sides of a healed partition), and if
/// so the one that loses by the split-brain rule ([`crate::home::survivor`])
/// moves under the other, with its shards.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NodeUp(pub NodeId);

impl Handler<NodeUp> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: NodeUp, ctx: &mut Self::Context) {
        let other = msg.0;
        if other == self.env.node || !matches!(self.role, Role::Home { .. }) {
            return;
        }
        let Some(fabric) = self.env.fabric.get().cloned() else {
            return;
        };
        let room = self.id.clone();
        let ask = async move {
            let asked = fabric
                .actor_ref::<crate::registry::HostsRoom>(&other, crate::registry::ROOMS_ACTOR)
                .ok()?
                .ask(crate::registry::HostsRoom { room: room.clone() })
                .await
                .ok()?;
            let view = crate::cluster::home_view(&fabric);
            let me = fabric.id().clone();
            (asked && crate::home::survivor(&room, &me, &other, &view) == &other).then_some(other)
        }
        .instrument(self.span.clone());
        ctx.spawn(ask.into_actor(self).map(|winner, act, ctx| {
            if let Some(winner) = winner {
                act.merge_into(winner, ctx);
            }
        }));
    }
}

/// A node of the cluster went down (SWIM): the room drops its peers,
/// producers, shard and pipes there. A shard whose home was there hosts
/// the room itself from then on (re-homing the other shards comes with
/// node-loss handling).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NodeLost(pub NodeId);

impl Handler<NodeLost> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: NodeLost, ctx: &mut Self::Context) {
        let lost = msg.0;
        if lost == self.env.node || self.closing {
            return;
        }
        let _e = self.span.clone().entered();
        tracing::warn!(node = %lost, "a node of the room is down: dropping what lived there");
        drop(_e);
        match &mut self.role {
            Role::Home { shards } => {
                shards.remove(&lost);
            }
            Role::Shard { home } if *home == lost => {
                self.role = Role::Finding(Vec::new());
                self.become_home();
            }
            _ => {}
        }
        let shards = self.relay_targets();
        let peers: Vec<PeerId> = self
            .remote_peers
            .iter()
            .filter(|(_, (_, n))| *n == lost)
            .map(|(id, _)| *id)
            .collect();
        let producers: Vec<ProducerId> = self
            .remote_producers
            .iter()
            .filter(|(_, (_, loc))| loc.node == lost)
            .map(|(id, _)| *id)
            .collect();
        for producer_id in producers {
            self.forget(producer_id, ctx);
            self.relay(
                ShardCall::ProducerGone { producer_id },
                &shards,
                Some(&lost),
            );
        }
        for peer_id in peers {
            self.remote_peers.remove(&peer_id);
            self.broadcast(peer_id, Event::PeerLeft { peer_id }, ctx);
            self.relay(ShardCall::PeerLeft { peer_id }, &shards, Some(&lost));
        }
        // Hops fed from there (relays of producers living elsewhere) go,
        // with those below them; links to there close.
        for tree in self.pipes.values_mut() {
            let from_lost: Vec<RouterLoc> = tree
                .links()
                .filter(|(from, _)| from.node == lost)
                .map(|(from, _)| from.clone())
                .collect();
            for loc in from_lost {
                tree.cut(&loc);
            }
        }
        self.pipes.retain(|_, t| !t.is_empty());
        let to_lost: Vec<(RouterLoc, RouterLoc)> = self
            .out_links
            .keys()
            .filter(|(_, to)| to.node == lost)
            .cloned()
            .collect();
        for key in to_lost {
            // Releases the hops here that fed only the lost node.
            self.drop_out_hops(&key, None);
            self.out_links.remove(&key);
        }
        self.gc_routers();
        self.maybe_close(ctx);
    }
}

impl RoomActor {
    /// Starts finding the room's home (clustered nodes only).
    pub(super) fn find_role(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.role, Role::Finding(_)) {
            return;
        }
        let Some(fabric) = self.env.fabric.get().cloned() else {
            self.role = Role::Alone;
            return;
        };
        let room = self.id.clone();
        let fut = async move { find_home(&fabric, &room, HOME_ASK, true).await }
            .instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self).map(|found, act, ctx| {
            if !matches!(act.role, Role::Finding(_)) {
                // Made home meanwhile by a shard attaching.
                return;
            }
            let me = act.env.node.clone();
            match found {
                Ok(Home::Hosted(home)) => act.attach(home, ctx),
                Ok(Home::Create { top, .. }) if top != me => act.attach(top, ctx),
                Ok(Home::Create { .. }) => act.become_home(),
                Err(e) => {
                    let _e = act.span.clone().entered();
                    tracing::warn!(error = %e, "cannot find the room's home: hosting it here");
                    drop(_e);
                    act.become_home();
                }
            }
        }));
    }

    /// Two homes met and this one lost: it becomes a shard of `winner`,
    /// reporting its local peers and producers there, and sends its own
    /// shards there too.
    fn merge_into(&mut self, winner: NodeId, ctx: &mut Context<Self>) {
        let Role::Home { shards } = std::mem::replace(&mut self.role, Role::Finding(Vec::new()))
        else {
            return;
        };
        let _e = self.span.clone().entered();
        tracing::warn!(%winner, shards = shards.len(), "two homes of the room met: moving under the other");
        drop(_e);
        for shard in shards.iter().filter(|s| **s != winner) {
            if let Ok(far) = self.far(shard) {
                far.tell(ShardCall::Rehome {
                    home: winner.clone(),
                });
            }
        }
        self.role = Role::Finding(self.local_state_calls());
        self.attach(winner, ctx);
    }

    /// What a shard reports of itself to a new home: its peers and
    /// producers.
    fn local_state_calls(&self) -> Vec<ShardCall> {
        let me = self.env.node.clone();
        let peers = self.peers.values().map(|p| ShardCall::PeerJoined {
            info: p.info.clone(),
            node: me.clone(),
        });
        let producers = self.peers.values().flat_map(|p| {
            p.producers.values().map(|pr| ShardCall::ProducerAnnounced {
                info: producer_info(p.info.peer_id, pr),
                loc: p.loc.clone(),
            })
        });
        peers.chain(producers).collect()
    }

    /// This node is the room's home from now on.
    pub(super) fn become_home(&mut self) {
        if let Role::Finding(queued) = std::mem::replace(
            &mut self.role,
            Role::Home {
                shards: HashSet::new(),
            },
        ) {
            // No shard yet: nobody to tell.
            drop(queued);
        }
        let _e = self.span.clone().entered();
        tracing::info!("this node is the room's home");
    }

    /// Attaches to the home on `home`, then applies its snapshot.
    fn attach(&mut self, home: NodeId, ctx: &mut Context<Self>) {
        self.attach_to(home, 0, ctx);
    }

    /// [`Self::attach`], following a shard's pointer to its home at most a
    /// few times.
    fn attach_to(&mut self, home: NodeId, redirects: u8, ctx: &mut Context<Self>) {
        let far = match self.far(&home) {
            Ok(f) => f,
            Err(_) => return self.become_home(),
        };
        let fut = async move { far.ask_raw(ShardCall::Attach).await }.instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self).map(move |reply, act, ctx| {
            let me = act.env.node.clone();
            match (&act.role, reply) {
                (Role::Finding(_), Ok(ShardReply::Snapshot { peers, producers })) => {
                    let Role::Finding(queued) =
                        std::mem::replace(&mut act.role, Role::Shard { home: home.clone() })
                    else {
                        return;
                    };
                    let _e = act.span.clone().entered();
                    tracing::info!(%home, peers = peers.len(), producers = producers.len(), "attached to the room's home");
                    drop(_e);
                    for (info, node) in peers {
                        act.remote_peer_joined(info, node, ctx);
                    }
                    for (info, loc) in producers {
                        act.announce(info, loc, ctx);
                    }
                    for call in queued {
                        act.publish(call);
                    }
                }
                // A shard attached to us meanwhile, making us a home, but
                // `home` took us as its shard: move under it, with ours.
                (Role::Home { .. }, Ok(ShardReply::Snapshot { .. })) => act.merge_into(home, ctx),
                (Role::Finding(_), Err(ShardError::NotHome(Some(next))))
                    if redirects < 3 && next != me =>
                {
                    act.attach_to(next, redirects + 1, ctx)
                }
                (Role::Finding(_), other) => {
                    let _e = act.span.clone().entered();
                    tracing::warn!(%home, answer = ?other, "cannot attach to the room's home: hosting it here");
                    drop(_e);
                    act.become_home();
                }
                // Closed, or moved on meanwhile.
                _ => {}
            }
        }));
    }

    /// Whether shards on other nodes depend on this room (its home keeps
    /// it open for them).
    pub(super) fn has_shards(&self) -> bool {
        matches!(&self.role, Role::Home { shards } if !shards.is_empty())
    }

    /// Reports a local change to the rest of the room: to the home from a
    /// shard, to every shard from the home.
    pub(super) fn publish(&mut self, call: ShardCall) {
        match &mut self.role {
            Role::Alone => {}
            Role::Finding(queue) => queue.push(call),
            Role::Home { shards } => {
                let shards: Vec<NodeId> = shards.iter().cloned().collect();
                self.relay(call, &shards, None);
            }
            Role::Shard { home } => {
                let home = home.clone();
                if let Ok(far) = self.far(&home) {
                    far.tell(call);
                }
            }
        }
    }

    /// At the home: passes a change on to every shard but its origin.
    fn relay(&self, call: ShardCall, shards: &[NodeId], origin: Option<&NodeId>) {
        for shard in shards.iter().filter(|s| Some(*s) != origin) {
            if let Ok(far) = self.far(shard) {
                far.tell(call.clone());
            }
        }
    }

    /// At the home, the shards to relay a change from `origin` to.
    fn relay_targets(&self) -> Vec<NodeId> {
        match &self.role {
            Role::Home { shards } => shards.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// A peer on another node joined: kept, and shown to the local peers.
    fn remote_peer_joined(&mut self, info: PeerInfo, node: NodeId, ctx: &mut Context<Self>) {
        if self.peers.contains_key(&info.peer_id) {
            return;
        }
        let id = info.peer_id;
        if self.remote_peers.insert(id, (info.clone(), node)).is_none() {
            self.broadcast(id, Event::PeerJoined(info), ctx);
        }
    }

    /// The snapshot a shard gets when it attaches: every peer and producer
    /// of the room, with where they are.
    pub(super) fn snapshot(&self) -> ShardReply {
        let me = self.env.node.clone();
        let peers = self
            .peers
            .values()
            .map(|p| (p.info.clone(), me.clone()))
            .chain(self.remote_peers.values().cloned())
            .collect();
        let producers = self
            .peers
            .values()
            .flat_map(|p| {
                p.producers
                    .values()
                    .map(|pr| (producer_info(p.info.peer_id, pr), p.loc.clone()))
            })
            .chain(self.remote_producers.values().cloned())
            .collect();
        ShardReply::Snapshot { peers, producers }
    }

    /// Handles a change of the room map reported from another node, or a
    /// shard attaching or detaching. `None` for calls that are not about
    /// the map.
    pub(super) fn map_call(
        &mut self,
        from: &NodeId,
        call: &ShardCall,
        ctx: &mut Context<Self>,
    ) -> Option<Result<ShardReply, ShardError>> {
        let done = Some(Ok(ShardReply::Done));
        let shards = self.relay_targets();
        match call {
            ShardCall::Attach => {
                match &mut self.role {
                    Role::Shard { home } => {
                        return Some(Err(ShardError::NotHome(Some(home.clone()))));
                    }
                    Role::Alone | Role::Finding(_) => self.become_home(),
                    Role::Home { .. } => {}
                }
                if let Role::Home { shards } = &mut self.role {
                    shards.insert(from.clone());
                }
                let _e = self.span.clone().entered();
                tracing::info!(shard = %from, "a shard attached");
                drop(_e);
                Some(Ok(self.snapshot()))
            }
            ShardCall::Rehome { home } => {
                if matches!(&self.role, Role::Shard { home: old } if old == from) {
                    let _e = self.span.clone().entered();
                    tracing::info!(old = %from, new = %home, "the room's home moved");
                    drop(_e);
                    self.role = Role::Finding(self.local_state_calls());
                    self.attach(home.clone(), ctx);
                }
                done
            }
            ShardCall::Detach => {
                if let Role::Home { shards } = &mut self.role {
                    shards.remove(from);
                }
                self.maybe_close(ctx);
                done
            }
            ShardCall::PeerJoined { info, node } => {
                self.remote_peer_joined(info.clone(), node.clone(), ctx);
                self.relay(call.clone(), &shards, Some(node));
                done
            }
            ShardCall::PeerLeft { peer_id } => {
                if let Some((_, node)) = self.remote_peers.remove(peer_id) {
                    self.broadcast(*peer_id, Event::PeerLeft { peer_id: *peer_id }, ctx);
                    self.relay(call.clone(), &shards, Some(&node));
                }
                done
            }
            ShardCall::ProducerAnnounced { info, loc } => {
                if loc.node == self.env.node {
                    return Some(Err(ShardError::WrongNode(format!("{loc} is on this node"))));
                }
                self.announce(info.clone(), loc.clone(), ctx);
                self.relay(call.clone(), &shards, Some(&loc.node));
                done
            }
            ShardCall::ProducerGone { producer_id } => {
                let origin = self.producer_node(*producer_id);
                self.forget(*producer_id, ctx);
                self.relay(call.clone(), &shards, origin.as_ref());
                done
            }
            ShardCall::ProducerPaused {
                producer_id,
                paused,
            } => {
                let origin = self.producer_node(*producer_id);
                if let Some((info, _)) = self.remote_producers.get_mut(producer_id) {
                    info.paused = *paused;
                    let owner = info.peer_id;
                    let event = if *paused {
                        Event::ProducerPaused {
                            producer_id: *producer_id,
                        }
                    } else {
                        Event::ProducerResumed {
                            producer_id: *producer_id,
                        }
                    };
                    self.broadcast(owner, event, ctx);
                    self.relay(call.clone(), &shards, origin.as_ref());
                }
                done
            }
            _ => None,
        }
    }

    fn producer_node(&self, producer_id: ProducerId) -> Option<NodeId> {
        self.remote_producers
            .get(&producer_id)
            .map(|(_, loc)| loc.node.clone())
    }

    /// Tells the rest of the room that a local peer joined.
    pub(super) fn publish_peer_joined(&mut self, info: &PeerInfo) {
        let node = self.env.node.clone();
        self.publish(ShardCall::PeerJoined {
            info: info.clone(),
            node,
        });
    }

    /// Tells the rest of the room that a local peer left, with its
    /// producers.
    pub(super) fn publish_peer_left(&mut self, peer_id: PeerId, producers: &[ProducerId]) {
        for producer_id in producers {
            self.publish(ShardCall::ProducerGone {
                producer_id: *producer_id,
            });
        }
        self.publish(ShardCall::PeerLeft { peer_id });
    }

    /// Tells the rest of the room about a new local producer on `loc`.
    pub(super) fn publish_producer(&mut self, info: &ProducerInfo, loc: &RouterLoc) {
        self.publish(ShardCall::ProducerAnnounced {
            info: info.clone(),
            loc: loc.clone(),
        });
    }

    /// The peers of the room on other nodes, as a joining peer learns them.
    pub(super) fn remote_peer_infos(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        self.remote_peers.values().map(|(i, _)| i.clone())
    }

    /// When the room stops: a shard detaches from its home.
    pub(super) fn leave_span(&mut self) {
        if let Role::Shard { home } = &self.role {
            if let Ok(far) = self.far(home) {
                far.tell(ShardCall::Detach);
            }
        }
    }
}
