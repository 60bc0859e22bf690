//! The room's messages between nodes: what a room shard on one node asks
//! of the same room's shard on another, through the node's room registry
//! (actor [`ROOMS_ACTOR`](crate::registry::ROOMS_ACTOR), tag
//! `sfu.RoomCall/v1`). Plain serde types; mediasoup's parameter types ride
//! inside as [`AsJson`]. Documented in `docs/protocol.md`.
//!
//! # The cross-node pipe handshake
//!
//! The node that needs a producer (the *target*) opens a link to the
//! router the producer lives on (the *source*), once per (source router,
//! target router) pair, shared by every stream between them:
//!
//! 1. the target creates a `PipeTransport` on its router, on its fabric
//!    address (SRTP on unless that is a loopback address, RTX on), and sends
//!    [`ShardCall::OpenLink`] with its tuple and SRTP parameters;
//! 2. the source creates its own on the producer's router, connects it to
//!    the target's tuple and answers [`ShardReply::Link`] with its own; the
//!    target connects to it.
//!
//! Then for each producer, [`ShardCall::OpenHop`]: the source consumes the
//! producer on its end (a pipe consumer) and answers [`ShardReply::Hop`]
//! with the RTP parameters; the target produces with them, same producer id.
//! The source reports pause, resume and close of the producer with
//! [`ShardCall::HopChanged`] (sequence-numbered, so that a change that
//! overtakes the reply is not undone by it). When the target no longer
//! needs a hop or a link it sends [`ShardCall::CloseHop`] or
//! [`ShardCall::CloseLink`].

use std::net::IpAddr;

use actix::prelude::*;
use mafalda_actors::trace::TraceId;
use mafalda_actors::{NodeId, RemoteMessage};
use mediasoup::prelude::ProducerId;
use mediasoup::types::rtp_parameters::{MediaKind, RtpParameters};
use mediasoup::types::srtp_parameters::SrtpParameters;
use serde::{Deserialize, Serialize};

use super::messages::{PeerInfo, ProducerInfo};
use super::wire::{AsJson, WireError};
use crate::ids::{PeerId, RoomId, RouterLoc};

/// One call from a room shard on another node to this node's shard of
/// `room`.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<ShardReply, ShardError>")]
pub struct RoomCall {
    /// The room.
    pub room: RoomId,
    /// The calling node.
    pub from: NodeId,
    /// What it asks.
    pub call: ShardCall,
    /// The request's trace id (carried in the fabric frame's header, not
    /// in this body).
    #[serde(skip)]
    pub trace: Option<TraceId>,
}

impl RemoteMessage for RoomCall {
    const TAG: &'static str = "sfu.RoomCall/v1";

    fn trace(&self) -> Option<TraceId> {
        self.trace
    }

    fn set_trace(&mut self, trace: TraceId) {
        self.trace = Some(trace);
    }
}

/// An address and port of a pipe transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeTuple {
    /// The address.
    pub ip: IpAddr,
    /// The UDP port.
    pub port: u16,
}

impl PipeTuple {
    /// Refuses what no pipe transport can be: port 0, an unspecified,
    /// multicast or broadcast address.
    pub fn check(&self) -> Result<(), ShardError> {
        let broadcast = matches!(self.ip, IpAddr::V4(v4) if v4.is_broadcast());
        if self.port == 0 || self.ip.is_unspecified() || self.ip.is_multicast() || broadcast {
            return Err(ShardError::BadTuple(format!("{}:{}", self.ip, self.port)));
        }
        Ok(())
    }
}

/// A change of a piped producer, reported by the source to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HopChange {
    /// The producer was paused.
    Paused,
    /// The producer was resumed.
    Resumed,
    /// The hop closed (the producer closed or left the router).
    Closed,
}

