//! Placement: which worker a new participant's transports go to.
//!
//! The [`WorkerBoard`] is the node's live view of its workers (written by the
//! [`WorkerPool`](crate::pool::WorkerPool), read by every room). Each
//! worker's load is `producers + consumers` from its [`Counters`] (pipe
//! producers and consumers included) and the CPU share of its thread, sampled
//! by the [`WorkerActor`]. A worker's *score* is the largest of
//! `load / worker_capacity`, `peers / worker_max_peers` (when that is set)
//! and `cpu% / 100` (CPU below [`CPU_NOISE_FLOOR_PERCENT`] counts as idle).
//! A node whose every worker scores at or above `watermark` is *full*
//! ([`Headroom`]): new participants then spill to another node
//! ([`crate::spill`]).
//!
//! - `pack` gives the participant to the first worker (in slot order) whose
//!   score is below `watermark`; when every worker is above it, the
//!   least-scored one.
//! - `spread` gives it to the least-scored worker. Scores are compared in
//!   bands of 5 % so that noise does not dominate; within a band the worker
//!   with the fewest peers wins, then the lowest slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::Addr;
use mediasoup::worker::WorkerId;

use crate::config::{PlacementMode, PlacementSection};
use crate::ids::WorkerSlot;
use crate::metrics::{Counters, Resource};
use crate::worker::WorkerActor;

/// A CPU percentage shared between a worker actor (writer) and placement.
#[derive(Debug, Default)]
pub struct CpuGauge(AtomicU64);

impl CpuGauge {
    /// The last sample, in percent of one core.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Records a sample.
    pub fn set(&self, percent: f64) {
        self.0.store(percent.to_bits(), Ordering::Relaxed);
    }
}

/// One live worker as placement sees it.
#[derive(Debug, Clone)]
pub struct Seat {
    /// The slot.
    pub slot: WorkerSlot,
    /// Its actor.
    pub addr: Addr<WorkerActor>,
    /// The mediasoup worker filling the slot.
    pub worker_id: WorkerId,
    /// What lives on it.
    pub counters: Arc<Counters>,
    /// Its thread's CPU use.
    pub cpu: Arc<CpuGauge>,
}

impl Seat {
    /// The worker's load now.
    pub fn load(&self) -> Load {
        Load {
            units: self.counters.get(Resource::Producer) + self.counters.get(Resource::Consumer),
            cpu_percent: self.cpu.get(),
            peers: self.counters.get(Resource::Peer),
        }
    }
}

/// The load figures placement compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Producers + consumers.
    pub units: i64,
    /// CPU percent of one core.
    pub cpu_percent: f64,
    /// Peers placed on the worker.
    pub peers: i64,
}

/// CPU use below this share of a core does not count in a worker's score.
///
/// A worker that far from CPU-bound has plenty of room; what the sampler sees
/// there is bursts (DTLS handshakes, transport creation) at 10 ms tick
/// granularity, which would make placement jitter between idle workers.
pub const CPU_NOISE_FLOOR_PERCENT: f64 = 20.0;

impl Load {
    /// The worker's score: the largest of its units over
    /// `worker_capacity`, its peers over `worker_max_peers` (when set), and
    /// its CPU share of one core.
    pub fn score(&self, config: &PlacementSection) -> f64 {
        let units = self.units.max(0) as f64 / f64::from(config.worker_capacity.max(1));
        let peers = if config.worker_max_peers == 0 {
            0.0
        } else {
            self.peers.max(0) as f64 / f64::from(config.worker_max_peers)
        };
        let cpu = if self.cpu_percent < CPU_NOISE_FLOOR_PERCENT {
            0.0
        } else {
            self.cpu_percent / 100.0
        };
        units.max(peers).max(cpu)
    }
}

/// How much more a node can take, from its workers' scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headroom {
    /// The lowest score of its live workers (`f64::INFINITY` without any).
    pub score: f64,
    /// Every live worker is at or above the watermark (or none is live): a
    /// new participant should go to another node.
    pub full: bool,
}

/// The headroom of a node whose live workers have `loads`.
pub fn headroom(loads: &[Load], config: &PlacementSection) -> Headroom {
    let score = loads
        .iter()
        .map(|l| l.score(config))
        .fold(f64::INFINITY, f64::min);
    Headroom {
        score,
        full: score >= config.watermark,
    }
}

/// The band of a score, in steps of 5 %: placement compares bands, so that
/// noise does not decide (an infinite or NaN score is the last band).
pub fn band(score: f64) -> i64 {
    if score.is_finite() {
        (score * 20.0).floor() as i64
    } else {
        i64::MAX
    }
}

