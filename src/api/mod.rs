//! The HTTP and WebSocket API (actix-web + actix-ws).
//!
//! - `GET /ws` — the JSON signalling protocol ([`ws`]).
//! - `GET /healthz` — liveness.
//! - `GET /api/status` — node status as JSON.
//! - `GET /api/status/stream` — the same, pushed every second as
//!   Server-Sent Events ([`stream`]).
//! - `GET /api/nodes` — the signalling URLs of the nodes that take
//!   participants (this one and its cluster peers).
//! - `GET /api/dev-token` — an access token for anyone (`[auth] mode =
//!   "dev"` only).
//! - `POST /api/drain` — starts the node's graceful drain ([`crate::drain`]).
//! - `GET /metrics` — Prometheus metrics ([`metrics`]).
//! - `GET /dashboard` — the cluster dashboard page, and `/` — the browser
//!   demo, both bundled in `http.static_dir`.

pub mod frame_guard;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod requests;
pub mod stream;
pub mod ws;

use std::sync::Arc;

use crate::config::Config;
use crate::server::Server;

/// Room name → (peer, when) of this node's recent spills.
pub type RecentSpills =
    std::collections::HashMap<String, Vec<(mafalda_actors::NodeId, std::time::Instant)>>;

/// How long a spill counts as "that peer serves the room" before the
/// room's map says so.
pub const RECENT_SPILL: std::time::Duration = std::time::Duration::from_secs(30);

/// What every request handler needs.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The node's worker pool and room registry.
    pub server: Server,
    /// The node configuration.
    pub config: Arc<Config>,
    /// Cluster membership, when enabled.
    pub cluster: Option<crate::cluster::Cluster>,
    /// The node's Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// The node's graceful drain (`POST /api/drain`).
    pub drain: crate::drain::Drainer,
    /// The keys that verify (and, in dev mode, issue) access tokens.
    pub auth: crate::auth::Keys,
    /// The peers this node spilled each room's participants to lately:
    /// they serve the room already, though the room's map may not say so
    /// yet (see [`crate::spill`]'s ranking).
    pub recent_spills: Arc<parking_lot::Mutex<RecentSpills>>,
    /// Open WebSocket connections (`[limits]`).
    pub connections: guard::Connections,
    /// The open `/api/status/stream` responses (ended when the node stops).
    pub streams: stream::StatusStreams,
}
