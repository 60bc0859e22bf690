//! Resource accounting.
//!
//! Every mediasoup entity the node creates is tracked by a [`Tracked`] guard
//! that is moved into the entity's `on_close` callback: the count goes down
//! exactly once, whether the entity was closed on purpose, by its parent
//! closing, or by its worker dying. `/api/status` reads these counts, and the
//! tests use them to prove that nothing leaks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::Serialize;

/// Kinds of counted resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// mediasoup routers.
    Router,
    /// WebRTC (and later pipe) transports.
    Transport,
    /// Producers.
    Producer,
    /// Consumers.
    Consumer,
    /// Rooms (node scope only).
    Room,
    /// Joined peers (node scope, and the worker the peer is placed on).
    Peer,
    /// Pipe transports between two workers' routers (also counted as
    /// [`Resource::Transport`]).
    PipeTransport,
    /// Pipe producers: a producer re-created on another worker's router
    /// (also counted as [`Resource::Producer`]).
    PipeProducer,
    /// Pipe consumers: the sending end of a pipe on the producer's worker
    /// (also counted as [`Resource::Consumer`]).
    PipeConsumer,
}

/// Live counts of one scope (a worker, or the whole node).
#[derive(Debug, Default)]
pub struct Counters {
    routers: AtomicI64,
    transports: AtomicI64,
    producers: AtomicI64,
    consumers: AtomicI64,
    rooms: AtomicI64,
    peers: AtomicI64,
    pipe_transports: AtomicI64,
    pipe_producers: AtomicI64,
    pipe_consumers: AtomicI64,
}

impl Counters {
    fn cell(&self, r: Resource) -> &AtomicI64 {
        match r {
            Resource::Router => &self.routers,
            Resource::Transport => &self.transports,
            Resource::Producer => &self.producers,
            Resource::Consumer => &self.consumers,
            Resource::Room => &self.rooms,
            Resource::Peer => &self.peers,
            Resource::PipeTransport => &self.pipe_transports,
            Resource::PipeProducer => &self.pipe_producers,
            Resource::PipeConsumer => &self.pipe_consumers,
        }
    }

    /// The current count of one resource.
    pub fn get(&self, r: Resource) -> i64 {
        self.cell(r).load(Ordering::SeqCst)
    }

    /// A plain copy of every count.
    pub fn snapshot(&self) -> CountsSnapshot {
        CountsSnapshot {
            routers: self.get(Resource::Router),
            transports: self.get(Resource::Transport),
            producers: self.get(Resource::Producer),
            consumers: self.get(Resource::Consumer),
            rooms: self.get(Resource::Room),
            peers: self.get(Resource::Peer),
            pipe_transports: self.get(Resource::PipeTransport),
            pipe_producers: self.get(Resource::PipeProducer),
            pipe_consumers: self.get(Resource::PipeConsumer),
        }
    }
}

/// Counts at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CountsSnapshot {
    /// Routers.
    pub routers: i64,
    /// Transports.
    pub transports: i64,
    /// Producers.
    pub producers: i64,
    /// Consumers.
    pub consumers: i64,
    /// Rooms.
    pub rooms: i64,
    /// Peers.
    pub peers: i64,
    /// Pipe transports (included in `transports`).
    #[serde(rename = "pipeTransports")]
    pub pipe_transports: i64,
    /// Pipe producers (included in `producers`).
    #[serde(rename = "pipeProducers")]
    pub pipe_producers: i64,
    /// Pipe consumers (included in `consumers`).
    #[serde(rename = "pipeConsumers")]
    pub pipe_consumers: i64,
}

/// Counts one live resource in several scopes; dropping it uncounts it.
///
/// Scopes go from the widest (the node) to the narrowest (a worker): they
/// are counted in that order and uncounted in reverse, so a wider scope
/// never holds less than a narrower one, and a reader that reads the node
/// first and the workers next never sees a worker still count what the
/// node no longer does.
#[derive(Debug)]
pub struct Tracked {
    resource: Resource,
    scopes: Vec<Arc<Counters>>,
}

impl Tracked {
    /// Counts one `resource` in every scope.
    pub fn new(resource: Resource, scopes: &[&Arc<Counters>]) -> Self {
        for s in scopes {
            s.cell(resource).fetch_add(1, Ordering::SeqCst);
        }
        Self {
            resource,
            scopes: scopes.iter().map(|s| Arc::clone(s)).collect(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        for s in self.scopes.iter().rev() {
            s.cell(self.resource).fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_counts_in_every_scope_until_dropped() {
        let node = Arc::new(Counters::default());
        let worker = Arc::new(Counters::default());
        let a = Tracked::new(Resource::Consumer, &[&node, &worker]);
        let b = Tracked::new(Resource::Consumer, &[&node]);
        assert_eq!(node.get(Resource::Consumer), 2);
        assert_eq!(worker.get(Resource::Consumer), 1);
        drop(a);
        assert_eq!(worker.get(Resource::Consumer), 0);
        drop(b);
        assert_eq!(node.snapshot(), CountsSnapshot::default());
    }
}
