//! Helpers for tests with several clustered nodes on loopback (QUIC with
//! mutual TLS, certificates made per test).

use std::path::{Path, PathBuf};

use mafalda::cluster::Cluster;
use mafalda::config::Config;
use mafalda::node::RunningNode;
use mafalda_actors::{tls, NodeId};

use super::test_config;

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
