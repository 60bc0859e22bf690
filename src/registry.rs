//! [`RoomRegistry`]: the node's rooms by name. It starts a room on first
//! use, hands out rooms for joins with a [`GateHold`] (so that a room never
//! closes under a join on its way), forgets a room once it has stopped, and
//! relays worker losses to every room.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use mafalda_actors::{MembershipEvent, RemoteMessage};
use serde::{Deserialize, Serialize};
use tracing::Span;

use crate::ids::RoomId;
use crate::room::fabric::{RoomCall, ShardCall, ShardCallMsg, ShardError, ShardReply};
use crate::room::{
    CloseRoom, DescribeRoom, Evacuate, GateHold, HandOffHome, IsHome, NodeLost, NodeUp, PeerNodes,
    RoomActor, RoomClosed, RoomEnv, RoomGate, RoomView, WorkerLost,
};

/// Error finding or creating a room.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GetRoomError {
    /// Every worker is dead (replacements are being spawned).
    #[error("no mediasoup worker is available on this node")]
    NoWorker,
}

/// A room handed out by the registry, held open until `hold` is dropped
/// (or carried into a [`Join`](crate::room::Join)).
#[derive(Debug)]
pub struct RoomTicket {
    /// The room actor.
    pub addr: Addr<RoomActor>,
    /// The hold on its gate.
    pub hold: GateHold,
}

struct Entry {
    addr: Addr<RoomActor>,
    gate: RoomGate,
}

/// The node's rooms.
pub struct RoomRegistry {
    env: Arc<RoomEnv>,
    rooms: HashMap<RoomId, Entry>,
    span: Span,
}

impl std::fmt::Debug for RoomRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomRegistry")
            .field("node", &self.env.node)
            .field("rooms", &self.rooms.len())
            .finish_non_exhaustive()
    }
}

impl RoomRegistry {
    /// A registry with no rooms, creating them in `env`.
    pub fn new(env: Arc<RoomEnv>) -> Self {
        let span = tracing::info_span!("rooms", node = %env.node, room = tracing::field::Empty);
        Self {
            env,
            rooms: HashMap::new(),
            span,
        }
    }
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl RoomRegistry {
    /// Starts room `room` (its home from the start when `home`), in place
    /// of any closing one of the same name.
    fn start_room(
        &mut self,
        room: RoomId,
        home: bool,
        codecs: Option<Arc<Vec<mediasoup::prelude::RtpCodecCapability>>>,
        ctx: &mut Context<Self>,
    ) -> Addr<RoomActor> {
        let gate = RoomGate::default();
        let mut actor = RoomActor::new(
            room.clone(),
            Arc::clone(&self.env),
            gate.clone(),
            ctx.address().recipient(),
        );
        if let Some(codecs) = codecs {
            actor = actor.with_codecs(codecs);
        }
        let addr = if home { actor.as_home() } else { actor }.start();
        self.rooms.insert(
            room,
            Entry {
                addr: addr.clone(),
                gate,
            },
        );
        addr
    }

    /// Room `room`, if it is open (not closing).
    fn open_room(&self, room: &RoomId) -> Option<Addr<RoomActor>> {
        self.rooms
            .get(room)
            .filter(|e| !e.gate.is_closed())
            .map(|e| e.addr.clone())
    }

    /// Asks the open room `room` `msg`; `absent` when there is none (or it
    /// stops before answering).
    fn ask_room<M>(&self, room: &RoomId, msg: M, absent: M::Result) -> ResponseFuture<M::Result>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        RoomActor: Handler<M>,
    {
        let room = self.open_room(room);
        Box::pin(async move {
            match room {
                Some(addr) => addr.send(msg).await.unwrap_or(absent),
                None => absent,
            }
        })
    }

    /// The rooms that are open (not closing).
    fn open_rooms(&self) -> impl Iterator<Item = &Addr<RoomActor>> {
        self.rooms
            .values()
            .filter(|e| !e.gate.is_closed())
            .map(|e| &e.addr)
    }
}

/// Finds a room, creating it when needed, and holds it open for a join.
/// Participants are placed on workers when they join, not rooms.
#[derive(Debug, Message)]
#[rtype(result = "Result<RoomTicket, GetRoomError>")]
pub struct GetOrCreateRoom {
    /// The room.
    pub room: RoomId,
    /// The media codecs of the room's routers, if it is created by this
    /// request (the node's list when `None`; an open room keeps its own).
    pub codecs: Option<Arc<Vec<mediasoup::prelude::RtpCodecCapability>>>,
}

impl Handler<GetOrCreateRoom> for RoomRegistry {
    type Result = Result<RoomTicket, GetRoomError>;