/// Picks an index into `loads` (live workers in slot order), or `None` when
/// there are none.
pub fn choose(loads: &[Load], config: &PlacementSection) -> Option<usize> {
    let band = |l: &Load| band(l.score(config));
    let least = || {
        loads
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (band(l), l.peers, *i))
            .map(|(i, _)| i)
    };
    match config.mode {
        PlacementMode::Spread => least(),
        PlacementMode::Pack => loads
            .iter()
            .position(|l| l.score(config) < config.watermark)
            .or_else(least),
    }
}

/// The node's workers, by slot.
#[derive(Debug)]
pub struct WorkerBoard {
    seats: RwLock<Vec<Option<Seat>>>,
}

impl WorkerBoard {
    /// A board of `slots` empty slots.
    pub fn new(slots: usize) -> Self {
        Self {
            seats: RwLock::new(vec![None; slots]),
        }
    }

    /// Fills or empties a slot.
    pub fn set(&self, slot: WorkerSlot, seat: Option<Seat>) {
        let mut seats = self.seats.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = seats.get_mut(slot.0) {
            *s = seat;
        }
    }

    /// The live worker in a slot.
    pub fn get(&self, slot: WorkerSlot) -> Option<Seat> {
        let seats = self.seats.read().unwrap_or_else(|e| e.into_inner());
        seats
            .get(slot.0)
            .cloned()
            .flatten()
            .filter(|s| s.addr.connected())
    }

    /// Every live worker, in slot order.
    pub fn live(&self) -> Vec<Seat> {
        let seats = self.seats.read().unwrap_or_else(|e| e.into_inner());
        seats
            .iter()
            .flatten()
            .filter(|s| s.addr.connected())
            .cloned()
            .collect()
    }

    /// The worker a new participant should go to.
    pub fn pick(&self, config: &PlacementSection) -> Option<Seat> {
        let live = self.live();
        let loads: Vec<Load> = live.iter().map(Seat::load).collect();
        choose(&loads, config).map(|i| live[i].clone())
    }

    /// How much more this node's workers can take.
    pub fn headroom(&self, config: &PlacementSection) -> Headroom {
        let loads: Vec<Load> = self.live().iter().map(Seat::load).collect();
        headroom(&loads, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(units: i64, cpu_percent: f64, peers: i64) -> Load {
        Load {
            units,
            cpu_percent,
            peers,
        }
    }

    fn cfg(mode: PlacementMode) -> PlacementSection {
        PlacementSection {
            mode,
            worker_capacity: 100,
            watermark: 0.6,
            ..PlacementSection::default()
        }
    }

    #[test]
    fn pack_fills_up_to_the_watermark_then_moves_on() {
        let c = cfg(PlacementMode::Pack);
        assert_eq!(choose(&[load(0, 0.0, 0), load(0, 0.0, 0)], &c), Some(0));
        assert_eq!(choose(&[load(59, 0.0, 9), load(0, 0.0, 0)], &c), Some(0));
        assert_eq!(choose(&[load(60, 0.0, 9), load(0, 0.0, 0)], &c), Some(1));
        // CPU counts too.
        assert_eq!(choose(&[load(1, 75.0, 1), load(0, 0.0, 0)], &c), Some(1));
        // Everything above the watermark: the least loaded.
        assert_eq!(choose(&[load(90, 0.0, 1), load(70, 0.0, 5)], &c), Some(1));
    }

    #[test]
    fn spread_picks_the_least_loaded_then_fewest_peers() {
        let c = cfg(PlacementMode::Spread);
        assert_eq!(choose(&[load(0, 0.0, 1), load(0, 0.0, 0)], &c), Some(1));
        assert_eq!(choose(&[load(0, 0.0, 0), load(0, 0.0, 0)], &c), Some(0));
        assert_eq!(choose(&[load(40, 0.0, 0), load(10, 0.0, 7)], &c), Some(1));
        // Noise within a 5 % band does not decide.
        assert_eq!(choose(&[load(1, 0.5, 0), load(0, 0.0, 1)], &c), Some(0));
        assert_eq!(choose(&[], &c), None);
    }

    #[test]
    fn peer_limit_counts_in_the_score() {
        let mut c = cfg(PlacementMode::Pack);
        assert_eq!(choose(&[load(2, 0.0, 2), load(0, 0.0, 0)], &c), Some(0));
        c.worker_max_peers = 2;
        assert_eq!(choose(&[load(2, 0.0, 2), load(0, 0.0, 0)], &c), Some(1));
        assert_eq!(choose(&[load(2, 0.0, 1), load(0, 0.0, 0)], &c), Some(0));
    }

    #[test]
    fn headroom_is_the_best_worker() {
        let c = cfg(PlacementMode::Pack);
        let h = headroom(&[load(90, 0.0, 1), load(30, 0.0, 5)], &c);
        assert!((h.score - 0.3).abs() < 1e-9 && !h.full);
        assert!(headroom(&[load(60, 0.0, 1), load(70, 0.0, 5)], &c).full);
        // No live worker: full.
        assert!(headroom(&[], &c).full);
    }
}
