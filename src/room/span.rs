//! The room across nodes: whether this node's room actor is the room's
//! *home* (it keeps the room-wide map of peers and producers and relays
//! every change to the room's shards) or a *shard* of a home on another
//! node (it reports its local changes to the home and hears the others'),
//! and how that changes when nodes come, go or drain. The map itself is in
//! `map`.
//!
//! A room actor of a clustered node finds its role when it starts, by the
//! home rule ([`crate::home`]): it asks the other candidates in rendezvous
//! order whether they are the room's home (a room still finding its role,
//! or a shard, answers no); the first that is, is the home, and this actor
//! attaches to it as a shard ([`ShardCall::AttachWith`], reporting its own
//! peers and producers, answered with the home's map). If none is and this
//! node is the top candidate, it is the home; otherwise it attaches to the
//! top candidate, whose registry creates the room there as its home (or
//! whose room, still finding its role, becomes the home). Two rooms
//! starting at once on two nodes thus agree: both see no home, and both
//! pick the same top candidate. Local changes made before the role is
//! known are queued and sent once it is.
//!
//! The same search runs again when the home's node goes down: the
//! surviving shards find the home rule's top candidate among the
//! survivors, which becomes the home, and the others attach to it. A node
//! that has not seen the home go down yet still answers that it is a
//! shard of it; an attach that is sent to a home this node knows is down
//! is put off and the search tried again a little later
//! (`find_again_later`), so the survivors agree once they all have seen
//! it.
//!
//! A draining node does not become a home: its rooms attach elsewhere, it
//! sends an attaching shard on to the top candidate, and a home on it
//! hands the room over when told ([`HandOffHome`]), as a home that loses
//! a split brain does. Only when no other node may be the home (every
//! other candidate drains or is down) does it host the room.

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use mafalda_actors::NodeId;
use mediasoup::prelude::ProducerId;
use tracing::Instrument;

use super::fabric::{ShardCall, ShardError, ShardReply};
use super::map::{HomeMap, Known, LocalState};
use super::RoomActor;
use crate::cluster::{best_other_home, find_home, is_alive, Home};
use crate::ids::{PeerId, RouterLoc};

/// How long each home candidate has to answer while a room finds its home.
const HOME_ASK: Duration = Duration::from_secs(1);

/// How many `NotHome` answers an attach follows before the room tries the
/// search again later.
const MAX_REDIRECTS: u8 = 3;

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
                if matches!(act.role, Role::Home { .. }) {
                    act.move_under(winner, "two homes of the room met", ctx);
                }
            }
        }));
    }
}

/// A node of the cluster went down (SWIM): the room drops its peers,
/// producers, shard and pipes there. A shard whose home was there finds
/// the room's new home among the surviving nodes.
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
                let _e = self.span.clone().entered();
                tracing::warn!(home = %lost, "the room's home is down: finding its new home");
                drop(_e);
                // The search runs once this handler has dropped what lived
                // there.
                self.find_afresh(ctx);
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
            self.remote_peer_left(peer_id, ctx);
            self.relay(ShardCall::PeerLeft { peer_id }, &shards, Some(&lost));
        }
        // Hops fed from there (relays of producers living elsewhere) go,
        // with those below them: their consumers are closed and offered
        // the producer again. Links to there close.
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

/// The node drains: a room whose home is here hands the home over to the
/// home rule's top candidate among the other nodes, and becomes a shard of
/// it with its shards (see [`crate::registry::HandOffHomes`]). Answers
/// whether the room is moving its home. A room that is not the home, or on
/// a node that does not drain, or with no other node that may be its home,
/// stays as it is.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct HandOffHome;

