//! The room's map across nodes: the peers and producers living on other
//! nodes (`remote_peers`, `remote_producers`), how this node's changes are
//! published (a shard tells its home, the home tells every shard), how the
//! changes of other nodes are applied and relayed, and what an attach
//! exchanges.
//!
//! An attach is authoritative both ways. The attaching node reports every
//! peer and producer it has ([`ShardCall::AttachWith`]); the home replaces
//! whatever it attributes to that node with the report, and relays the
//! differences to its other shards. The home answers with its map and the
//! nodes the map is complete for (itself and its attached shards,
//! [`ShardReply::Map`]); the new shard drops what it knew of those nodes
//! and the map no longer has. So a map that went stale (changes told to a
//! home that died) is rebuilt when the shards attach to the next home.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;
use mafalda_actors::NodeId;
use mediasoup::prelude::ProducerId;

use super::fabric::{ShardCall, ShardError, ShardReply};
use super::messages::{Event, PeerInfo, ProducerInfo};
use super::peers::producer_info;
use super::span::Role;
use super::RoomActor;
use crate::ids::{PeerId, RouterLoc};

/// A node's own peers, and its own producers with their routers: what it
/// reports when it attaches.
pub(super) type LocalState = (Vec<PeerInfo>, Vec<(ProducerInfo, RouterLoc)>);

/// Peers with their node, and producers with their router.
pub(super) type Listing = (Vec<(PeerInfo, NodeId)>, Vec<(ProducerInfo, RouterLoc)>);

/// The home's map as an attaching shard gets it: peers with their node,
/// producers with their router, and the nodes it is complete for.
pub(super) type HomeMap = (Listing, Vec<NodeId>);

/// The remote peers and producers a node knew when it asked to attach:
/// only those may be dropped for missing from the home's map (a change
/// relayed meanwhile may overtake the answer).
#[derive(Debug, Default)]
pub(super) struct Known {
    peers: HashSet<PeerId>,
    producers: HashSet<ProducerId>,
}

impl RoomActor {
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
    pub(super) fn relay(&self, call: ShardCall, shards: &[NodeId], origin: Option<&NodeId>) {
        for shard in shards.iter().filter(|s| Some(*s) != origin) {
            if let Ok(far) = self.far(shard) {
                far.tell(call.clone());
            }
        }
    }

