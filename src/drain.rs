//! Graceful drain: a node empties itself before it stops.
//!
//! SIGTERM or `POST /api/drain` starts it ([`Drainer::start`]); then the
//! node
//!
//! 1. sets its drain flag, which it gossips at once in SWIM metadata: no
//!    peer spills a participant to it or makes it a room's home, and
//!    `join`s it receives are refused with the code `draining` and the URL
//!    of a peer that takes participants;
//! 2. hands the homes of its rooms over to other nodes (the home rule over
//!    the members that are not draining);
//! 3. tells its participants to `reconnect`, `drain.batch_size` every
//!    `drain.batch_interval_ms`, with the URL of the best peer at that
//!    moment: its rooms' local participants (also those whose signalling
//!    is on another node), and its sessions whose media another node
//!    carries. A participant keeps its media until it leaves, so a client
//!    that joins elsewhere first and leaves then loses nothing;
//! 4. is *drained* once nobody is left, or at `drain.deadline_ms`; the
//!    node then stops (closing whatever is left).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

use crate::cluster::Cluster;
use crate::registry::EvacuatePeers;
use crate::room::Evacuate;
use crate::server::Server;
use crate::spill::{redirect_url, OriginCount};

/// Where a node is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DrainState {
    /// Serving as usual.
    Serving,
    /// Draining.
    Draining,
    /// Drained (empty, or past the deadline): the node stops.
    Drained,
}

/// Starts and follows a node's drain; cheap to clone.
#[derive(Debug, Clone)]
pub struct Drainer {
    server: Server,
    cluster: Option<Cluster>,
    state: Arc<watch::Sender<DrainState>>,
}

impl Drainer {
    /// The drain of the node made of `server` and `cluster`.
    pub fn new(server: Server, cluster: Option<Cluster>) -> Self {
        Self {
            server,
            cluster,
            state: Arc::new(watch::Sender::new(DrainState::Serving)),
        }
    }

    /// Where the drain is.
    pub fn state(&self) -> DrainState {
        *self.state.borrow()
    }

    /// Starts draining (once: later calls do nothing); answers whether this
    /// call started it. Must be called inside an actix `System`.
    pub fn start(&self) -> bool {
        let started = self.state.send_if_modified(|s| {
            let serving = *s == DrainState::Serving;
            if serving {
                *s = DrainState::Draining;
            }
            serving
        });
        if started {
            let span = tracing::info_span!("drain", node = %self.server.node());
            actix_web::rt::spawn(self.clone().run().instrument(span));
        }
        started
    }

    /// Completes once the node is drained.
    pub async fn drained(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| *s == DrainState::Drained).await;
    }

    /// Participants still on the node: its rooms' local peers and its
    /// sessions whose media is elsewhere.
    async fn remaining(&self) -> i64 {
        let peers = self.server.env().counters.snapshot().peers;
        let origins = match &self.cluster {
            Some(c) => c.sessions().send(OriginCount).await.unwrap_or(0),
            None => 0,
        };
        peers + i64::try_from(origins).unwrap_or(i64::MAX)
    }

    async fn run(self) {
        let env = Arc::clone(self.server.env());
        let config = &env.config.drain;
        env.draining.store(true, Ordering::SeqCst);
        if let Some(c) = &self.cluster {
            c.publish_now();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(config.deadline_ms);
        tracing::warn!(
            remaining = self.remaining().await,
            deadline_ms = config.deadline_ms,
            "draining: no new participants or rooms; moving everyone elsewhere"
        );
        let moving = self.server.hand_off_homes().await.unwrap_or(0);
        tracing::info!(rooms = moving, "drain: room homes handed over");
        loop {
            let left = self.remaining().await;
            if left <= 0 {
                tracing::warn!("drained: nobody left");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    left,
                    "drain deadline reached: stopping with participants left"
                );
                break;
            }
            let url = match &self.cluster {
                Some(c) => redirect_url(c.node()).await,
                None => None,
            };
            let batch = config.batch_size;
            let told = self
                .server
                .rooms()
                .send(EvacuatePeers {
                    max: batch,
                    url: url.clone(),
                })
                .await
                .unwrap_or(0);
            let told_sessions = match &self.cluster {
                Some(c) if told < batch => c
                    .sessions()
                    .send(Evacuate {
                        max: batch - told,
                        url: url.clone(),
                    })
                    .await
                    .unwrap_or(0),
                _ => 0,
            };
            if told + told_sessions > 0 {
                tracing::info!(
                    told = told + told_sessions,
                    left,
                    ?url,
                    "drain: a batch told to move"
                );
            }
            tokio::time::sleep_until(deadline.min(
                tokio::time::Instant::now() + Duration::from_millis(config.batch_interval_ms),
            ))
            .await;
        }
        self.state.send_replace(DrainState::Drained);
    }
}