impl Handler<HandOffHome> for RoomActor {
    type Result = bool;
    fn handle(&mut self, _msg: HandOffHome, ctx: &mut Self::Context) -> bool {
        if self.closing || !self.env.draining() || !matches!(self.role, Role::Home { .. }) {
            return false;
        }
        match self.other_home() {
            Some(next) => {
                self.move_under(next, "the node drains: handing the room's home over", ctx);
                true
            }
            None => {
                let _e = self.span.clone().entered();
                tracing::warn!(
                    "the node drains, but no other node may be the room's home: staying"
                );
                false
            }
        }
    }
}

impl RoomActor {
    /// Starts finding the room's home (clustered nodes only).
    pub(super) fn find_role(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.role, Role::Finding(_)) || self.closing {
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
            if !matches!(act.role, Role::Finding(_)) || act.attaching.is_some() {
                // Made home meanwhile by a shard attaching, or attaching
                // already (a `Rehome`).
                return;
            }
            let me = act.env.node.clone();
            match found {
                Ok(Home::Hosted(home)) => act.attach(home, ctx),
                Ok(Home::Create { top, .. }) if top != me => act.attach(top, ctx),
                // This node is on top, as far as the view knows; a draining
                // one (whose flag may not be gossiped yet) leaves it to the
                // next.
                Ok(Home::Create { .. }) => match act.other_home_if_draining() {
                    Some(next) => act.attach(next, ctx),
                    None => act.become_home(),
                },
                Err(e) => {
                    let _e = act.span.clone().entered();
                    tracing::warn!(error = %e, "cannot find the room's home: hosting it here");
                    drop(_e);
                    act.become_home();
                }
            }
        }));
    }

    /// Forgets the role and finds the room's home again, now.
    fn find_afresh(&mut self, ctx: &mut Context<Self>) {
        self.role = Role::Finding(Vec::new());
        self.attaching = None;
        self.refinds = 0;
        self.find_role(ctx);
    }

    /// Puts the search off: another node has not caught up yet (it still
    /// follows a home this node knows is down, or the home is moving). Past
    /// the budget (about the time SWIM needs to declare a node down), the
    /// room hosts itself.
    fn find_again_later(&mut self, why: &str, ctx: &mut Context<Self>) {
        let cluster = &self.env.config.cluster;
        let period = cluster.probe_period_ms.max(1);
        let budget = cluster.suspect_to_down_ms / period + 4;
        self.attaching = None;
        if self.refinds >= u32::try_from(budget).unwrap_or(u32::MAX) {
            let _e = self.span.clone().entered();
            tracing::warn!(why, "no home found in time: hosting the room here");
            drop(_e);
            return self.become_home();
        }
        self.refinds += 1;
        let _e = self.span.clone().entered();
        tracing::info!(
            why,
            attempt = self.refinds,
            "finding the room's home again shortly"
        );
        drop(_e);
        ctx.run_later(Duration::from_millis(period), |act, ctx| act.find_role(ctx));
    }

    /// This home moves under `home`: it tells its shards to attach there
    /// (`Rehome`), and attaches there itself, reporting its own peers and
    /// producers. For a home that lost a split brain, and for a home
    /// handing over because its node drains (`home` is then usually one of
    /// its shards, which becomes the home on this attach).
    fn move_under(&mut self, home: NodeId, why: &str, ctx: &mut Context<Self>) {
        let Role::Home { shards } = std::mem::replace(&mut self.role, Role::Finding(Vec::new()))
        else {
            return;
        };
        let _e = self.span.clone().entered();
        tracing::warn!(%home, shards = shards.len(), why, "moving the room's home");
        drop(_e);
        for shard in shards.iter().filter(|s| **s != home) {
            if let Ok(far) = self.far(shard) {
                far.tell(ShardCall::Rehome { home: home.clone() });
            }
        }
        self.refinds = 0;
        self.attach(home, ctx);
    }

    /// `Rehome` from `from`: if it is our home, we attach to `home`.
    pub(super) fn rehome(&mut self, from: &NodeId, home: &NodeId, ctx: &mut Context<Self>) {
        let ours = matches!(&self.role, Role::Shard { home: old } if old == from);
        if !ours || home == &self.env.node {
            return;
        }
        let _e = self.span.clone().entered();
        tracing::info!(old = %from, new = %home, "the room's home moved");
        drop(_e);
        self.role = Role::Finding(Vec::new());
        self.refinds = 0;
        self.attach(home.clone(), ctx);
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
        self.refinds = 0;
        let _e = self.span.clone().entered();
        tracing::info!("this node is the room's home");
    }

    /// Attaches to the home on `home`, then applies its map.
    fn attach(&mut self, home: NodeId, ctx: &mut Context<Self>) {
        self.attach_to(home, 0, ctx);
    }

    /// [`Self::attach`], following a shard's pointer to its home at most
    /// [`MAX_REDIRECTS`] times.
    fn attach_to(&mut self, home: NodeId, redirects: u8, ctx: &mut Context<Self>) {
        let far = match self.far(&home) {
            Ok(f) => f,
            Err(_) => return self.become_home(),
        };
        // The report carries every local change made so far: only those
        // made from now on wait for the answer.
        let (peers, producers) = self.local_state();
        if let Role::Finding(queue) = &mut self.role {
            queue.clear();
        }
        let known = self.known_remote();
        let seq = self.fresh_id();
        self.attaching = Some((seq, home.clone()));
        let call = ShardCall::AttachWith { peers, producers };
        let fut = async move { far.ask_raw(call).await }.instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self).map(move |reply, act, ctx| {
            if act.attaching.as_ref().is_none_or(|(s, _)| *s != seq) || act.closing {
                // Superseded by another attach, or closed.
                return;
            }
            act.attaching = None;
            let answer = match reply {
                Ok(ShardReply::Map {
                    peers,
                    producers,
                    nodes,
                }) => Ok(((peers, producers), nodes)),
                // From a node that answers as to `Attach`: complete for
                // the home only.
                Ok(ShardReply::Snapshot { peers, producers }) => {
                    Ok(((peers, producers), vec![home.clone()]))
                }
                Ok(other) => Err(ShardError::Refused(format!(
                    "answer {other:?} to an attach"
                ))),
                Err(e) => Err(e),
            };
            act.attach_answered(home, redirects, answer, known, ctx);
        }));
    }

    /// What to do with the answer to an attach to `home`.
    fn attach_answered(
        &mut self,
        home: NodeId,
        redirects: u8,
        answer: Result<HomeMap, ShardError>,
        known: Known,
        ctx: &mut Context<Self>,
    ) {
        let me = self.env.node.clone();
        match (&self.role, answer) {
            (Role::Finding(_), Ok(map)) => self.attached(home, map, &known, ctx),
            // A shard attached to us meanwhile, making us a home, but
            // `home` took us as its shard: move under it, with ours.
            (Role::Home { .. }, Ok(_)) => self.move_under(home, "attached while made a home", ctx),
            (Role::Finding(_), Err(ShardError::NotHome(Some(next)))) if next == me => {
                // The callee drains and names us: we are the one to host,
                // unless we drain too.
                if self.env.draining() {
                    self.find_again_later("sent back to this draining node", ctx);
                } else {
                    self.become_home();
                }
            }
            (Role::Finding(_), Err(ShardError::NotHome(Some(next)))) if !self.alive(&next) => {
                self.find_again_later("the node asked follows a home that is down", ctx)
            }
            (Role::Finding(_), Err(ShardError::NotHome(Some(next))))
                if redirects < MAX_REDIRECTS =>
            {
                self.attach_to(next, redirects + 1, ctx)
            }
            (Role::Finding(_), Err(ShardError::NotHome(_))) => {
                self.find_again_later("the room's home is moving", ctx)
            }
            (Role::Finding(_), Err(e)) if !self.alive(&home) || self.env.draining() => {
                let _e = self.span.clone().entered();
                tracing::info!(%home, error = %e, "cannot attach to the room's home");
                drop(_e);
                self.find_again_later("the node asked is down, or this one drains", ctx)
            }
            (Role::Finding(_), Err(e)) => {
                let _e = self.span.clone().entered();
                tracing::warn!(%home, error = %e, "cannot attach to the room's home: hosting it here");
                drop(_e);
                self.become_home();
            }
            // Closed, or moved on meanwhile.
            _ => {}
        }
    }

    /// The attach to `home` was answered with its map: this node is a
    /// shard of it.
    fn attached(&mut self, home: NodeId, map: HomeMap, known: &Known, ctx: &mut Context<Self>) {
        let Role::Finding(queued) =
            std::mem::replace(&mut self.role, Role::Shard { home: home.clone() })
        else {
            return;
        };
        self.refinds = 0;
        let _e = self.span.clone().entered();
        tracing::info!(%home, peers = map.0 .0.len(), producers = map.0 .1.len(), "attached to the room's home");
        drop(_e);
        self.apply_map(map, known, ctx);
        for call in queued {
            self.publish(call);
        }
    }

    /// At the callee of an attach: takes `from` as a shard and answers
    /// with the room's map (a shard of another home, or a draining node
    /// with somewhere else to send it, refuses with `NotHome`). With a
    /// `report`, what the home attributes to `from` is replaced with it.
    pub(super) fn accept_shard(
        &mut self,
        from: &NodeId,
        report: Option<LocalState>,
        ctx: &mut Context<Self>,
    ) -> Result<ShardReply, ShardError> {
        if from == &self.env.node {
            return Err(ShardError::WrongNode(format!("{from} attaching to itself")));
        }
        if let Some((_, producers)) = &report {
            if let Some((_, loc)) = producers.iter().find(|(_, loc)| &loc.node != from) {
                return Err(ShardError::WrongNode(format!("{loc} reported by {from}")));
            }
        }
        match &self.role {
            Role::Home { .. } => {}
            Role::Shard { home } if home != from => {
                return Err(ShardError::NotHome(Some(home.clone())));
            }
            // Our own home moves under us (it drains), or the room was
            // still finding its home, or was not clustered.
            Role::Shard { .. } | Role::Alone | Role::Finding(_) => {
                if let Some(next) = self.other_home_if_draining() {
                    return Err(ShardError::NotHome(Some(next)));
                }
                if matches!(self.role, Role::Shard { .. }) {
                    let _e = self.span.clone().entered();
                    tracing::info!(old = %from, "the room's home hands it over to this node");
                }
                self.become_home();
            }
        }
        if let Some(report) = &report {
            self.replace_node_state(from, report, ctx);
        }
        let reply = match report {
            Some(_) => self.map_for(from),
            None => self.snapshot(),
        };
        if let Role::Home { shards } = &mut self.role {
            shards.insert(from.clone());
        }
        let _e = self.span.clone().entered();
        tracing::info!(shard = %from, "a shard attached");
        Ok(reply)
    }

    /// Whether `node` is alive in this node's view.
    fn alive(&self, node: &NodeId) -> bool {
        self.env.fabric.get().is_some_and(|f| is_alive(f, node))
    }

    /// The home rule's top candidate other than this node.
    fn other_home(&self) -> Option<NodeId> {
        best_other_home(self.env.fabric.get()?, &self.id)
    }

    /// On a draining node, where to send the room's home instead.
    fn other_home_if_draining(&self) -> Option<NodeId> {
        self.env.draining().then(|| self.other_home()).flatten()
    }

    /// Whether shards on other nodes depend on this room (its home keeps
    /// it open for them).
    pub(super) fn has_shards(&self) -> bool {
        matches!(&self.role, Role::Home { shards } if !shards.is_empty())
    }

    /// Whether the room stays open without local peers: shards depend on
    /// it, or it is attaching (the home will count it as a shard).
    pub(super) fn held_open(&self) -> bool {
        self.has_shards() || self.attaching.is_some()
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
