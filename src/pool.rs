//! [`WorkerPool`]: the node's mediasoup workers. It starts one
//! [`WorkerActor`] per slot, publishes the live ones on the
//! [`WorkerBoard`] that rooms place participants with, and replaces a
//! worker that dies (telling the room registry, which tells every room).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use mafalda_actors::NodeId;
use mediasoup::prelude::WorkerManager;
use mediasoup::worker::WorkerId;
use serde::Serialize;
use tracing::Span;

use crate::config::Config;
use crate::ids::WorkerSlot;
use crate::metrics::{Counters, CountsSnapshot, Tallies};
use crate::placement::{CpuGauge, Seat, WorkerBoard};
use crate::room::WorkerLost;
use crate::worker::{
    spawn_worker, KillWorker, MediaTotals, SpawnWorkerError, SpawnedWorker, StopWorker,
    WorkerActor, WorkerDied,
};

#[derive(Debug)]
struct WorkerEntry {
    addr: Option<Addr<WorkerActor>>,
    worker_id: Option<WorkerId>,
    counters: Arc<Counters>,
    cpu: Arc<CpuGauge>,
    tid: Arc<AtomicU32>,
    restarts: u32,
}

/// The node's workers.
pub struct WorkerPool {
    node: NodeId,
    config: Arc<Config>,
    node_counters: Arc<Counters>,
    tallies: Arc<Tallies>,
    board: Arc<WorkerBoard>,
    manager: WorkerManager,
    workers: Vec<WorkerEntry>,
    /// Told when a worker is lost, to tell the rooms.
    on_lost: Recipient<WorkerLost>,
    span: Span,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("node", &self.node)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// Spawns `config.worker_count()` workers and starts the pool actor,
    /// which publishes them on `board`. `on_lost` hears of every worker
    /// that dies. Each worker adds the RTP it carries to its slot's totals
    /// in `tallies`.
    pub async fn start(
        node: NodeId,
        config: Arc<Config>,
        node_counters: Arc<Counters>,
        tallies: Arc<Tallies>,
        board: Arc<WorkerBoard>,
        on_lost: Recipient<WorkerLost>,
    ) -> Result<Addr<WorkerPool>, SpawnWorkerError> {
        let manager = WorkerManager::new();
        let mut spawned = Vec::new();
        for i in 0..config.worker_count() {
            spawned.push(spawn_worker(&manager, &config, WorkerSlot(i)).await?);
        }
        Ok(WorkerPool::create(move |ctx| {
            let span = tracing::info_span!("pool", node = %node, room = tracing::field::Empty);
            let mut pool = WorkerPool {
                node,
                config,
                node_counters,
                tallies,
                board,
                manager,
                workers: Vec::new(),
                on_lost,
                span,
            };
            for (i, worker) in spawned.into_iter().enumerate() {
                let entry = pool.start_worker(WorkerSlot(i), worker, 0, ctx);
                pool.workers.push(entry);
            }
            pool
        }))
    }

    /// Starts the actor of a freshly spawned worker and publishes it on the
    /// board.
    fn start_worker(
        &self,
        slot: WorkerSlot,
        spawned: SpawnedWorker,
        restarts: u32,
        ctx: &mut Context<Self>,
    ) -> WorkerEntry {
        let media = MediaTotals {
            // The pool has one slot per configured worker, and so do the
            // tallies; a slot past them (never) gets totals of its own.
            totals: self.tallies.rtp(slot.0).cloned().unwrap_or_default(),
            period: self.config.workers.stats_interval(),
        };
        let actor = WorkerActor::new(
            self.node.as_str(),
            slot,
            spawned,
            Arc::clone(&self.node_counters),
            media,
            ctx.address().recipient(),
        );
        let (counters, cpu, worker_id, tid) = (
            actor.counters(),
            actor.cpu(),
            actor.worker_id(),
            actor.tid(),
        );
        let addr = actor.start();
        self.board.set(
            slot,
            Some(Seat {
                slot,
                addr: addr.clone(),
                worker_id,
                counters: Arc::clone(&counters),
                cpu: Arc::clone(&cpu),
            }),
        );
        WorkerEntry {
            addr: Some(addr),
            worker_id: Some(worker_id),
            counters,
            cpu,
            tid,
            restarts,
        }
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!(workers = self.workers.len(), "worker pool started");
    }
}

