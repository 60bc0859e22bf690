//! Traffic with each peer: messages counted by the link code, bytes read
//! from QUIC's own statistics, both monotonic over the node's life (see
//! [`Node::link_stats`](crate::Node::link_stats)).
//!
//! A peer may be reached over several connections in turn (a link lost and
//! dialed again, a duplicate retired, a restarted peer); the byte counts
//! add up every connection that carried a link to it: the ones that closed
//! (their final figures, kept when they close) and the live ones (read at
//! each call), under one lock so that a connection moving from one group
//! to the other is never counted twice or not at all.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use parking_lot::Mutex;

use crate::id::NodeId;

/// Traffic with one peer, over every link to it.
#[derive(Debug, Default)]
pub(crate) struct PeerTraffic {
    pub(crate) tells_sent: AtomicU64,
    pub(crate) tells_received: AtomicU64,
    pub(crate) asks_sent: AtomicU64,
    pub(crate) asks_received: AtomicU64,
    conns: Mutex<Connections>,
}

#[derive(Debug, Default)]
struct Connections {
    /// UDP bytes (sent, received) of the connections that closed.
    closed: (u64, u64),
    /// Connections of the links being driven.
    live: Vec<quinn::Connection>,
}

fn udp_bytes(conn: &quinn::Connection) -> (u64, u64) {
    let s = conn.stats();
    (s.udp_tx.bytes, s.udp_rx.bytes)
}

impl PeerTraffic {
    /// A link to the peer is up on `conn`: its bytes count from now on.
    pub(crate) fn link_up(&self, conn: &quinn::Connection) {
        let mut c = self.conns.lock();
        if !c.live.iter().any(|l| l.stable_id() == conn.stable_id()) {
            c.live.push(conn.clone());
        }
    }

    /// The link on `conn` is over: its final figures are kept.
    pub(crate) fn link_closed(&self, conn: &quinn::Connection) {
        let mut c = self.conns.lock();
        if let Some(i) = c
            .live
            .iter()
            .position(|l| l.stable_id() == conn.stable_id())
        {
            let gone = c.live.swap_remove(i);
            let (sent, received) = udp_bytes(&gone);
            c.closed.0 += sent;
            c.closed.1 += received;
        }
    }

    /// UDP bytes (sent, received) over every connection so far.
    fn bytes(&self) -> (u64, u64) {
        let c = self.conns.lock();
        c.live
            .iter()
            .map(udp_bytes)
            .fold(c.closed, |(s, r), (ls, lr)| {
                (s.saturating_add(ls), r.saturating_add(lr))
            })
    }

    /// The figures, with the live link's round-trip time if there is one.
    pub(crate) fn stats(&self, peer: NodeId, rtt: Option<Duration>) -> LinkStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (bytes_sent, bytes_received) = self.bytes();
        LinkStats {
            peer,
            rtt,
            tells_sent: get(&self.tells_sent),
            tells_received: get(&self.tells_received),
            asks_sent: get(&self.asks_sent),
            asks_received: get(&self.asks_received),
            bytes_sent,
            bytes_received,
        }
    }
}

/// Traffic with one peer since this node started, over every link to it
/// (see [`Node::link_stats`](crate::Node::link_stats)). Every count only
/// grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// The peer.
    pub peer: NodeId,
    /// Round-trip time of the live link, as QUIC estimates it; `None` when
    /// no link to the peer is up.
    pub rtt: Option<Duration>,
    /// Tells written to links to the peer.
    pub tells_sent: u64,
    /// Tells read from links of the peer (delivered or not).
    pub tells_received: u64,
    /// Asks (and actor lookups) sent to the peer.
    pub asks_sent: u64,
    /// Asks (and actor lookups) the peer sent to this node.
    pub asks_received: u64,
    /// UDP payload bytes sent to the peer: every QUIC packet of every
    /// connection that carried a link to it (streams, SWIM datagrams,
    /// acknowledgements, handshakes).
    pub bytes_sent: u64,
    /// UDP payload bytes received from the peer, likewise.
    pub bytes_received: u64,
}
