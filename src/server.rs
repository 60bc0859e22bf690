//! [`Server`]: the node's SFU half, a cheap handle on its two actors: the
//! [`WorkerPool`] (mediasoup workers, replaced when they die) and the
//! [`RoomRegistry`] (rooms by name). It also owns the node-wide counters
//! that status and cluster gossip report.

use std::sync::Arc;

use actix::prelude::*;
use mafalda_actors::NodeId;
use serde::Serialize;

use crate::config::Config;
use crate::ids::{RoomId, WorkerSlot};
use crate::metrics::{Counters, Tallies};
use crate::placement::WorkerBoard;
use crate::pool::{GetWorkers, KillWorkerInSlot, StopPool, WorkerPool, WorkerStatus};
use crate::registry::{
    CloseAll, DescribeRooms, GetOrCreateRoom, GetRoomError, HandOffHomes, RoomRegistry, RoomTicket,
};
use crate::room::RoomEnv;
use crate::room::RoomView;
use crate::worker::SpawnWorkerError;

/// Error starting the SFU half of a node.
#[derive(Debug, thiserror::Error)]
pub enum ServerStartError {
    /// `node.name` is not a valid node name.
    #[error("node.name: {0}")]
    Name(#[from] mafalda_actors::NameError),
    /// A mediasoup worker could not start.
    #[error(transparent)]
    Worker(#[from] SpawnWorkerError),
}

/// Error asking the node's actors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the node's actors are stopped")]
pub struct NodeGone;

/// A handle on the node's worker pool and room registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct Server {
    node: NodeId,
    env: Arc<RoomEnv>,
    pool: Addr<WorkerPool>,
    rooms: Addr<RoomRegistry>,
    counters: Arc<Counters>,
}

impl Server {
    /// Starts the worker pool (one actor per worker) and the room registry.
    /// Must be called inside an actix `System`.
    ///
    /// `counters` are the node-wide counters; the caller may share them with
    /// other reporters (status, cluster gossip).
    pub async fn start(
        config: Arc<Config>,
        counters: Arc<Counters>,
    ) -> Result<Server, ServerStartError> {
        let node = NodeId::new(&config.node.name)?;
        let env = Arc::new(RoomEnv {
            node: node.clone(),
            workers: Arc::new(WorkerBoard::new(config.worker_count())),
            config: Arc::clone(&config),
            counters: Arc::clone(&counters),
            tallies: Arc::new(Tallies::new(config.worker_count())),
            fabric: Default::default(),
            draining: Default::default(),
        });
        let rooms = RoomRegistry::new(Arc::clone(&env)).start();
        let pool = match WorkerPool::start(
            node.clone(),
            config,
            Arc::clone(&counters),
            Arc::clone(&env.tallies),
            Arc::clone(&env.workers),
            rooms.clone().recipient(),
        )
        .await
        {
            Ok(pool) => pool,
            Err(e) => {
                rooms.do_send(CloseAll);
                return Err(e.into());
            }
        };
        Ok(Server {
            node,
            env,
            pool,
            rooms,
            counters,
        })
    }

    /// This node's name.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Lets the node's rooms reach their shards on other nodes through
    /// `fabric`; cross-node pipes listen on its address. Set once; later
    /// calls are ignored.
    pub fn attach_fabric(&self, fabric: mafalda_actors::Node) {
        let _ = self.env.fabric.set(fabric);
    }

    /// What the node's rooms share (configuration, counters, workers,
    /// fabric, drain state).
    pub fn env(&self) -> &Arc<RoomEnv> {
        &self.env
    }

    /// The worker pool actor (for failure drills and tests).
    pub fn pool(&self) -> &Addr<WorkerPool> {
        &self.pool
    }

    /// The room registry actor.
    pub fn rooms(&self) -> &Addr<RoomRegistry> {
        &self.rooms
    }

    /// The room `room`, created when needed, held open for a join.
    pub async fn room(&self, room: RoomId) -> Result<Result<RoomTicket, GetRoomError>, NodeGone> {
        self.rooms
            .send(GetOrCreateRoom { room, codecs: None })
            .await
            .map_err(|_| NodeGone)
    }

    /// Finds or creates a room as [`Self::room`]; a room created by this
    /// call offers `codecs`.
    pub async fn room_with_codecs(
        &self,
        room: RoomId,
        codecs: Arc<Vec<mediasoup::prelude::RtpCodecCapability>>,
    ) -> Result<Result<RoomTicket, GetRoomError>, NodeGone> {
        self.rooms
            .send(GetOrCreateRoom {
                room,
                codecs: Some(codecs),
            })
            .await
            .map_err(|_| NodeGone)
    }

    /// The node's status (what `/api/status` serves).
    pub async fn status(&self) -> Result<NodeStatus, NodeGone> {
        // The node's counts first, the workers' next (see `Tracked`): a
        // worker never shows what the node no longer counts.
        let c = self.counters.snapshot();
        let worker_details = self.pool.send(GetWorkers).await.map_err(|_| NodeGone)?;
        let room_details = self.rooms.send(DescribeRooms).await.map_err(|_| NodeGone)?;
        Ok(NodeStatus {
            node: self.node.to_string(),
            workers: worker_details.iter().filter(|w| w.alive).count(),
            rooms: c.rooms,
            peers: c.peers,
            routers: c.routers,
            transports: c.transports,
            producers: c.producers,
            consumers: c.consumers,
            worker_details,
            room_details,
        })
    }

    /// Treats the worker in `slot` as crashed (rooms drop it and its peers
    /// get a `reconnect` event; the slot is refilled). For tests and failure
    /// drills. Answers whether a live worker was there.
    pub async fn kill_worker(&self, slot: WorkerSlot) -> Result<bool, NodeGone> {
        self.pool
            .send(KillWorkerInSlot { slot })
            .await
            .map_err(|_| NodeGone)
    }

    /// The node drains: every room whose home is here hands it over to
    /// another node ([`HandOffHomes`]; set and gossip the drain flag
    /// first). Answers how many rooms are moving their home.
    pub async fn hand_off_homes(&self) -> Result<usize, NodeGone> {
        self.rooms.send(HandOffHomes).await.map_err(|_| NodeGone)
    }

    /// Closes every room (disconnecting everyone) and stops every worker.
    pub async fn shutdown(&self) {
        let _ = self.rooms.send(CloseAll).await;
        let _ = self.pool.send(StopPool).await;
    }
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
    /// Per open room: its part in the room (home or shard), the nodes it
    /// knows and its pipe links.
    pub room_details: Vec<RoomView>,
}
