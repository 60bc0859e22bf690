//! # Mafalda
//!
//! A WebRTC SFU cluster on top of [mediasoup]: rooms spread over every worker
//! (core) of a node and, through the [`mafalda_actors`] fabric, over many
//! nodes, with no central coordinator.
//!
//! # Layout
//!
//! - [`config`] — the TOML node configuration with embedded defaults.
//! - [`auth`] — client access tokens (JWT, HS256) and their grants.
//! - [`ids`] — newtype ids for Mafalda's own entities (peers, rooms, worker
//!   slots, router locations).
//! - [`net`] — IP networks for allow-lists.
//! - [`metrics`] — resource counters, decremented by mediasoup close callbacks;
//!   the node's running totals.
//! - [`media_stats`] — RTP packets and bytes per worker, sampled from
//!   mediasoup's stats.
//! - [`worker`] — `WorkerActor`: one mediasoup worker (one core), router factory,
//!   CPU sampling of its thread.
//! - [`placement`] — the load model and the worker board rooms place peers with.
//! - [`room`] — `RoomActor`: a room's routers (one per worker it uses), pipes
//!   between them, peers, transports, producers, consumers.
//! - [`pool`] — `WorkerPool`: the node's workers, replaced when they die.
//! - [`registry`] — `RoomRegistry`: the node's rooms by name.
//! - [`server`] — `Server`: a handle on the pool and the registry; status.
//! - [`signalling`] — the JSON WebSocket protocol types (pure, no I/O).
//! - [`api`] — actix-web routes: `/ws`, `/healthz`, `/api/status`, the demo.
//! - [`cluster`] — joining the cluster fabric: load gossip, the `sfu.load` actor, members.
//! - [`spill`] — spill-over: a full node's participants served by a peer
//!   (choice from gossiped load, admission, the relayed session).
//! - [`home`] — where a room lives: rendezvous hashing over live members, and
//!   the split-brain rule (pure).
//! - [`drain`] — graceful drain: no new participants or homes, everyone
//!   told to move in batches, stop when empty or at a deadline.
//! - [`node`] — start and stop a node on an injected listener.
//! - [`mediasoup`] — the embedding API, shaped like the mediasoup crate:
//!   `Worker` (a node), `Router` (a room spread over workers), mediasoup's
//!   own transports, producers and consumers, consumes piped across workers
//!   (`docs/compat.md`).
//! - [`sfu`] — the participant layer the signalling session is built on
//!   (`Sfu`, `Room`, `Participant`).
//!
//! The supervision tree and message flow are in `docs/architecture.md`, the
//! protocol in `docs/protocol.md`.
//!
//! [mediasoup]: https://mediasoup.org
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod drain;
pub mod home;
pub mod ids;
/// The packet engine of `mafalda loadgen`: synthetic RTP publishers and
/// measuring subscribers over real UDP sockets.
pub mod loadgen;
pub mod media_stats;
pub mod mediasoup;
pub mod metrics;
pub mod net;
pub mod node;
pub mod placement;
pub mod pool;
pub mod registry;
pub mod room;
pub mod server;
pub mod sfu;
pub mod signalling;
pub mod spill;
pub mod worker;

pub use mafalda_actors;
