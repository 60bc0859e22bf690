//! A loadgen target spreading one room over several nodes, and helpers to
//! read which streams run between which nodes.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use mafalda::loadgen::media::StreamSpec;
use mafalda::loadgen::target::{FacadeTarget, ProducerKey, Target, TargetError};
use mafalda::loadgen::ReceiverSnapshot;
use mafalda::room::RoomError;
use mafalda::sfu::SfuError;

use super::{eventually_ok, TIMEOUT};

/// One room over several nodes (one facade target each): publishers join
/// on the nodes of `publishers_on` in turn, subscribers on those of
/// `subscribers_on` in turn.
pub struct Across {
    nodes: Vec<FacadeTarget>,
    publishers_on: Vec<usize>,
    subscribers_on: Vec<usize>,
    /// Our index → (node, index in that node's target).
    peers: Vec<(usize, usize)>,
    publishers: usize,
    subscribers: usize,
    /// Every producer made, with its node.
    pub produced: Vec<(usize, ProducerKey)>,
}

impl Across {
    /// Publishers on the nodes `publishers_on`, subscribers on the nodes
    /// `subscribers_on` (indices into `nodes`, taken in turn).
    pub fn new(
        nodes: Vec<FacadeTarget>,
        publishers_on: Vec<usize>,
        subscribers_on: Vec<usize>,
    ) -> Self {
        Self {
            nodes,
            publishers_on,
            subscribers_on,
            peers: Vec::new(),
            publishers: 0,
            subscribers: 0,
            produced: Vec::new(),
        }
    }

    /// The node of participant `peer`.
    pub fn node_of_peer(&self, peer: usize) -> Option<usize> {
        self.peers.get(peer).map(|(node, _)| *node)
    }

    /// The node of the producer `key` (as in stream labels).
    pub fn node_of_producer(&self, key: &str) -> Option<usize> {
        self.produced
            .iter()
            .find(|(_, k)| k.0 == key)
            .map(|(node, _)| *node)
    }

    /// The (producer's node, subscriber's node) of a receiver stream,
    /// from its label (`"{peer}<-{producer}:{kind}"`).
    pub fn stream_nodes(&self, label: &str) -> Option<(usize, usize)> {
        let (peer, rest) = label.split_once("<-")?;
        let (producer, _) = rest.rsplit_once(':')?;
        let to = self.node_of_peer(peer.parse().ok()?)?;
        Some((self.node_of_producer(producer)?, to))
    }
}

#[async_trait(?Send)]
impl Target for Across {
    fn describe(&self) -> String {
        "one room over several nodes".into()
    }

    async fn join(&mut self, name: &str) -> Result<usize, TargetError> {
        let node = if name.starts_with("pub") {
            self.publishers += 1;
            self.publishers_on[(self.publishers - 1) % self.publishers_on.len()]
        } else {
            self.subscribers += 1;
            self.subscribers_on[(self.subscribers - 1) % self.subscribers_on.len()]
        };
        let i = self.nodes[node].join(name).await?;
        self.peers.push((node, i));
        Ok(self.peers.len() - 1)
    }

    async fn publish(
        &mut self,
        peer: usize,
        spec: &StreamSpec,
    ) -> Result<(ProducerKey, SocketAddr), TargetError> {
        let (node, i) = self.peers[peer];
        let (key, to) = self.nodes[node].publish(i, spec).await?;
        self.produced.push((node, key.clone()));
        Ok((key, to))
    }

    async fn subscribe(
        &mut self,
        peer: usize,
        producer: &ProducerKey,
        sink: SocketAddr,
    ) -> Result<u32, TargetError> {
        let (node, i) = self.peers[peer];
        // A producer of another node reaches this one through the room's
        // home, shortly after it was made.
        let t = &mut self.nodes[node];
        eventually_ok(
            "the producer to reach the subscriber's node",
            TIMEOUT,
            async || match t.subscribe(i, producer, sink).await {
                Err(TargetError::Sfu(SfuError::Room(RoomError::UnknownProducer(id)))) => Err(id),
                other => Ok(other),
            },
        )
        .await
    }

    async fn leave(&mut self, peer: usize) -> Result<(), TargetError> {
        let (node, i) = self.peers[peer];
        self.nodes[node].leave(i).await
    }

    async fn worker_cpu(&self) -> Vec<Duration> {
        let mut v = Vec::new();
        for t in &self.nodes {
            v.extend(t.worker_cpu().await);
        }
        v
    }

    async fn shutdown(&mut self) {
        for t in &mut self.nodes {
            t.shutdown().await;
        }
    }
}

/// Whether every stream of `s` has received something.
pub fn all_flowing(s: &ReceiverSnapshot) -> bool {
    !s.streams.is_empty() && s.streams.iter().all(|st| st.packets > 0)
}
