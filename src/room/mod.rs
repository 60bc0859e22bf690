//! [`RoomActor`]: one room's routers, participants, producers and consumers.
//!
//! # Placement and pipes
//!
//! A room spans every worker its peers are placed on. Each joining peer is
//! given a worker by the node's [`WorkerBoard`](crate::placement::WorkerBoard)
//! (see [`crate::placement`]); the room keeps one router per worker it uses,
//! keyed by its [`RouterLoc`](crate::ids::RouterLoc) (node and worker slot),
//! created on demand and dropped when no peer, pipe or in-flight request
//! needs it.
//!
//! A consumer whose producer lives on another router receives it through a
//! pipe: the room's own pipe transport pairs, one per (sending router,
//! receiving router) and shared by every producer piped between them, with
//! `rtc.pipe_socket_buffer_bytes` socket buffers. On them the room does what
//! mediasoup's `Router::pipe_producer_to_router` does: a pipe consumer on the
//! sending router and a pipe producer with the same id on the receiving one.
//! Each producer's pipes form a tree ([`pipe_tree`]): a router forwards it to
//! at most `placement.pipe_fanout` others, and a hop closes once no consumer,
//! request or lower hop uses it. Pause, resume and close of a producer
//! travel down its tree through the room; keyframe requests travel up as
//! RTCP over the pipe transports.
//!
//! When a worker dies the room drops its router there and the hops into or
//! out of it (with those below); consumers that lost their path get
//! `consumerClosed` and the producer is offered again. The peers placed on
//! the dead worker get a `reconnect` event and are removed; the others go
//! on.
//!
//! # Concurrency
//!
//! Handlers that await mediasoup return a `ResponseActFuture`: the mediasoup
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
//!
//! # Lifetime
//!
//! A room closes when it is empty: its last peer left, or nobody joined
//! within `rooms.idle_close_ms` of it being created. A join never races a
//! closing room: the registry hands joins a [`RoomGate`] hold, and a room
//! only closes while nobody holds its gate.
//!
//! # Files
//!
//! - [`app`] — the embedding API's seats, producers and pipes;
//! - `controls` — closing a consumer or transport, ICE restart, transport
//!   stats, preferred layers;
//! - `data` — peers' DataChannels (SCTP data producers and consumers);
//! - `messages` — the public messages, domain replies and events;
//! - `error` — [`RoomError`];
//! - `evacuate` — drain: telling local participants to move, in batches;
//! - `actor` — the actor, its lifecycle, joins and leaves;
//! - `routers` — the room's routers, one per worker it uses;
//! - [`pipe_tree`] — the pure pipe-tree bookkeeping;
//! - `pipes` — pipe links and hops between the room's routers;
//! - `remote` — the target end of cross-node pipes, the calls between
//!   shards, and producers announced from other nodes;
//! - `outlinks` — the source end of cross-node pipes;
//! - `span` — the room across nodes: home or shard, finding the home,
//!   losing a node, handing the home over;
//! - `map` — the room's map of peers and producers across nodes, and
//!   what an attach exchanges;
//! - `speaker` — the room's active speaker observer (`rooms.active_speaker`);
//! - `status` — what a room shows in `/api/status`;
//! - [`fabric`] — the room's messages between nodes;
//! - [`wire`] — mediasoup values on the fabric (as JSON);
//! - `peers` — participants and their transports;
//! - `media` — producers and consumers.

mod actor;
pub mod app;
mod controls;
mod data;
mod error;
mod evacuate;
pub mod fabric;
mod gate;
mod map;
mod media;
mod messages;
mod outlinks;
mod peers;
pub(crate) mod pipe_tree;
mod pipes;
mod remote;
mod routers;
mod span;
mod speaker;
mod status;
pub mod wire;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use mafalda_actors::{Node, NodeId};

pub use actor::RoomActor;
pub use controls::{CloseConsumer, CloseTransport, RestartIce, SetPreferredLayers, TransportStats};
pub use data::{ConsumeData, DataConsumerInfo, ProduceData};
pub use error::RoomError;
pub use evacuate::Evacuate;
pub use gate::{GateHold, RoomGate};
pub use messages::*;
pub use routers::rtc_listen_info;
pub use span::{HandOffHome, IsHome, NodeLost, NodeUp};
pub use status::{DescribeRoom, LinkView, PeerNodes, RoomView, RouterView};

use crate::config::Config;
use crate::metrics::Counters;
use crate::placement::WorkerBoard;

/// What every room of a node shares.
#[derive(Debug)]
pub struct RoomEnv {
    /// This node, for router locations and spans.
    pub node: NodeId,
    /// The node configuration.
    pub config: Arc<Config>,
    /// Node-wide counters.
    pub counters: Arc<Counters>,
    /// The node's running totals (joins refused and spilled, admissions,
    /// RTP per worker slot), for `/metrics`.
    pub tallies: Arc<crate::metrics::Tallies>,
    /// The node's live workers, for placement.
    pub workers: Arc<WorkerBoard>,
    /// The cluster fabric, once the node has joined it (rooms then reach
    /// their shards on other nodes).
    pub fabric: OnceLock<Node>,
    /// The node is draining: it takes no new participants and no new room
    /// homes (gossiped to the cluster).
    pub draining: AtomicBool,
}

impl RoomEnv {
    /// Where this node's cross-node pipe transports listen: the address of
    /// its fabric endpoint, once it has joined the cluster.
    pub fn pipe_ip(&self) -> Option<IpAddr> {
        self.fabric.get().map(|n| n.addr().ip())
    }

    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
