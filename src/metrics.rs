//! Resource accounting, and the node's running totals.
//!
//! Every mediasoup entity the node creates is tracked by a [`Tracked`] guard
//! that is moved into the entity's `on_close` callback: the count goes down
//! exactly once, whether the entity was closed on purpose, by its parent
//! closing, or by its worker dying. `/api/status` reads these counts, and the
//! tests use them to prove that nothing leaks.
//!
//! [`Tallies`] are what only ever grows: joins refused and spilled,
//! admissions decided for other nodes, RTP carried by each worker slot.
//! `/metrics` exports them as counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::media_stats::RtpTotals;

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

/// Counts by a key from a small fixed set (error codes, outcomes).
#[derive(Debug, Default)]
pub struct KeyedCounts(Mutex<BTreeMap<String, u64>>);

impl KeyedCounts {
    /// Counts one more `key`.
    pub fn add(&self, key: &str) {
        let mut counts = self.0.lock();
        match counts.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                counts.insert(key.to_owned(), 1);
            }
        }
    }

    /// Every key counted so far, with its count, by key.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.0.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The node's running totals (see the module docs); shared by the
/// signalling sessions, the spill-over actor, the workers and `/metrics`.
#[derive(Debug)]
pub struct Tallies {
    rtp: Vec<Arc<RtpTotals>>,
    joins_refused: KeyedCounts,
    joins_spilled: AtomicU64,
    joins_spill_missed: AtomicU64,
    spill_admissions: KeyedCounts,
}

impl Tallies {
    /// Totals for a node of `workers` worker slots.
    pub fn new(workers: usize) -> Self {
        Self {
            rtp: (0..workers).map(|_| Arc::default()).collect(),
            joins_refused: KeyedCounts::default(),
            joins_spilled: AtomicU64::new(0),
            joins_spill_missed: AtomicU64::new(0),
            spill_admissions: KeyedCounts::default(),
        }
    }

    /// The RTP totals of worker slot `slot` (they outlive the slot's
    /// workers: a replacement adds to them); `None` past the last slot.
    pub fn rtp(&self, slot: usize) -> Option<&Arc<RtpTotals>> {
        self.rtp.get(slot)
    }

    /// The RTP totals of every slot, by slot.
    pub fn rtp_slots(&self) -> &[Arc<RtpTotals>] {
        &self.rtp
    }

    /// A join was refused to a client of this node with error `code`.
    pub fn join_refused(&self, code: &str) {
        self.joins_refused.add(code);
    }

    /// Joins refused so far, by error code.
    pub fn joins_refused(&self) -> Vec<(String, u64)> {
        self.joins_refused.snapshot()
    }

    /// This node, full, placed a joining participant on a peer.
    pub fn join_spilled(&self) {
        self.joins_spilled.fetch_add(1, Ordering::Relaxed);
    }

    /// Joins placed on a peer so far.
    pub fn joins_spilled(&self) -> u64 {
        self.joins_spilled.load(Ordering::Relaxed)
    }

    /// This node was full and no peer admitted a joining participant: it
    /// serves it itself.
    pub fn join_spill_missed(&self) {
        self.joins_spill_missed.fetch_add(1, Ordering::Relaxed);
    }

    /// Joins served here, full, so far.
    pub fn joins_spill_missed(&self) -> u64 {
        self.joins_spill_missed.load(Ordering::Relaxed)
    }

    /// Another node asked this one to admit a participant: `outcome` is
    /// `admitted`, or why not.
    pub fn spill_admission(&self, outcome: &str) {
        self.spill_admissions.add(outcome);
    }

    /// Admissions decided so far, by outcome.
    pub fn spill_admissions(&self) -> Vec<(String, u64)> {
        self.spill_admissions.snapshot()
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

    #[test]
    fn keyed_counts_count_by_key() {
        let k = KeyedCounts::default();
        k.add("draining");
        k.add("bad_request");
        k.add("draining");
        assert_eq!(
            k.snapshot(),
            [("bad_request".to_owned(), 1), ("draining".to_owned(), 2)]
        );
    }
}