    /// At the home, the shards to relay a change to.
    pub(super) fn relay_targets(&self) -> Vec<NodeId> {
        match &self.role {
            Role::Home { shards } => shards.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// A peer on another node joined: kept, and shown to the local peers.
    /// Returns whether it was new.
    fn remote_peer_joined(
        &mut self,
        info: PeerInfo,
        node: NodeId,
        ctx: &mut Context<Self>,
    ) -> bool {
        if self.peers.contains_key(&info.peer_id) || self.remote_peers.contains_key(&info.peer_id) {
            return false;
        }
        let id = info.peer_id;
        self.remote_peers.insert(id, (info.clone(), node));
        self.broadcast(id, Event::PeerJoined(info), ctx);
        true
    }

    /// A peer on another node left: forgotten, and the local peers are
    /// told. Returns its node, if it was known.
    pub(super) fn remote_peer_left(
        &mut self,
        peer_id: PeerId,
        ctx: &mut Context<Self>,
    ) -> Option<NodeId> {
        let (_, node) = self.remote_peers.remove(&peer_id)?;
        self.broadcast(peer_id, Event::PeerLeft { peer_id }, ctx);
        Some(node)
    }

    /// An announced producer was paused or resumed: recorded, and the local
    /// peers are told. Returns whether it is known.
    fn remote_paused(
        &mut self,
        producer_id: ProducerId,
        paused: bool,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some((info, _)) = self.remote_producers.get_mut(&producer_id) else {
            return false;
        };
        info.paused = paused;
        let owner = info.peer_id;
        let event = if paused {
            Event::ProducerPaused { producer_id }
        } else {
            Event::ProducerResumed { producer_id }
        };
        self.broadcast(owner, event, ctx);
        true
    }

    /// This node's own peers and producers.
    pub(super) fn local_state(&self) -> LocalState {
        let peers = self.peers.values().map(|p| p.info.clone()).collect();
        let producers = self
            .peers
            .values()
            .flat_map(|p| {
                p.producers
                    .values()
                    .map(|pr| (producer_info(p.info.peer_id, pr), p.loc.clone()))
            })
            .collect();
        (peers, producers)
    }

    /// The ids of the remote peers and producers known now.
    pub(super) fn known_remote(&self) -> Known {
        Known {
            peers: self.remote_peers.keys().copied().collect(),
            producers: self.remote_producers.keys().copied().collect(),
        }
    }

    /// Every peer and producer of the room this node knows, with where
    /// they are, but those living on `except`.
    fn room_map(&self, except: Option<&NodeId>) -> Listing {
        let me = self.env.node.clone();
        let (own_peers, own_producers) = self.local_state();
        let peers = own_peers
            .into_iter()
            .map(|info| (info, me.clone()))
            .chain(self.remote_peers.values().cloned())
            .filter(|(_, node)| Some(node) != except)
            .collect();
        let producers = own_producers
            .into_iter()
            .chain(self.remote_producers.values().cloned())
            .filter(|(_, loc)| Some(&loc.node) != except)
            .collect();
        (peers, producers)
    }

    /// The room as this node knows it (for `Attach` and `Describe`).
    pub(super) fn snapshot(&self) -> ShardReply {
        let (peers, producers) = self.room_map(None);
        ShardReply::Snapshot { peers, producers }
    }

    /// At the home, the map a shard on `shard` gets when it attaches: all
    /// but its own, complete for the home and its other shards.
    pub(super) fn map_for(&self, shard: &NodeId) -> ShardReply {
        let (peers, producers) = self.room_map(Some(shard));
        let nodes = std::iter::once(self.env.node.clone())
            .chain(self.relay_targets().into_iter().filter(|n| n != shard))
            .collect();
        ShardReply::Map {
            peers,
            producers,
            nodes,
        }
    }

    /// At the home: what `node` reports of itself replaces what the home
    /// attributes to it; the differences are relayed to the other shards.
    pub(super) fn replace_node_state(
        &mut self,
        node: &NodeId,
        (peers, producers): &LocalState,
        ctx: &mut Context<Self>,
    ) {
        let shards = self.relay_targets();
        let origin = Some(node);
        let reported_peers: HashSet<PeerId> = peers.iter().map(|p| p.peer_id).collect();
        let reported: HashMap<ProducerId, bool> = producers
            .iter()
            .map(|(p, _)| (p.producer_id, p.paused))
            .collect();
        let gone: Vec<ProducerId> = self
            .remote_producers
            .iter()
            .filter(|(id, (_, loc))| &loc.node == node && !reported.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        for producer_id in gone {
            self.forget(producer_id, ctx);
            self.relay(ShardCall::ProducerGone { producer_id }, &shards, origin);
        }
        let left: Vec<PeerId> = self
            .remote_peers
            .iter()
            .filter(|(id, (_, n))| n == node && !reported_peers.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for peer_id in left {
            self.remote_peer_left(peer_id, ctx);
            self.relay(ShardCall::PeerLeft { peer_id }, &shards, origin);
        }
        for info in peers {
            if self.remote_peer_joined(info.clone(), node.clone(), ctx) {
                let call = ShardCall::PeerJoined {
                    info: info.clone(),
                    node: node.clone(),
                };
                self.relay(call, &shards, origin);
            }
        }
        for (info, loc) in producers {
            let id = info.producer_id;
            let was_paused = self.remote_producers.get(&id).map(|(i, _)| i.paused);
            if self.announce(info.clone(), loc.clone(), ctx) {
                let call = ShardCall::ProducerAnnounced {
                    info: info.clone(),
                    loc: loc.clone(),
                };
                self.relay(call, &shards, origin);
            } else if was_paused.is_some_and(|p| p != info.paused)
                && self.remote_paused(id, info.paused, ctx)
            {
                let call = ShardCall::ProducerPaused {
                    producer_id: id,
                    paused: info.paused,
                };
                self.relay(call, &shards, origin);
            }
        }
    }

    /// At a new shard: applies the home's map. What the shard knew when it
    /// asked (`known`) of the nodes the map is complete for, and the map
    /// no longer has, is gone: local peers get `producerClosed` and
    /// `peerLeft`, and the pipes of those producers close. What the map
    /// has that the shard did not know is added.
    pub(super) fn apply_map(
        &mut self,
        ((peers, producers), nodes): HomeMap,
        known: &Known,
        ctx: &mut Context<Self>,
    ) {
        let me = self.env.node.clone();
        let complete: HashSet<&NodeId> = nodes.iter().collect();
        let listed_peers: HashSet<PeerId> = peers.iter().map(|(p, _)| p.peer_id).collect();
        let listed_producers: HashSet<ProducerId> =
            producers.iter().map(|(p, _)| p.producer_id).collect();
        let gone: Vec<ProducerId> = self
            .remote_producers
            .iter()
            .filter(|(id, (_, loc))| {
                known.producers.contains(id)
                    && complete.contains(&loc.node)
                    && !listed_producers.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        let left: Vec<PeerId> = self
            .remote_peers
            .iter()
            .filter(|(id, (_, node))| {
                known.peers.contains(id) && complete.contains(node) && !listed_peers.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        if !gone.is_empty() || !left.is_empty() {
            let _e = self.span.clone().entered();
            tracing::info!(
                producers = gone.len(),
                peers = left.len(),
                "the home's map no longer has them: dropping"
            );
        }
        for producer_id in gone {
            self.forget(producer_id, ctx);
        }
        for peer_id in left {
            self.remote_peer_left(peer_id, ctx);
        }
        for (info, node) in peers {
            if node != me {
                self.remote_peer_joined(info, node, ctx);
            }
        }
        for (info, loc) in producers {
            if loc.node != me {
                self.announce(info, loc, ctx);
            }
        }
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
            ShardCall::Attach => Some(self.accept_shard(from, None, ctx)),
            ShardCall::AttachWith { peers, producers } => {
                let report = (peers.clone(), producers.clone());
                Some(self.accept_shard(from, Some(report), ctx))
            }
            ShardCall::Rehome { home } => {
                self.rehome(from, home, ctx);
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
                if let Some(node) = self.remote_peer_left(*peer_id, ctx) {
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
                if self.remote_paused(*producer_id, *paused, ctx) {
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
}
