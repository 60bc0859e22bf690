//! [`ServerActor`]: the node. It owns the workers, the room registry, the
//! node's counters and the [`WorkerBoard`] that rooms place participants
//! with, and replaces workers that die (telling every room, which drops its
//! router on the dead worker and the peers placed there).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use mediasoup::prelude::WorkerManager;
use serde::Serialize;
use tracing::Span;

use crate::config::Config;
use crate::ids::{RoomId, WorkerSlot};
use crate::metrics::{Counters, CountsSnapshot};
use crate::placement::{CpuGauge, Seat, WorkerBoard};
use crate::room::{RoomActor, RoomClosed, RoomEnv, WorkerLost};
use crate::worker::{spawn_worker, KillWorker, WorkerActor, WorkerDied};

/// Error finding or creating a room.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GetRoomError {
    /// Every worker is dead (replacements are being spawned).
    #[error("no mediasoup worker is available on this node")]
    NoWorker,
}

#[derive(Debug)]
struct WorkerEntry {
    addr: Option<Addr<WorkerActor>>,
    worker_id: Option<mediasoup::worker::WorkerId>,
    counters: Arc<Counters>,
    cpu: Arc<CpuGauge>,
    tid: Arc<std::sync::atomic::AtomicU32>,
    restarts: u32,
}

impl WorkerEntry {
    /// Starts the actor of a freshly spawned worker and publishes it on the
    /// board.
    fn start(
        node: &str,
        slot: WorkerSlot,
        spawned: crate::worker::SpawnedWorker,
        env: &RoomEnv,
        server: Recipient<WorkerDied>,
        restarts: u32,
    ) -> Self {
        let actor = WorkerActor::new(node, slot, spawned, Arc::clone(&env.counters), server);
        let (counters, cpu, worker_id, tid) = (
            actor.counters(),
            actor.cpu(),
            actor.worker_id(),
            actor.tid(),
        );
        let addr = actor.start();
        env.workers.set(
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

/// The node actor.
pub struct ServerActor {
    env: Arc<RoomEnv>,
    manager: WorkerManager,
    workers: Vec<WorkerEntry>,
    rooms: HashMap<RoomId, Addr<RoomActor>>,
    span: Span,
}

impl std::fmt::Debug for ServerActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerActor")
            .field("node", &self.env.node)
            .field("workers", &self.workers.len())
            .field("rooms", &self.rooms.len())
            .finish_non_exhaustive()
    }
}

impl ServerActor {
    /// Starts the node actor and its workers (one actor per worker).
    ///
    /// `counters` are the node-wide counters; the caller may share them with
    /// other reporters (status, cluster gossip).
    pub async fn start(
        config: Arc<Config>,
        counters: Arc<Counters>,
    ) -> Result<Addr<ServerActor>, crate::worker::SpawnWorkerError> {
        let node: Arc<str> = Arc::from(config.node.name.as_str());
        let manager = WorkerManager::new();
        let mut workers = Vec::new();
        for i in 0..config.worker_count() {
            workers.push(spawn_worker(&manager, &config, WorkerSlot(i)).await?);
        }
        let env = Arc::new(RoomEnv {
            node: Arc::clone(&node),
            workers: Arc::new(WorkerBoard::new(workers.len())),
            config,
            counters,
        });
        Ok(ServerActor::create(move |ctx| {
            let entries = workers
                .into_iter()
                .enumerate()
                .map(|(i, spawned)| {
                    WorkerEntry::start(
                        &node,
                        WorkerSlot(i),
                        spawned,
                        &env,
                        ctx.address().recipient(),
                        0,
                    )
                })
                .collect();
            ServerActor {
                span: tracing::info_span!("server", node = %node, room = tracing::field::Empty),
                env,
                manager,
                workers: entries,
                rooms: HashMap::new(),
            }
        }))
    }
}

impl Actor for ServerActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!(workers = self.workers.len(), "node started");
    }
}

/// Finds a room, creating it when needed. Participants are placed on workers
/// when they join, not rooms.
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<RoomActor>, GetRoomError>")]
pub struct GetOrCreateRoom {
    /// The room.
    pub room: RoomId,
}

impl Handler<GetOrCreateRoom> for ServerActor {
    type Result = Result<Addr<RoomActor>, GetRoomError>;