impl Handler<WorkerDied> for WorkerPool {
    type Result = ();
    fn handle(&mut self, msg: WorkerDied, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::error!(worker = %msg.slot, worker_id = %msg.worker_id, reason = %msg.reason, "mediasoup worker died; spawning a replacement");
        let Some(entry) = self.workers.get_mut(msg.slot.0) else {
            return;
        };
        let Some(addr) = entry.addr.take() else {
            // Already handled (mediasoup and the actor may both report it).
            return;
        };
        addr.do_send(StopWorker);
        entry.restarts += 1;
        self.board.set(msg.slot, None);
        // Every room drops its router on the dead worker and the peers placed
        // there; peers on other workers stay.
        let worker_id = entry.worker_id.take().unwrap_or(msg.worker_id);
        self.on_lost.do_send(WorkerLost {
            slot: msg.slot,
            worker_id,
            reason: format!("worker {} died: {}", msg.slot, msg.reason),
        });
        let manager = self.manager.clone();
        let config = Arc::clone(&self.config);
        let slot = msg.slot;
        ctx.spawn(
            async move { spawn_worker(&manager, &config, slot).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let _e = act.span.clone().entered();
                    match res {
                        Ok(spawned) => {
                            let restarts = act.workers[slot.0].restarts;
                            act.workers[slot.0] = act.start_worker(slot, spawned, restarts, ctx);
                            tracing::info!(worker = %slot, "replacement worker started");
                        }
                        Err(e) => tracing::error!(error = %e, "cannot replace worker"),
                    }
                }),
        );
    }
}

/// One worker in the status report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// Slot index.
    pub slot: usize,
    /// Whether a live worker fills the slot.
    pub alive: bool,
    /// How many times the slot's worker was replaced.
    pub restarts: u32,
    /// CPU use of the worker's thread over the last second, in percent of
    /// one core.
    pub cpu_percent: f64,
    /// The Linux TID of the worker's thread (for `top -H`, `perf`), once
    /// known.
    pub thread_id: Option<u32>,
    /// Live resources on it.
    #[serde(flatten)]
    pub counts: CountsSnapshot,
}

/// Asks for every worker's status.
#[derive(Debug, Message)]
#[rtype(result = "Vec<WorkerStatus>")]
pub struct GetWorkers;

impl Handler<GetWorkers> for WorkerPool {
    type Result = MessageResult<GetWorkers>;
    fn handle(&mut self, _msg: GetWorkers, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.workers
                .iter()
                .enumerate()
                .map(|(slot, w)| WorkerStatus {
                    slot,
                    alive: w.addr.as_ref().is_some_and(Addr::connected),
                    restarts: w.restarts,
                    cpu_percent: (w.cpu.get() * 10.0).round() / 10.0,
                    thread_id: Some(w.tid.load(Ordering::Relaxed)).filter(|t| *t != 0),
                    counts: w.counters.snapshot(),
                })
                .collect(),
        )
    }
}

/// Treats the worker in `slot` as crashed (see [`KillWorker`]): rooms drop
/// it and its peers get a `reconnect` event; the slot is refilled. For tests
/// and failure drills. Answers whether a live worker was there.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct KillWorkerInSlot {
    /// Which slot.
    pub slot: WorkerSlot,
}

impl Handler<KillWorkerInSlot> for WorkerPool {
    type Result = bool;
    fn handle(&mut self, msg: KillWorkerInSlot, _ctx: &mut Self::Context) -> bool {
        match self.workers.get(msg.slot.0).and_then(|w| w.addr.as_ref()) {
            Some(addr) => {
                addr.do_send(KillWorker);
                true
            }
            None => false,
        }
    }
}

/// Stops every worker and the pool.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopPool;

impl Handler<StopPool> for WorkerPool {
    type Result = ();
    fn handle(&mut self, _msg: StopPool, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("worker pool stopping");
        for w in &self.workers {
            if let Some(addr) = &w.addr {
                addr.do_send(StopWorker);
            }
        }
        ctx.stop();
    }
}
