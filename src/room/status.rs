//! What a room shows in `/api/status`: its part in the room (home or
//! shard), who it knows, and its pipe links.

use actix::prelude::*;
use serde::Serialize;

use super::span::Role;
use super::RoomActor;
use crate::ids::RoomId;

/// One pipe link of a room, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    /// The sending router (`node/wN`).
    pub from: String,
    /// The receiving router.
    pub to: String,
    /// Producers carried (for links out to other nodes; hops into this
    /// node are counted by the producer trees).
    pub hops: usize,
}

/// One of the room's routers on this node, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterView {
    /// The router (`node/wN`: the worker it lives on).
    pub router: String,
    /// The room's participants placed on it.
    pub peers: usize,
}

/// One room on this node, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// The room.
    pub room: RoomId,
    /// `alone` (not clustered), `finding`, `home` or `shard`.
    pub role: &'static str,
    /// The room's home node, when known.
    pub home: Option<String>,
    /// At the home: the nodes whose shards are attached.
    pub shards: Vec<String>,
    /// Peers on this node.
    pub peers: usize,
    /// Peers on other nodes.
    pub remote_peers: usize,
    /// Producers on this node.
    pub producers: usize,
    /// Producers on other nodes.
    pub remote_producers: usize,
    /// The room's routers on this node, by worker.
    pub routers: Vec<RouterView>,
    /// Links between this node's routers, and from other nodes into them.
    pub links_in: Vec<LinkView>,
    /// Links from this node's routers to other nodes'.
    pub links_out: Vec<LinkView>,
}

/// Asks a room for its [`RoomView`].
#[derive(Debug, Message)]
#[rtype(result = "RoomView")]
pub struct DescribeRoom;

impl Handler<DescribeRoom> for RoomActor {
    type Result = MessageResult<DescribeRoom>;
    fn handle(&mut self, _msg: DescribeRoom, _ctx: &mut Self::Context) -> Self::Result {
        let me = self.env.node.to_string();
        let (role, home, mut shards) = match &self.role {
            Role::Alone => ("alone", None, Vec::new()),
            Role::Finding(_) => ("finding", None, Vec::new()),
            Role::Home { shards } => (
                "home",
                Some(me.clone()),
                shards.iter().map(|n| n.to_string()).collect(),
            ),
            Role::Shard { home } => ("shard", Some(home.to_string()), Vec::new()),
        };
        shards.sort();
        let mut links_in: Vec<LinkView> = self
            .pipe_pairs
            .keys()
            .map(|(from, to)| LinkView {
                from: from.to_string(),
                to: to.to_string(),
                hops: self
                    .pipes
                    .values()
                    .filter(|t| t.hop(to).is_some_and(|h| &h.from == from))
                    .count(),
            })
            .collect();
        links_in.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        let mut links_out: Vec<LinkView> = self
            .out_links
            .iter()
            .map(|((from, to), link)| LinkView {
                from: from.to_string(),
                to: to.to_string(),
                hops: link.hop_count(),
            })
            .collect();
        links_out.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        let mut locs: Vec<_> = self.routers.keys().collect();
        locs.sort();
        let routers = locs
            .into_iter()
            .map(|loc| RouterView {
                router: loc.to_string(),
                peers: self.peers.values().filter(|p| &p.loc == loc).count(),
            })
            .collect();
        MessageResult(RoomView {
            room: self.id.clone(),
            role,
            home,
            shards,
            peers: self.peers.len(),
            remote_peers: self.remote_peers.len(),
            producers: self.peers.values().map(|p| p.producers.len()).sum(),
            remote_producers: self.remote_producers.len(),
            routers,
            links_in,
            links_out,
        })
    }
}

/// The other nodes where the room has participants (as this node knows
/// them), most participants first: spill-over prefers them.
#[derive(Debug, Message)]
#[rtype(result = "Vec<mafalda_actors::NodeId>")]
pub struct PeerNodes;

impl Handler<PeerNodes> for RoomActor {
    type Result = MessageResult<PeerNodes>;
    fn handle(&mut self, _msg: PeerNodes, _ctx: &mut Self::Context) -> Self::Result {
        let mut counts: std::collections::HashMap<&mafalda_actors::NodeId, usize> =
            std::collections::HashMap::new();
        for (_, node) in self.remote_peers.values() {
            *counts.entry(node).or_default() += 1;
        }
        let mut nodes: Vec<_> = counts.into_iter().collect();
        nodes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        MessageResult(nodes.into_iter().map(|(n, _)| n.clone()).collect())
    }
}