/// What a room shard asks of another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardCall {
    /// A producer living on another node's router, as the room's home
    /// announces it: the receiving shard offers it to its local peers, who
    /// may consume it through a cross-node pipe.
    ProducerAnnounced {
        /// The producer.
        info: ProducerInfo,
        /// Where it lives.
        loc: RouterLoc,
    },
    /// An announced producer went away.
    ProducerGone {
        /// Which.
        producer_id: ProducerId,
    },
    /// Opens the pipe link from the callee's router `from` to the caller's
    /// router `to`; `tuple` and `srtp` are the caller's end.
    OpenLink {
        /// The callee's router.
        from: RouterLoc,
        /// The caller's router.
        to: RouterLoc,
        /// The caller's pipe transport.
        tuple: PipeTuple,
        /// The caller's SRTP parameters, when the link is encrypted.
        srtp: Option<AsJson<SrtpParameters>>,
    },
    /// Pipes `producer_id` over the link `from` → `to`.
    OpenHop {
        /// The callee's router (where the producer is).
        from: RouterLoc,
        /// The caller's router.
        to: RouterLoc,
        /// The producer.
        producer_id: ProducerId,
    },
    /// The caller no longer needs the hop.
    CloseHop {
        /// The callee's router.
        from: RouterLoc,
        /// The caller's router.
        to: RouterLoc,
        /// The producer.
        producer_id: ProducerId,
    },
    /// The caller no longer needs the link (nor any hop on it).
    CloseLink {
        /// The callee's router.
        from: RouterLoc,
        /// The caller's router.
        to: RouterLoc,
    },
    /// The source of a hop into the callee's router `to` changed.
    HopChanged {
        /// The caller's router (the source).
        from: RouterLoc,
        /// The callee's router.
        to: RouterLoc,
        /// The producer.
        producer_id: ProducerId,
        /// What happened.
        change: HopChange,
        /// Increases with every change of this hop.
        seq: u64,
    },
    /// A shard attaches to the room's home (the callee), which answers with
    /// [`ShardReply::Snapshot`] and from then on relays every change of the
    /// room to it. The home's registry creates the room if it has none
    /// (unless its node drains and another node may be the home: it then
    /// answers [`ShardError::NotHome`] naming that node). Mafalda attaches
    /// with [`ShardCall::AttachWith`].
    Attach,
    /// A shard's room closed: the home stops relaying to it.
    Detach,
    /// A peer joined on `node` (a shard reports its own; the home relays).
    PeerJoined {
        /// The peer.
        info: PeerInfo,
        /// Where its session and transports are.
        node: NodeId,
    },
    /// A peer on another node left.
    PeerLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// A producer on another node was paused or resumed.
    ProducerPaused {
        /// Which.
        producer_id: ProducerId,
        /// Paused (true) or resumed.
        paused: bool,
    },
    /// Where to take `producer_id` from for a new hop into the caller's
    /// node, asked of the node of router `from` (which has it). Answered
    /// with [`ShardReply::Source`]: `from` itself while it feeds fewer than
    /// `placement.pipe_fanout` routers, else a router on another node it
    /// feeds (ask that one next), so that fan-out across nodes is a tree.
    PipeSource {
        /// The producer.
        producer_id: ProducerId,
        /// The callee's router holding it.
        from: RouterLoc,
    },
    /// From a room's former home to its shards: two homes of the room met
    /// (after a partition) and the caller lost by the split-brain rule, or
    /// the caller's node drains; attach to `home` instead, reporting your
    /// local peers and producers.
    Rehome {
        /// The new home.
        home: NodeId,
    },
    /// Lists the room as the callee knows it (read-only; for moderators
    /// and tools): answered with [`ShardReply::Snapshot`]. The room's home
    /// knows every peer and producer; a shard knows what the home relayed.
    Describe,
    /// Pauses or resumes one of the callee's own producers, as its owner
    /// would (a moderator's action): the room's peers get
    /// `producerPaused`/`producerResumed` and its pipes follow.
    SetProducerPaused {
        /// The producer, living on the callee.
        producer_id: ProducerId,
        /// Pause (true) or resume.
        paused: bool,
    },
    /// A shard attaches to the room's home (the callee), as with
    /// [`ShardCall::Attach`], and reports every peer and producer it has:
    /// the home replaces whatever it attributes to the caller's node with
    /// this (dropping what the caller no longer has, adding what it did not
    /// know), relays the differences to its other shards, and answers with
    /// [`ShardReply::Map`]. What Mafalda sends to attach.
    AttachWith {
        /// The caller's own peers.
        peers: Vec<PeerInfo>,
        /// The caller's own producers, each with its router (on the
        /// caller's node).
        producers: Vec<(ProducerInfo, RouterLoc)>,
    },
}

/// A shard's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShardReply {
    /// Done.
    Done,
    /// The callee's end of a new link.
    Link {
        /// Its pipe transport.
        tuple: PipeTuple,
        /// Its SRTP parameters, when the link is encrypted.
        srtp: Option<AsJson<SrtpParameters>>,
    },
    /// A new hop: produce with these.
    Hop {
        /// Audio or video.
        kind: MediaKind,
        /// The pipe consumer's RTP parameters.
        rtp_parameters: AsJson<RtpParameters>,
        /// Whether the producer is paused.
        paused: bool,
        /// The hop's change sequence number at this answer.
        seq: u64,
    },
    /// The whole room as the home knows it: every peer with its node, every
    /// producer with its router.
    Snapshot {
        /// Peers.
        peers: Vec<(PeerInfo, NodeId)>,
        /// Producers.
        producers: Vec<(ProducerInfo, RouterLoc)>,
    },
    /// Take the producer from this router.
    Source(RouterLoc),
    /// The answer to [`ShardCall::AttachWith`]: the whole room as the home
    /// knows it (as in [`ShardReply::Snapshot`]), and the nodes whose peers
    /// and producers it lists in full (the home itself and the shards that
    /// had attached to it): what the new shard knows of those nodes and the
    /// lists no longer have is gone.
    Map {
        /// Peers, with their node.
        peers: Vec<(PeerInfo, NodeId)>,
        /// Producers, with their router.
        producers: Vec<(ProducerInfo, RouterLoc)>,
        /// The nodes the lists are complete for.
        nodes: Vec<NodeId>,
    },
}

