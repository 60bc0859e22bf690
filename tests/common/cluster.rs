//! Helpers for tests with several clustered nodes on loopback (QUIC with
//! mutual TLS, certificates made per test).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mafalda::cluster::Cluster;
use mafalda::config::Config;
use mafalda::home::{candidates, Candidate};
use mafalda::ids::RoomId;
use mafalda::metrics::Counters;
use mafalda::node::RunningNode;
use mafalda::server::{NodeStatus, Server};
use mafalda::sfu::Sfu;
use mafalda_actors::{tls, NodeId};

use super::{eventually, start_node, test_config};

/// A fresh CA and one certificate per node, in a temporary folder.
pub fn certs(nodes: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mafalda-cluster-test-{}-{}",
        std::process::id(),
        nodes.join("-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    tls::write_ca(&dir).expect("ca");
    for n in nodes {
        let id = NodeId::new(n).expect("name");
        tls::write_node_cert(&dir, &dir.join("ca.pem"), &dir.join("ca.key"), &id).expect("cert");
    }
    dir
}

/// A one-worker node named `name` joining through `seeds`, with fast SWIM.
pub fn clustered(name: &str, certs: &Path, seeds: Vec<std::net::SocketAddr>) -> Config {
    let mut c = test_config(1);
    c.node.name = name.into();
    c.cluster.enabled = true;
    c.cluster.listen = "127.0.0.1:0".parse().unwrap();
    c.cluster.seeds = seeds;
    c.cluster.ca = certs.join("ca.pem");
    c.cluster.cert = certs.join(format!("{name}.pem"));
    c.cluster.key = certs.join(format!("{name}.key"));
    c.cluster.probe_period_ms = 300;
    c.cluster.suspect_to_down_ms = 900;
    c.cluster.load_publish_ms = 200;
    c
}

/// The node's cluster membership.
pub fn cluster(node: &RunningNode) -> &Cluster {
    node.cluster.as_ref().expect("cluster enabled")
}

/// Three clustered nodes named `{tag}-a`, `-b`, `-c`, each with `config`
/// applied to its configuration, each seeing the others alive. Returns the
/// nodes and the certificates' folder.
pub async fn three_nodes(
    tag: &str,
    config: impl Fn(&mut Config),
) -> (Vec<RunningNode>, std::path::PathBuf) {
    let names = node_names(tag);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = certs(&refs);
    let mut nodes: Vec<RunningNode> = Vec::new();
    for name in &names {
        let seeds = nodes.iter().map(|n| cluster(n).node().addr()).collect();
        let mut c = clustered(name, &dir, seeds);
        config(&mut c);
        nodes.push(start_node(c).await);
    }
    let clusters: Vec<&Cluster> = nodes.iter().map(cluster).collect();
    see_each_other(&clusters, &names).await;
    (nodes, dir)
}

/// `{tag}-a`, `{tag}-b`, `{tag}-c`.
pub fn node_names(tag: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect()
}

/// Waits until each of `clusters` sees every other of `names` alive.
pub async fn see_each_other(clusters: &[&Cluster], names: &[String]) {
    for c in clusters {
        eventually(
            "every node to see the others",
            Duration::from_secs(15),
            async || {
                let alive = c
                    .members()
                    .iter()
                    .filter(|m| m.state == "alive" && names.contains(&m.node))
                    .count();
                (alive == names.len() - 1).then_some(())
            },
        )
        .await;
    }
}

/// A room name whose home, by the home rule over `names` (all alive, none
/// draining), is `top`: the first of `{prefix}-0`, `{prefix}-1`, … that
/// ranks it first.
pub fn room_homed_on(prefix: &str, top: &str, names: &[String]) -> RoomId {
    let view = all_alive(names);
    (0..)
        .map(|i| RoomId::new(format!("{prefix}-{i}")))
        .find(|room| candidates(room, &view)[0].as_str() == top)
        .expect("some room name ranks every node first")
}

/// The home rule's top candidate for `room` among `names` (all alive, none
/// draining).
pub fn top_of(room: &RoomId, names: &[&str]) -> String {
    candidates(room, &all_alive(names))[0].to_string()
}

/// A view of the home rule with the nodes `names`, all alive, none
/// draining.
fn all_alive(names: &[impl AsRef<str>]) -> Vec<Candidate> {
    names
        .iter()
        .map(|n| Candidate {
            node: NodeId::new(n.as_ref()).expect("node name"),
            alive: true,
            draining: false,
        })
        .collect()
}

/// Waits until every node is idle (nothing leaked), then stops them, last
/// first, and removes the certificates' folder.
pub async fn idle_then_stop(nodes: Vec<RunningNode>, dir: &Path) {
    for n in &nodes {
        super::wait_idle(n).await;
    }
    for n in nodes.into_iter().rev() {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The node's part in its first open room: its role and the home it names
/// (`("none", None)` without a room).
pub fn role_in(s: &NodeStatus) -> (&'static str, Option<String>) {
    s.room_details
        .first()
        .map(|r| (r.role, r.home.clone()))
        .unwrap_or(("none", None))
}

/// The node's part in `room`, as [`role_in`].
pub fn role_of(s: &NodeStatus, room: &RoomId) -> (&'static str, Option<String>) {
    s.room_details
        .iter()
        .find(|r| &r.room == room)
        .map(|r| (r.role, r.home.clone()))
        .unwrap_or(("none", None))
}

/// Whether `room` has exactly one home, on the node named `home`, with
/// every other of `statuses` attached to it as a shard (and listed by it).
pub fn one_home(statuses: &[&NodeStatus], room: &RoomId, home: &str) -> bool {
    statuses.iter().all(|s| {
        let Some(r) = s.room_details.iter().find(|r| &r.room == room) else {
            return false;
        };
        let named = r.home.as_deref() == Some(home);
        if s.node == home {
            let mut others = statuses.iter().filter(|o| o.node != home);
            named && r.role == "home" && others.all(|o| r.shards.contains(&o.node))
        } else {
            named && r.role == "shard"
        }
    })
}

/// A clustered node in a thread and actix System of its own, without HTTP,
/// that can vanish at once: [`NodeThread::crash`] drops its runtime, so its
/// fabric endpoint goes silent with no goodbye, its rooms close nothing and
/// tell nobody, and its mediasoup workers stop. To the other nodes, a
/// crash.
pub struct NodeThread {
    /// The node's worker pool and room registry.
    pub server: Server,
    /// Its cluster membership.
    pub cluster: Cluster,
    config: Arc<Config>,
    crash: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeThread {
    /// Starts a node with `config` (`[cluster]` enabled) in its own thread.
    pub async fn start(config: Config) -> Self {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (crash_tx, crash_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let config = Arc::new(config);
                let counters = Arc::new(Counters::default());
                let server = Server::start(Arc::clone(&config), counters)
                    .await
                    .expect("server starts");
                let cluster = Cluster::join(&server).await.expect("joins the cluster");
                server.attach_fabric(cluster.node().clone());
                let _ = started_tx.send((server, cluster, config));
                let _ = crash_rx.await;
            });
            // Dropping the system drops its runtime and every actor and
            // task on it, the fabric endpoint included.
        });
        let (server, cluster, config) = tokio::time::timeout(Duration::from_secs(60), started_rx)
            .await
            .expect("the node thread starts in time")
            .expect("the node thread starts");
        Self {
            server,
            cluster,
            config,
            crash: Some(crash_tx),
            thread: Some(thread),
        }
    }

    /// The facade on this node.
    pub fn sfu(&self) -> Sfu {
        Sfu::new(self.server.clone(), &self.config)
    }

    /// The node vanishes; returns once its thread has ended.
    pub async fn crash(mut self) {
        if let Some(crash) = self.crash.take() {
            let _ = crash.send(());
        }
        if let Some(thread) = self.thread.take() {
            actix_rt::task::spawn_blocking(move || thread.join())
                .await
                .expect("join task")
                .expect("the node thread ends without panicking");
        }
    }
}