    fn handle(&mut self, msg: GetOrCreateRoom, ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.rooms.get(&msg.room) {
            if let Some(hold) = e.gate.hold() {
                return Ok(RoomTicket {
                    addr: e.addr.clone(),
                    hold,
                });
            }
            // Closing: a fresh room of the same name takes its place.
        }
        if self.env.workers.live().is_empty() {
            return Err(GetRoomError::NoWorker);
        }
        let addr = self.start_room(msg.room.clone(), false, msg.codecs, ctx);
        let hold = self.rooms[&msg.room]
            .gate
            .hold()
            .expect("a new gate is open");
        Ok(RoomTicket { addr, hold })
    }
}

impl Handler<RoomClosed> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: RoomClosed, _ctx: &mut Self::Context) {
        if matches!(self.rooms.get(&msg.room), Some(e) if e.addr == msg.addr) {
            self.rooms.remove(&msg.room);
        }
    }
}

impl Handler<WorkerLost> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: WorkerLost, _ctx: &mut Self::Context) {
        for e in self.rooms.values() {
            e.addr.do_send(msg.clone());
        }
    }
}

/// The actor name under which every clustered node's registry answers
/// [`HostsRoom`] on the fabric.
pub const ROOMS_ACTOR: &str = "sfu.rooms";

/// Asks a node whether it is the home of a room (an open one: a closing
/// room, a room still finding its home or a shard of a home elsewhere do
/// not count). A fabric message: plain serde, tag `sfu.HostsRoom/v1`.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "bool")]
pub struct HostsRoom {
    /// The room.
    pub room: RoomId,
}

impl RemoteMessage for HostsRoom {
    const TAG: &'static str = "sfu.HostsRoom/v1";
}

impl Handler<HostsRoom> for RoomRegistry {
    type Result = ResponseFuture<bool>;
    fn handle(&mut self, msg: HostsRoom, _ctx: &mut Self::Context) -> Self::Result {
        self.ask_room(&msg.room, IsHome, false)
    }
}

impl Handler<RoomCall> for RoomRegistry {
    type Result = ResponseFuture<Result<ShardReply, ShardError>>;
    fn handle(&mut self, msg: RoomCall, ctx: &mut Self::Context) -> Self::Result {
        let RoomCall {
            room,
            from,
            call,
            trace,
        } = msg;
        let open = self.open_room(&room);
        let addr = match (open, &call) {
            (Some(addr), _) => addr,
            (None, ShardCall::Attach | ShardCall::AttachWith { .. }) => {
                // A draining node starts no home: the attacher goes to the
                // home rule's top candidate among the others instead.
                let elsewhere = self
                    .env
                    .draining()
                    .then(|| {
                        let fabric = self.env.fabric.get()?;
                        crate::cluster::best_other_home(fabric, &room)
                    })
                    .flatten();
                if let Some(next) = elsewhere {
                    return Box::pin(async move { Err(ShardError::NotHome(Some(next))) });
                }
                // The home rule chose this node: the room's home starts here.
                self.start_room(room.clone(), true, None, ctx)
            }
            (None, _) => return Box::pin(async move { Err(ShardError::UnknownRoom(room)) }),
        };
        Box::pin(async move {
            addr.send(ShardCallMsg { from, call, trace })
                .await
                .unwrap_or(Err(ShardError::UnknownRoom(room)))
        })
    }
}

/// The node drains: every room whose home is this node hands its home
/// over to the home rule's top candidate among the other nodes, and stays
/// on as a shard of it, with its participants and their media (see
/// [`HandOffHome`]). Set the node's drain flag (`RoomEnv::draining`) and
/// gossip it (`Cluster::publish_now`) first. Answers how many rooms are
/// moving their home; the move itself completes shortly after.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct HandOffHomes;

