//! [`ServerActor`]: the node. It owns the workers, the room registry and the
//! node's counters, places new rooms on the least-loaded worker, and replaces
//! workers that die.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use mediasoup::prelude::WorkerManager;
use serde::Serialize;
use tracing::Span;

use crate::config::Config;
use crate::ids::{RoomId, WorkerSlot};
use crate::metrics::{Counters, CountsSnapshot, Resource};
use crate::room::{RoomActor, RoomClosed, RoomEnv};
use crate::worker::{spawn_worker, WorkerActor, WorkerDied};

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
    counters: Arc<Counters>,
    restarts: u32,
}

/// The node actor.
pub struct ServerActor {
    env: Arc<RoomEnv>,
    manager: WorkerManager,
    workers: Vec<WorkerEntry>,
    rooms: HashMap<RoomId, (Addr<RoomActor>, WorkerSlot)>,
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
    pub async fn start(
        config: Arc<Config>,
    ) -> Result<Addr<ServerActor>, crate::worker::SpawnWorkerError> {
        let node: Arc<str> = Arc::from(config.node.name.as_str());
        let counters = Arc::new(Counters::default());
        let manager = WorkerManager::new();
        let mut workers = Vec::new();
        for i in 0..config.worker_count() {
            workers.push(spawn_worker(&manager, &config, WorkerSlot(i)).await?);
        }
        let env = Arc::new(RoomEnv {
            node: Arc::clone(&node),
            config,
            counters,
        });
        Ok(ServerActor::create(move |ctx| {
            let entries = workers
                .into_iter()
                .enumerate()
                .map(|(i, worker)| {
                    let actor = WorkerActor::new(
                        &node,
                        WorkerSlot(i),
                        worker,
                        Arc::clone(&env.counters),
                        ctx.address().recipient(),
                    );
                    let counters = actor.counters();
                    WorkerEntry {
                        addr: Some(actor.start()),
                        counters,
                        restarts: 0,
                    }
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

    /// The least-loaded live worker: fewest consumers, then producers, then
    /// routers.
    fn pick_worker(&self) -> Option<(WorkerSlot, Addr<WorkerActor>)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.addr.as_ref().filter(|a| a.connected()).map(|a| (i, w, a)))
            .min_by_key(|(_, w, _)| {
                let c = &w.counters;
                (
                    c.get(Resource::Consumer) + c.get(Resource::Producer),
                    c.get(Resource::Router),
                )
            })
            .map(|(i, _, a)| (WorkerSlot(i), a.clone()))
    }
}

impl Actor for ServerActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!(workers = self.workers.len(), "node started");
    }
}

/// Finds a room, creating it (on the least-loaded worker) when needed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<RoomActor>, GetRoomError>")]
pub struct GetOrCreateRoom {
    /// The room.
    pub room: RoomId,
}

impl Handler<GetOrCreateRoom> for ServerActor {
    type Result = Result<Addr<RoomActor>, GetRoomError>;

    fn handle(&mut self, msg: GetOrCreateRoom, ctx: &mut Self::Context) -> Self::Result {
        if let Some((addr, _)) = self.rooms.get(&msg.room) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        let (slot, worker) = self.pick_worker().ok_or(GetRoomError::NoWorker)?;
        let room = RoomActor::new(
            msg.room.clone(),
            Arc::clone(&self.env),
            worker,
            slot,
            ctx.address().recipient(),
        )
        .start();
        self.rooms.insert(msg.room, (room.clone(), slot));
        Ok(room)
    }
}

impl Handler<RoomClosed> for ServerActor {
    type Result = ();
    fn handle(&mut self, msg: RoomClosed, _ctx: &mut Self::Context) {
        if matches!(self.rooms.get(&msg.room), Some((addr, _)) if *addr == msg.addr) {
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
        entry.addr = None;
        entry.restarts += 1;
        let manager = self.manager.clone();
        let config = Arc::clone(&self.env.config);
        let slot = msg.slot;
        ctx.spawn(
            async move { spawn_worker(&manager, &config, slot).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let _e = act.span.clone().entered();
                    match res {
                        Ok(worker) => {
                            let actor = WorkerActor::new(
                                &act.env.node,
                                slot,
                                worker,
                                Arc::clone(&act.env.counters),
                                ctx.address().recipient(),
                            );
                            let entry = &mut act.workers[slot.0];
                            entry.counters = actor.counters();
                            entry.addr = Some(actor.start());
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

/// Stops the node actor and every worker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for ServerActor {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("node stopping");
        for (room, _) in self.rooms.values() {
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