    fn handle(&mut self, msg: GetOrCreateRoom, ctx: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.rooms.get(&msg.room) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        if self.env.workers.live().is_empty() {
            return Err(GetRoomError::NoWorker);
        }
        let room = RoomActor::new(
            msg.room.clone(),
            Arc::clone(&self.env),
            ctx.address().recipient(),
        )
        .start();
        self.rooms.insert(msg.room, room.clone());
        Ok(room)
    }
}

impl Handler<RoomClosed> for ServerActor {
    type Result = ();
    fn handle(&mut self, msg: RoomClosed, _ctx: &mut Self::Context) {
        if matches!(self.rooms.get(&msg.room), Some(addr) if *addr == msg.addr) {
            self.rooms.remove(&msg.room);
        }
    }
}

impl Handler<WorkerDied> for ServerActor {
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
        addr.do_send(crate::worker::StopWorker);
        entry.restarts += 1;
        self.env.workers.set(msg.slot, None);
        // Every room drops its router on the dead worker and the peers placed
        // there; peers on other workers stay.
        let worker_id = entry.worker_id.take().unwrap_or(msg.worker_id);
        for room in self.rooms.values() {
            room.do_send(WorkerLost {
                slot: msg.slot,
                worker_id,
                reason: format!("worker {} died: {}", msg.slot, msg.reason),
            });
        }
        let manager = self.manager.clone();
        let config = Arc::clone(&self.env.config);
        let slot = msg.slot;
        ctx.spawn(
            async move { spawn_worker(&manager, &config, slot).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let _e = act.span.clone().entered();
                    match res {
                        Ok(spawned) => {
                            let restarts = act.workers[slot.0].restarts;
                            act.workers[slot.0] = WorkerEntry::start(
                                &act.env.node,
                                slot,
                                spawned,
                                &act.env,
                                ctx.address().recipient(),
                                restarts,
                            );
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

/// The node status served at `/api/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Node name.
    pub node: String,
    /// Number of live workers.
    pub workers: usize,
    /// Rooms.
    pub rooms: i64,
    /// Peers.
    pub peers: i64,
    /// Routers.
    pub routers: i64,
    /// Transports.
    pub transports: i64,
    /// Producers.
    pub producers: i64,
    /// Consumers.
    pub consumers: i64,
    /// Per worker.
    pub worker_details: Vec<WorkerStatus>,
}

/// Asks for the node status.
#[derive(Debug, Message)]
#[rtype(result = "NodeStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for ServerActor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Self::Context) -> Self::Result {
        let c = self.env.counters.snapshot();
        let worker_details: Vec<WorkerStatus> = self
            .workers
            .iter()
            .enumerate()
            .map(|(slot, w)| WorkerStatus {
                slot,
                alive: w.addr.as_ref().is_some_and(Addr::connected),
                restarts: w.restarts,
                cpu_percent: (w.cpu.get() * 10.0).round() / 10.0,
                thread_id: Some(w.tid.load(std::sync::atomic::Ordering::Relaxed))
                    .filter(|t| *t != 0),
                counts: w.counters.snapshot(),
            })
            .collect();
        MessageResult(NodeStatus {
            node: self.env.node.to_string(),
            workers: worker_details.iter().filter(|w| w.alive).count(),
            rooms: c.rooms,
            peers: c.peers,
            routers: c.routers,
            transports: c.transports,
            producers: c.producers,
            consumers: c.consumers,
            worker_details,
        })
    }
}

/// Treats the worker in `slot` as crashed (see [`KillWorker`]): rooms drop
/// it and its peers get a `reconnect` event; the slot is refilled. For tests
/// and failure drills.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct KillWorkerInSlot {
    /// Which slot.
    pub slot: WorkerSlot,
}

impl Handler<KillWorkerInSlot> for ServerActor {
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

/// Stops the node actor and every worker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for ServerActor {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("node stopping");
        for room in self.rooms.values() {
            room.do_send(crate::room::CloseRoom("node shutting down".into()));
        }
        for w in &self.workers {
            if let Some(addr) = &w.addr {
                addr.do_send(crate::worker::StopWorker);
            }
        }
        ctx.stop();
    }
}
