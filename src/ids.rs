//! Newtype identifiers for Mafalda's own entities.
//!
//! mediasoup entities (transports, producers, consumers) keep mediasoup's ids;
//! nodes are named by the fabric's [`NodeId`].

use std::fmt;

use mafalda_actors::NodeId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A participant in a room, unique per node and join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(Uuid);

impl PeerId {
    /// A fresh random id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A room, named by the application.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(String);

impl RoomId {
    /// Wraps a room name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The room name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A worker slot on this node (0-based, stable across worker restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerSlot(pub usize);

impl fmt::Display for WorkerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// Where one of a room's routers lives: a worker slot of a node. Routers,
/// pipe hops and peers are keyed by it, so that a room's map covers every
/// node it spans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouterLoc {
    /// The node.
    pub node: NodeId,
    /// The worker slot on that node.
    pub slot: WorkerSlot,
}

impl RouterLoc {
    /// The router on `slot` of `node`.
    pub fn new(node: NodeId, slot: WorkerSlot) -> Self {
        Self { node, slot }
    }
}

impl fmt::Display for RouterLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.slot)
    }
}
