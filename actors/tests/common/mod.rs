//! Shared helpers of the integration tests: in-memory PKI, loopback nodes
//! on port 0, test actors, and event waits with timeouts.
#![allow(dead_code)]

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Once,
    },
    time::Duration,
};

use actix::prelude::*;
// The one way tests wait for a state (not every test binary uses both).
#[allow(unused_imports)]
pub use mafalda_actors::testing::{eventually, eventually_ok};
use mafalda_actors::{
    tls::{generate_ca, generate_node_cert, CertifiedKeyPem},
    EndpointSource, MemberState, MembershipEvent, Node, NodeConfig, NodeId, RemoteMessage,
    SwimConfig, TlsConfig,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Generous bound for anything that should happen "soon" on a loaded CI.
pub const SOON: Duration = Duration::from_secs(30);

static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Records panics from any thread (spawned tasks included).
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Assertion failures of the tests themselves are not task panics.
            let in_tests = info.location().is_some_and(|l| l.file().contains("tests/"));
            if !in_tests {
                PANICKED.store(true, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

pub fn assert_no_panic() {
    assert!(!PANICKED.load(Ordering::SeqCst), "a task panicked");
}

pub fn init() {
    install_panic_hook();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,mafalda_actors=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A throw-away cluster CA.
#[derive(Clone)]
pub struct Pki {
    pub ca: CertifiedKeyPem,
}

impl Pki {
    pub fn new() -> Self {
        Self {
            ca: generate_ca("test CA").unwrap(),
        }
    }

    pub fn node_pem(&self, name: &str) -> CertifiedKeyPem {
        generate_node_cert(
            &self.ca.cert_pem,
            &self.ca.key_pem,
            &NodeId::new(name).unwrap(),
        )
        .unwrap()
    }

    pub fn tls(&self, name: &str) -> TlsConfig {
        let pem = self.node_pem(name);
        TlsConfig::from_pem(&self.ca.cert_pem, &pem.cert_pem, &pem.key_pem).unwrap()
    }
}

pub fn config(pki: &Pki, name: &str, seeds: Vec<std::net::SocketAddr>) -> NodeConfig {
    let mut c = NodeConfig::new(
        NodeId::new(name).unwrap(),
        pki.tls(name),
        EndpointSource::Bind("127.0.0.1:0".parse().unwrap()),
    );
    c.seeds = seeds;
    c.swim = SwimConfig::fast();
    c.connect_timeout = Duration::from_secs(5);
    c.ask_timeout = Duration::from_secs(20);
    c
}

pub async fn start(pki: &Pki, name: &str, seeds: Vec<std::net::SocketAddr>) -> Node {
    Node::start(config(pki, name, seeds), std::future::pending())
        .await
        .unwrap()
}

pub fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

pub async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Waits until `node` sees every node of `names` alive, driven by its
/// membership events (no sleeps).
pub async fn wait_members(node: &Node, names: &[&str]) {
    let mut events = node.events();
    let done = |node: &Node| {
        let members = node.members();
        names.iter().all(|n| {
            members
                .iter()
                .any(|m| m.id.as_str() == *n && m.state == MemberState::Alive)
        })
    };
    within(&format!("{} to see {names:?}", node.id()), SOON, async {
        while !done(node) {
            let _ = events.recv().await;
        }
    })
    .await;
}

/// Waits for a membership event matching `pred` on `events`.
pub async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<MembershipEvent>,
    limit: Duration,
    what: &str,
    pred: impl Fn(&MembershipEvent) -> bool,
) -> MembershipEvent {
    within(what, limit, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel: {e}"),
            }
        }
    })
    .await
}

// ---- test actors -------------------------------------------------------

#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "String")]
pub struct Echo(pub String);
impl RemoteMessage for Echo {
    const TAG: &'static str = "test.Echo/v1";
}

/// Replies after `ms` milliseconds.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
pub struct Slow(pub u64);
impl RemoteMessage for Slow {
    const TAG: &'static str = "test.Slow/v1";
}

/// A tell carrying a sequence number and the sender's name.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Push {
    pub from: String,
    pub seq: u64,
}
impl RemoteMessage for Push {
    const TAG: &'static str = "test.Push/v1";
}

/// Returns the sequence numbers received from `from`.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "Vec<u64>")]
pub struct Log {
    pub from: String,
}
impl RemoteMessage for Log {
    const TAG: &'static str = "test.Log/v1";
}

/// A message type no test actor accepts.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Nobody;
impl RemoteMessage for Nobody {
    const TAG: &'static str = "test.Nobody/v1";
}

pub struct Worker {
    pub name: String,
    pub log: std::collections::HashMap<String, Vec<u64>>,
    pub count: watch::Sender<usize>,
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<Echo> for Worker {
    type Result = String;
    fn handle(&mut self, msg: Echo, _: &mut Context<Self>) -> String {
        format!("{}:{}", self.name, msg.0)
    }
}

impl Handler<Slow> for Worker {
    type Result = ResponseFuture<u64>;
    fn handle(&mut self, msg: Slow, _: &mut Context<Self>) -> Self::Result {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(msg.0)).await;
            msg.0
        })
    }
}

impl Handler<Push> for Worker {
    type Result = ();
    fn handle(&mut self, msg: Push, _: &mut Context<Self>) {
        self.log.entry(msg.from).or_default().push(msg.seq);
        self.count.send_modify(|c| *c += 1);
    }
}

impl Handler<Log> for Worker {
    type Result = MessageResult<Log>;
    fn handle(&mut self, msg: Log, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.log.get(&msg.from).cloned().unwrap_or_default())
    }
}

/// Starts a worker and registers it as `worker` for every test message.
pub fn spawn_worker(node: &Node) -> watch::Receiver<usize> {
    let (tx, rx) = watch::channel(0);
    let addr = Worker {
        name: node.id().to_string(),
        log: Default::default(),
        count: tx,
    }
    .start();
    node.register_actor::<Worker, Echo>("worker", &addr)
        .unwrap();
    node.register_actor::<Worker, Slow>("worker", &addr)
        .unwrap();
    node.register_actor::<Worker, Push>("worker", &addr)
        .unwrap();
    node.register_actor::<Worker, Log>("worker", &addr).unwrap();
    rx
}

/// A node running in its own thread and actix System, which can be
/// killed abruptly (runtime dropped: no goodbye, no QUIC close).
pub struct ThreadNode {
    pub node: Node,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadNode {
    pub fn start(config: NodeConfig) -> Self {
        let (node_tx, node_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let node = Node::start(config, std::future::pending()).await.unwrap();
                spawn_worker(&node);
                node_tx.send(node).unwrap();
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    let _ = kill_rx.recv();
                    let _ = tx.send(());
                });
                let _ = rx.await;
            });
            // Dropping the system drops the runtime and every task in it.
        });
        let node = node_rx.recv_timeout(SOON).expect("thread node started");
        Self {
            node,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    pub fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}
