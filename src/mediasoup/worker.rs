//! [`Worker`]: a Mafalda node, in place of a mediasoup worker.
//!
//! mediasoup's `WorkerManager::create_worker` becomes [`Worker::start`]
//! (a node with `[workers] count` mediasoup workers, started in its own
//! thread so that any async runtime can drive it) or
//! [`Worker::from_node`] (a node already running in this actix system).
//! [`Worker::create_router`] opens a room in place of a router.

use std::net::TcpListener;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use event_listener_primitives::{Bag, BagOnce, HandlerId};
use parking_lot::Mutex;

pub use ::mediasoup::worker::{
    RequestError, WorkerDtlsFiles, WorkerLogLevel, WorkerLogTag, WorkerSettings,
};

use super::router::{CreateRouterError, Router, RouterInner};
use crate::config::Config;
use crate::ids::RoomId;
use crate::node::RunningNode;
use crate::server::{NodeStatus, Server};
use ::mediasoup::router::{RouterId, RouterOptions};

/// Why a node could not be started as a [`Worker`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The node refused to start (configuration, workers, HTTP, cluster).
    #[error(transparent)]
    Node(#[from] crate::node::StartError),
    /// The HTTP listener could not be bound, or the node's thread not
    /// spawned.
    #[error("cannot start the node: {0}")]
    Io(#[from] std::io::Error),
    /// The node's thread ended before the node started.
    #[error("the node's thread stopped before the node started")]
    ThreadGone,
}

/// What a worker holds (mediasoup's `WorkerDump`, for what applies: the
/// routers, which are rooms here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerDump {
    /// The open routers made through this handle.
    pub router_ids: Vec<RouterId>,
}

type NewRouterCallback = Arc<dyn Fn(&Router) + Send + Sync>;

#[derive(Default)]
struct Handlers {
    new_router: Bag<NewRouterCallback, Router>,
    close: BagOnce<Box<dyn FnOnce() + Send>>,
}

struct Inner {
    server: Server,
    app_data: ::mediasoup::types::data_structures::AppData,
    config: Arc<Config>,
    routers: Mutex<Vec<(RouterId, Weak<RouterInner>)>>,
    handlers: Handlers,
    /// Stops the node's own thread, when [`Worker::start`] made it.
    stop: Mutex<Option<futures::channel::oneshot::Sender<()>>>,
    /// That thread, joined when the last handle goes (so that a process
    /// does not exit with mediasoup workers still running).
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.handlers.close.call_simple();
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.lock().take() {
            // Not from the node's own thread (a handle it dropped itself):
            // it is stopping, and ends on its own.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// A Mafalda node, used as a mediasoup worker. Cheap to clone; a node
/// started by [`Worker::start`] stops when the last clone (and the last
/// router made from it) is dropped.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("node", &self.inner.config.node.name)
            .field("closed", &self.closed())
            .finish()
    }
}

impl Worker {
    fn new(
        server: Server,
        config: Arc<Config>,
        stop: Option<futures::channel::oneshot::Sender<()>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                server,
                app_data: Default::default(),
                config,
                routers: Mutex::new(Vec::new()),
                handlers: Handlers::default(),
                stop: Mutex::new(stop),
                thread: Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Starts a node with `config` in a thread of its own (its own actix
    /// system), serving HTTP on `config.http.listen`. Usable from any
    /// async runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.http.listen)?;
        let (ready_tx, ready_rx) = futures::channel::oneshot::channel();
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mafalda-node".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    match RunningNode::start(config, listener).await {
                        Ok(node) => {
                            let handles = (node.server.clone(), Arc::clone(node.config()));
                            if ready_tx.send(Ok(handles)).is_ok() {
                                let _ = stop_rx.await;
                            }
                            node.stop().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
            })?;
        let (server, config) = ready_rx.await.map_err(|_| StartError::ThreadGone)??;
        let worker = Self::new(server, config, Some(stop_tx));
        *worker.inner.thread.lock() = Some(thread);
        Ok(worker)
    }

    /// On a node already running in this actix system (it is not stopped
    /// when the handle goes).
    pub fn from_node(node: &RunningNode) -> Self {
        Self::new(node.server.clone(), Arc::clone(node.config()), None)
    }

    /// With `app_data` (a fresh handle only; clones share the first's).
    pub(super) fn with_app_data(
        mut self,
        app_data: ::mediasoup::types::data_structures::AppData,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.app_data = app_data;
        }
        self
    }

    /// The application data given at creation.
    pub fn app_data(&self) -> &::mediasoup::types::data_structures::AppData {
        &self.inner.app_data
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The node's resource counts (what `/api/status` serves).
    pub async fn status(&self) -> Result<NodeStatus, RequestError> {
        self.inner
            .server
            .status()
            .await
            .map_err(|_| RequestError::ChannelClosed)
    }

    /// A router: a new room of its own, whose routers offer
    /// `options.media_codecs` (mediasoup's `Worker::create_router`).
    pub async fn create_router(&self, options: RouterOptions) -> Result<Router, CreateRouterError> {
        let id = RouterId::from_str(&uuid::Uuid::new_v4().to_string())
            .map_err(|e| CreateRouterError::Room(e.to_string()))?;
        self.open(id, RoomId::new(format!("router-{id}")), options)
            .await
    }

    /// A router on the room named `room`, shared with whoever else uses
    /// that room (signalling clients joining it by name). The room is
    /// created with `options.media_codecs` if it is not open yet; an open
    /// room keeps its own codecs.
    pub async fn create_room_router(
        &self,
        room: &str,
        options: RouterOptions,
    ) -> Result<Router, CreateRouterError> {
        let id = RouterId::from_str(&uuid::Uuid::new_v4().to_string())
            .map_err(|e| CreateRouterError::Room(e.to_string()))?;
        self.open(id, RoomId::new(room.to_owned()), options).await
    }

    async fn open(
        &self,
        id: RouterId,
        room: RoomId,
        options: RouterOptions,
    ) -> Result<Router, CreateRouterError> {
        let (media_codecs, app_data) = (options.media_codecs, options.app_data);
        let ticket = self
            .inner
            .server
            .room_with_codecs(room.clone(), Arc::new(media_codecs))
            .await
            .map_err(|_| CreateRouterError::NodeGone)?
            .map_err(|e| CreateRouterError::Room(e.to_string()))?;
        let router = Router::open(id, room, ticket, self.clone(), app_data).await?;
        {
            let mut routers = self.inner.routers.lock();
            routers.retain(|(_, w)| w.strong_count() > 0);
            routers.push((id, router.downgrade_inner()));
        }
        self.inner.handlers.new_router.call_simple(&router);
        Ok(router)
    }

    /// The routers made through this handle that are still open.
    pub async fn dump(&self) -> Result<WorkerDump, RequestError> {
        let router_ids = self
            .inner
            .routers
            .lock()
            .iter()
            .filter(|(_, w)| w.strong_count() > 0)
            .map(|(id, _)| *id)
            .collect();
        Ok(WorkerDump { router_ids })
    }

    /// Whether the node has stopped (never, while a handle lives).
    pub fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Called with each router made through this handle.
    pub fn on_new_router<F: Fn(&Router) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.new_router.add(Arc::new(callback))
    }

    /// Called when the last handle goes (a node started by
    /// [`Worker::start`] then stops).
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.close.add(Box::new(callback))
    }
}
