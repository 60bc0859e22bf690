//! Running a node: the actor system plus the HTTP/WebSocket server.
//!
//! The listener and the shutdown signal are injected, so tests run nodes on
//! port 0 and stop them when they like.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpServer};

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::server::ServerActor;
use crate::worker::SpawnWorkerError;

/// Error starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A mediasoup worker could not start.
    #[error(transparent)]
    Worker(#[from] SpawnWorkerError),
    /// The HTTP server could not start.
    #[error("cannot start the HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// A running node. Dropping it does not stop it: call [`RunningNode::stop`].
#[derive(Debug)]
pub struct RunningNode {
    /// Where the HTTP/WebSocket API listens.
    pub http_addr: SocketAddr,
    /// The node actor.
    pub server: Addr<ServerActor>,
    http: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningNode {
    /// Starts a node on an already bound listener. Must be called inside an
    /// actix `System`.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        config.validate()?;
        let config = Arc::new(config);
        let server = ServerActor::start(Arc::clone(&config)).await?;
        let state = ApiState {
            server: server.clone(),
            config: Arc::clone(&config),
        };
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
            http: handle,
            task,
        })
    }

    /// Stops accepting connections, closes every session and stops the
    /// node's actors (which closes the mediasoup workers).
    pub async fn stop(self) {
        self.http.stop(true).await;
        let _ = self.task.await;
        let _ = self.server.send(crate::server::Shutdown).await;
    }

    /// Runs until `shutdown` completes, then stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}
