//! RTP packets and bytes each worker carried, sampled from mediasoup's
//! statistics rather than counted per packet.
//!
//! A worker's [`MediaSampler`] hears of every producer and consumer made on
//! its routers (the routers' `on_new_transport` and the transports'
//! `on_new_producer` / `on_new_consumer` callbacks) and keeps weak handles
//! on them. Every `workers.stats_interval_ms` the worker actor runs
//! [`MediaSampler::sample`]: each live producer and consumer is asked its
//! stats, one at a time (mediasoup's own counts of packets and bytes
//! received by a producer, sent by a consumer), and what it carried since
//! the previous sample is added to the worker slot's [`RtpTotals`].
//!
//! The totals only grow. A producer or consumer that closes keeps what it
//! added; what it carried after its last sample is not counted (at most one
//! interval's worth). A count that goes down (a stream mediasoup replaced)
//! becomes the new base. The totals belong to the slot, so a worker that
//! dies and is replaced adds to the same totals.
//!
//! Producers count what comes *in* to the worker, consumers what goes
//! *out*; each on a pipe transport (from or to another worker or node) is
//! counted as [`Path::Pipe`], every other one as [`Path::Client`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mediasoup::consumer::{Consumer, ConsumerId, ConsumerRtpStreamStat, WeakConsumer};
use mediasoup::prelude::Transport;
use mediasoup::producer::{Producer, ProducerId, WeakProducer};
use mediasoup::router::{NewTransport, Router};
use parking_lot::Mutex;

/// Whose media: clients' (WebRTC and plain transports) or pipes' (between
/// workers or nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Participants' transports.
    Client,
    /// Pipe transports.
    Pipe,
}

impl Path {
    /// Both, in label order.
    pub const ALL: [Path; 2] = [Path::Client, Path::Pipe];

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Client => "client",
            Path::Pipe => "pipe",
        }
    }
}

/// Into the worker (producers) or out of it (consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the worker.
    In,
    /// Sent by the worker.
    Out,
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpCounts {
    /// RTP packets.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl RtpCounts {
    /// What was carried between `before` and `self`; nothing when a count
    /// went down (the caller rebases on `self`).
    fn since(self, before: RtpCounts) -> RtpCounts {
        if self.packets < before.packets || self.bytes < before.bytes {
            RtpCounts::default()
        } else {
            RtpCounts {
                packets: self.packets - before.packets,
                bytes: self.bytes - before.bytes,
            }
        }
    }
}

#[derive(Debug, Default)]
struct Cell {
    packets: AtomicU64,
    bytes: AtomicU64,
}

/// RTP carried by one worker slot since the node started, by path and
/// direction; only grows.
#[derive(Debug, Default)]
pub struct RtpTotals {
    /// `[path][direction]`.
    cells: [[Cell; 2]; 2],
}

impl RtpTotals {
    fn cell(&self, path: Path, dir: Direction) -> &Cell {
        &self.cells[path as usize][dir as usize]
    }

    /// Adds `counts` to one path and direction.
    pub fn add(&self, path: Path, dir: Direction, counts: RtpCounts) {
        let c = self.cell(path, dir);
        c.packets.fetch_add(counts.packets, Ordering::Relaxed);
        c.bytes.fetch_add(counts.bytes, Ordering::Relaxed);
    }

    /// The totals of one path and direction.
    pub fn get(&self, path: Path, dir: Direction) -> RtpCounts {
        let c = self.cell(path, dir);
        RtpCounts {
            packets: c.packets.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Producer(ProducerId),
    Consumer(ConsumerId),
}

#[derive(Debug, Clone)]
enum Handle {
    Producer(WeakProducer),
    Consumer(WeakConsumer),
}

#[derive(Debug)]
struct Watched {
    path: Path,
    handle: Handle,
    /// Its counts at the previous sample.
    seen: RtpCounts,
}

/// The producers and consumers of one worker, sampled for [`RtpTotals`]
/// (see the module docs). Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct MediaSampler {
    watched: Arc<Mutex<HashMap<Key, Watched>>>,
    totals: Arc<RtpTotals>,
}

impl MediaSampler {
    /// A sampler adding to `totals`.
    pub fn new(totals: Arc<RtpTotals>) -> Self {
        Self {
            watched: Arc::default(),
            totals,
        }
    }

    /// Watches every producer and consumer that will be made on `router`'s
    /// transports.
    pub fn watch_router(&self, router: &Router) {
        let me = self.clone();
        router
            .on_new_transport(move |t| {
                let path = match t {
                    NewTransport::Pipe(_) => Path::Pipe,
                    _ => Path::Client,
                };
                me.watch_transport(&*t, path);
            })
            .detach();
    }