/// Why a shard refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ShardError {
    /// No open room of that name on the callee.
    #[error("no room {0} on this node")]
    UnknownRoom(RoomId),
    /// The router named is not one of the callee's routers of the room.
    #[error("no router {0} in this room on this node")]
    UnknownRouter(RouterLoc),
    /// No such link (never opened, or closed).
    #[error("no pipe link {0} -> {1}")]
    UnknownLink(RouterLoc, RouterLoc),
    /// The producer is not on the router named.
    #[error("producer {0} is not on the router named")]
    UnknownProducer(ProducerId),
    /// The call names the wrong node for its caller or callee.
    #[error("the call names the wrong node: {0}")]
    WrongNode(String),
    /// The pipe transport address cannot be connected to.
    #[error("bad pipe tuple {0}")]
    BadTuple(String),
    /// A mediasoup value in the call did not decode.
    #[error(transparent)]
    BadParameters(#[from] WireError),
    /// mediasoup refused (a bad tuple, for example).
    #[error("mediasoup refused: {0}")]
    Refused(String),
    /// The callee is a shard of the room, not its home (whose node is given
    /// when known).
    #[error("not the room's home (the home is {0:?})")]
    NotHome(Option<NodeId>),
}

/// The local form of a [`RoomCall`], sent by the registry to the room.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShardReply, ShardError>")]
pub struct ShardCallMsg {
    /// The calling node.
    pub from: NodeId,
    /// What it asks.
    pub call: ShardCall,
    /// The fabric request's trace id.
    pub trace: Option<TraceId>,
}

#[cfg(test)]
mod tests {
    use mafalda_actors::codec;

    use super::*;

    fn node(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    /// The encodings given as examples in `docs/protocol.md`.
    #[test]
    fn the_documented_examples_encode_as_documented() {
        let call = |call| RoomCall {
            room: RoomId::new("r"),
            from: node("b"),
            call,
            trace: None,
        };
        assert_eq!(
            codec::encode(&call(ShardCall::Attach)).unwrap(),
            [0x01, 0x72, 0x01, 0x62, 0x07]
        );
        let attach_with = ShardCall::AttachWith {
            peers: vec![],
            producers: vec![],
        };
        assert_eq!(
            codec::encode(&call(attach_with)).unwrap(),
            [0x01, 0x72, 0x01, 0x62, 0x10, 0x00, 0x00]
        );
        let reply = |r: Result<ShardReply, ShardError>| codec::encode(&r).unwrap();
        assert_eq!(
            reply(Ok(ShardReply::Snapshot {
                peers: vec![],
                producers: vec![]
            })),
            [0x00, 0x03, 0x00, 0x00]
        );
        assert_eq!(
            reply(Err(ShardError::NotHome(Some(node("a"))))),
            [0x01, 0x08, 0x01, 0x01, 0x61]
        );
        assert_eq!(
            reply(Ok(ShardReply::Source(RouterLoc::new(
                node("b"),
                crate::ids::WorkerSlot(1)
            )))),
            [0x00, 0x04, 0x01, 0x62, 0x01]
        );
        assert_eq!(
            reply(Ok(ShardReply::Map {
                peers: vec![],
                producers: vec![],
                nodes: vec![node("a")]
            })),
            [0x00, 0x05, 0x00, 0x00, 0x01, 0x01, 0x61]
        );
    }

    #[test]
    fn an_attach_report_round_trips() {
        let info = ProducerInfo {
            producer_id: "5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44".parse().unwrap(),
            peer_id: PeerId::new(),
            kind: MediaKind::Video,
            paused: true,
        };
        let call = ShardCall::AttachWith {
            peers: vec![PeerInfo {
                peer_id: info.peer_id,
                display_name: "p".into(),
            }],
            producers: vec![(info, RouterLoc::new(node("b"), crate::ids::WorkerSlot(2)))],
        };
        let back: ShardCall = codec::decode(&codec::encode(&call).unwrap()).unwrap();
        let ShardCall::AttachWith { peers, producers } = back else {
            panic!("{back:?}");
        };
        assert_eq!((peers.len(), producers.len()), (1, 1));
        assert!(producers[0].0.paused);
    }
}
