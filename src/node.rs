//! Running a node: the actor system plus the HTTP/WebSocket server.
//!
//! The listener and the shutdown signal are injected, so tests run nodes on
//! port 0 and stop them when they like.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

use crate::api::{self, ApiState};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::drain::Drainer;
use crate::server::{Server, ServerStartError};

/// Error starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The worker pool or room registry could not start.
    #[error(transparent)]
    Server(#[from] ServerStartError),
    /// The HTTP server could not start.
    #[error("cannot start the HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// The node could not join the cluster fabric.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A running node. Dropping it does not stop it: call [`RunningNode::stop`].
#[derive(Debug)]
pub struct RunningNode {
    /// Where the HTTP/WebSocket API listens.
    pub http_addr: SocketAddr,
    /// The node's worker pool and room registry.
    pub server: Server,
    /// The node's cluster membership, when `[cluster] enabled`.
    pub cluster: Option<Cluster>,
    /// The node's graceful drain.
    pub drain: Drainer,
    config: Arc<Config>,
    streams: api::stream::StatusStreams,
    http: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningNode {
    /// Starts a node on an already bound listener. Must be called inside an
    /// actix `System`.
    pub async fn start(mut config: Config, listener: TcpListener) -> Result<Self, StartError> {
        config.check_startable()?;
        // The effective address (port 0 resolved), for the signalling URL
        // the node names to clients.
        config.http.listen = listener.local_addr()?;
        let config = Arc::new(config);
        let counters = Arc::new(crate::metrics::Counters::default());
        let server = Server::start(Arc::clone(&config), Arc::clone(&counters)).await?;
        let cluster = if config.cluster.enabled {
            match Cluster::join(&server).await {
                Ok(c) => {
                    server.attach_fabric(c.node().clone());
                    Some(c)
                }
                Err(e) => {
                    server.shutdown().await;
                    return Err(e.into());
                }
            }
        } else {
            None
        };
        let drain = Drainer::new(server.clone(), cluster.clone());
        let auth = match (config.auth.mode, config.auth.keys.is_empty()) {
            (crate::config::AuthMode::Dev, true) => crate::auth::Keys::ephemeral(),
            _ => crate::auth::Keys::new(config.auth.keys.clone()),
        };
        if config.auth.mode == crate::config::AuthMode::Dev {
            tracing::warn!("[auth] mode = \"dev\": GET /api/dev-token gives a token to anyone; never on a network others reach");
        }
        let state = ApiState {
            server: server.clone(),
            config: Arc::clone(&config),
            auth,
            recent_spills: Default::default(),
            cluster: cluster.clone(),
            metrics: Default::default(),
            drain: drain.clone(),
            connections: Default::default(),
            streams: Default::default(),
        };
        let streams = state.streams.clone();
        let http_addr = listener.local_addr()?;
        let app_state = state.clone();
        let http = HttpServer::new(move || {
            let state = app_state.clone();
            App::new()
                .app_data(web::Data::new(state.clone()))
                .configure(|cfg| api::http::configure(cfg, &state))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        let handle = http.handle();
        let task = actix_web::rt::spawn(http);
        tracing::info!(node = %config.node.name, %http_addr, "node listening");
        Ok(Self {
            http_addr,
            server,
            cluster,
            drain,
            config,
            streams,
            http: handle,
            task,
        })
    }

    /// The `/api/status/stream` responses open now.
    pub fn status_streams(&self) -> usize {
        self.streams.open()
    }

    /// The node's (validated) configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Stops accepting connections, closes every session and stops the
    /// node's actors (which closes the mediasoup workers).
    pub async fn stop(self) {
        // Status streams never end by themselves: end them, or the
        // graceful stop would wait its whole timeout for them.
        self.streams.close();
        self.http.stop(true).await;
        let _ = self.task.await;
        // Rooms close first, so that shards still detach from their homes
        // on other nodes over the fabric; then the node leaves the cluster.
        self.server.shutdown().await;
        tracing::debug!("rooms and workers stopped");
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        tracing::info!("node stopped");
    }

    /// Runs until `shutdown` completes, then stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        tracing::info!("shutting down");
        self.stop().await;
    }

    /// Runs until the node is drained, then stops. The first `term` (e.g.
    /// SIGTERM) starts the drain, as `POST /api/drain` does; a second one
    /// during the drain, or `now` (e.g. SIGINT) at any time, stops at once.
    pub async fn run_until_drained<T, F>(self, mut term: T, now: impl Future<Output = ()>)
    where
        T: FnMut() -> F,
        F: Future<Output = ()>,
    {
        let drain = self.drain.clone();
        let run = async {
            tokio::select! {
                _ = term() => {
                    tracing::warn!("termination signal: draining (signal again to stop now)");
                    drain.start();
                }
                _ = drain.drained() => return,
            }
            tokio::select! {
                _ = drain.drained() => {}
                _ = term() => tracing::warn!("second termination signal: stopping now"),
            }
        };
        tokio::select! {
            _ = run => {}
            _ = now => tracing::info!("interrupted: stopping now"),
        }
        tracing::info!("shutting down");
        self.stop().await;
    }
}