    fn watch_transport(&self, transport: &dyn Transport, path: Path) {
        let me = self.clone();
        transport
            .on_new_producer(Arc::new(move |p: &Producer| {
                me.watch(Key::Producer(p.id()), path, Handle::Producer(p.downgrade()));
            }))
            .detach();
        let me = self.clone();
        transport
            .on_new_consumer(Arc::new(move |c: &Consumer| {
                me.watch(Key::Consumer(c.id()), path, Handle::Consumer(c.downgrade()));
            }))
            .detach();
    }

    fn watch(&self, key: Key, path: Path, handle: Handle) {
        self.watched.lock().insert(
            key,
            Watched {
                path,
                handle,
                seen: RtpCounts::default(),
            },
        );
    }

    /// How many producers and consumers are watched.
    pub fn watched(&self) -> usize {
        self.watched.lock().len()
    }

    /// One sample: every live producer and consumer is asked its stats, in
    /// turn, and what each carried since the previous sample is added to
    /// the totals. Closed ones are forgotten. Each is held only while its
    /// own request runs, so that sampling never keeps one open.
    pub async fn sample(&self) {
        let handles: Vec<(Key, Handle)> = self
            .watched
            .lock()
            .iter()
            .map(|(k, w)| (*k, w.handle.clone()))
            .collect();
        for (key, handle) in handles {
            match read_counts(&handle).await {
                Read::Counts(now) => self.record(&key, now),
                Read::Gone => {
                    self.watched.lock().remove(&key);
                }
                Read::Failed => {}
            }
        }
    }

    /// Adds what `key` carried since its previous sample, and rebases it.
    fn record(&self, key: &Key, now: RtpCounts) {
        let mut watched = self.watched.lock();
        let Some(w) = watched.get_mut(key) else {
            return;
        };
        let carried = now.since(w.seen);
        w.seen = now;
        let dir = match key {
            Key::Producer(_) => Direction::In,
            Key::Consumer(_) => Direction::Out,
        };
        self.totals.add(w.path, dir, carried);
    }
}

enum Read {
    Counts(RtpCounts),
    /// Closed, or dropped by its owner.
    Gone,
    /// mediasoup did not answer (the worker is busy or dying): try again
    /// at the next sample.
    Failed,
}

async fn read_counts(handle: &Handle) -> Read {
    match handle {
        Handle::Producer(weak) => {
            let Some(p) = weak.upgrade().filter(|p| !p.closed()) else {
                return Read::Gone;
            };
            match p.get_stats().await {
                Ok(stats) => {
                    Read::Counts(stats.iter().fold(RtpCounts::default(), |acc, s| RtpCounts {
                        packets: acc.packets.saturating_add(s.packet_count),
                        bytes: acc.bytes.saturating_add(s.byte_count),
                    }))
                }
                Err(_) if p.closed() => Read::Gone,
                Err(_) => Read::Failed,
            }
        }
        Handle::Consumer(weak) => {
            let Some(c) = weak.upgrade().filter(|c| !c.closed()) else {
                return Read::Gone;
            };
            match c.get_stats().await {
                // A consumer's stats may carry its producer's stream too
                // (`Inbound`): only what it sent counts.
                Ok(stats) => {
                    Read::Counts(stats.iter().fold(RtpCounts::default(), |acc, s| match s {
                        ConsumerRtpStreamStat::Outbound(s) => RtpCounts {
                            packets: acc.packets.saturating_add(s.packet_count),
                            bytes: acc.bytes.saturating_add(s.byte_count),
                        },
                        ConsumerRtpStreamStat::Inbound(_) => acc,
                    }))
                }
                Err(_) if c.closed() => Read::Gone,
                Err(_) => Read::Failed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_since_the_last_sample_and_a_count_going_down_rebases() {
        let c = |packets, bytes| RtpCounts { packets, bytes };
        assert_eq!(c(10, 1000).since(c(4, 400)), c(6, 600));
        assert_eq!(c(3, 300).since(c(4, 400)), c(0, 0));
        let t = RtpTotals::default();
        t.add(Path::Pipe, Direction::Out, c(2, 20));
        t.add(Path::Pipe, Direction::Out, c(1, 10));
        assert_eq!(t.get(Path::Pipe, Direction::Out), c(3, 30));
        assert_eq!(t.get(Path::Client, Direction::Out), c(0, 0));
        assert_eq!(t.get(Path::Pipe, Direction::In), c(0, 0));
    }
}
