//! [`WorkerManager`]: mediasoup's entry point, starting Mafalda nodes.
//!
//! An application (or mediasoup's own test suite) that creates workers
//! through `WorkerManager::new().create_worker(settings)` keeps doing so:
//! each "worker" is a node with its own mediasoup workers. Without a
//! configuration of its own ([`WorkerManager::with_config`]) a node has
//! `MAFALDA_WORKERS` workers (default 1) with `spread` placement, HTTP on
//! an ephemeral loopback port, and the settings' RTC port range.

use std::sync::Arc;

use super::worker::{StartError, Worker};
use crate::config::{Config, PlacementMode};
use ::mediasoup::worker::WorkerSettings;

/// Starts nodes used as workers.
#[derive(Debug, Clone)]
pub struct WorkerManager {
    config: Arc<Config>,
}

impl Default for WorkerManager {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerManager {
    /// Nodes with the embedded defaults (see the module docs).
    pub fn new() -> Self {
        let mut c = Config::default();
        c.node.name = "embedded".into();
        c.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        c.workers.count = std::env::var("MAFALDA_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &usize| *n > 0)
            .unwrap_or(1);
        c.placement.mode = PlacementMode::Spread;
        // Nobody joins an embedded node through signalling: a random key.
        c.auth.keys = vec![crate::auth::AuthKey::random("embedded")];
        Self::with_config(c)
    }

    /// Nodes configured by `config` (its `[rtc]` port range is replaced
    /// by each worker's settings).
    pub fn with_config(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// mediasoup's constructor with an executor: accepted for source
    /// compatibility; a node runs on its own threads.
    pub fn with_executor<E>(_executor: E) -> Self {
        Self::new()
    }

    /// Starts a node: `settings.rtc_port_range` becomes its `[rtc]` port
    /// range; `app_data` is the worker's. Log levels and tags follow the
    /// node's `[log]` configuration instead.
    pub async fn create_worker(&self, settings: WorkerSettings) -> Result<Worker, StartError> {
        let mut config = (*self.config).clone();
        config.rtc.port_min = *settings.rtc_port_range.start();
        config.rtc.port_max = *settings.rtc_port_range.end();
        let worker = Worker::start(config).await?;
        Ok(worker.with_app_data(settings.app_data))
    }
}