impl Handler<HandOffHomes> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, _msg: HandOffHomes, _ctx: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = self.open_rooms().map(|r| r.send(HandOffHome)).collect();
        let _e = self.span.clone().entered();
        tracing::info!(rooms = asks.len(), "handing room homes over");
        Box::pin(async move {
            futures::future::join_all(asks)
                .await
                .into_iter()
                .filter(|moved| matches!(moved, Ok(true)))
                .count()
        })
    }
}

/// Every open room's [`RoomView`], sorted by name.
#[derive(Debug, Message)]
#[rtype(result = "Vec<RoomView>")]
pub struct DescribeRooms;

impl Handler<DescribeRooms> for RoomRegistry {
    type Result = ResponseFuture<Vec<RoomView>>;
    fn handle(&mut self, _msg: DescribeRooms, _ctx: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = self.open_rooms().map(|r| r.send(DescribeRoom)).collect();
        Box::pin(async move {
            let mut views: Vec<RoomView> = futures::future::join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect();
            views.sort_by(|a, b| a.room.cmp(&b.room));
            views
        })
    }
}

/// Drain: tells up to `max` local participants, over the rooms, to
/// `reconnect` through `url` ([`Evacuate`]); answers how many were told.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct EvacuatePeers {
    /// Most participants to tell.
    pub max: usize,
    /// Where they should join again.
    pub url: Option<String>,
}

impl Handler<EvacuatePeers> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: EvacuatePeers, _ctx: &mut Self::Context) -> Self::Result {
        let rooms: Vec<_> = self.open_rooms().cloned().collect();
        Box::pin(async move {
            let mut told = 0;
            for room in rooms {
                if told >= msg.max {
                    break;
                }
                told += room
                    .send(Evacuate {
                        max: msg.max - told,
                        url: msg.url.clone(),
                    })
                    .await
                    .unwrap_or(0);
            }
            told
        })
    }
}

/// The other nodes where room `room` has participants, as this node's
/// part of it knows them ([`PeerNodes`]); empty when the room is not open
/// here.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<mafalda_actors::NodeId>")]
pub struct RoomPeerNodes {
    /// The room.
    pub room: RoomId,
}

impl Handler<RoomPeerNodes> for RoomRegistry {
    type Result = ResponseFuture<Vec<mafalda_actors::NodeId>>;
    fn handle(&mut self, msg: RoomPeerNodes, _ctx: &mut Self::Context) -> Self::Result {
        self.ask_room(&msg.room, PeerNodes, Vec::new())
    }
}

/// How many rooms the registry knows (closing ones included).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct RoomCount;

impl Handler<RoomCount> for RoomRegistry {
    type Result = usize;
    fn handle(&mut self, _msg: RoomCount, _ctx: &mut Self::Context) -> usize {
        self.rooms.len()
    }
}

/// Closes every room (answering once each has handled it) and stops the
/// registry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseAll;

impl Handler<CloseAll> for RoomRegistry {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _msg: CloseAll, ctx: &mut Self::Context) -> Self::Result {
        let _e = self.span.clone().entered();
        tracing::info!(rooms = self.rooms.len(), "closing every room");
        let closing: Vec<_> = self
            .rooms
            .values()
            .map(|e| {
                e.gate.force_close();
                e.addr.send(CloseRoom("node shutting down".into()))
            })
            .collect();
        ctx.stop();
        Box::pin(async move {
            futures::future::join_all(closing).await;
        })
    }
}

impl Handler<MembershipEvent> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: MembershipEvent, _ctx: &mut Self::Context) {
        match msg {
            MembershipEvent::Down(node) => {
                for e in self.rooms.values() {
                    e.addr.do_send(NodeLost(node.clone()));
                }
            }
            MembershipEvent::Up(info) => {
                for e in self.rooms.values() {
                    e.addr.do_send(NodeUp(info.id.clone()));
                }
            }
            _ => {}
        }
    }
}
