//! The signalling end of spill-over: choosing a peer, asking it to admit a
//! participant, and the [`RemoteSession`] a WebSocket session then drives.

use std::time::Duration;

use actix::Addr;
use mafalda_actors::{MemberState, Node, NodeId};
use serde_json::Value;

use super::sessions::{CloseOrigin, EventFrames, OpenOrigin, SessionsActor};
use super::wire::{SessionId, SessionRequest, SpillError, SpillJoin, SESSIONS_ACTOR};
use super::{band, rank, Offer, EXACT_ASKS, EXACT_ASK_TIMEOUT};
use crate::cluster::{member_load, GetNodeLoad, NodeLoad, LOAD_ACTOR};
use crate::signalling::{ErrorCode, JoinRequest, SignalError};

/// Peers asked to admit one participant before it stays here.
const MAX_ADMISSION_TRIES: usize = 3;
/// How long a peer has to admit a participant.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the media node has to answer one request of a spilled session.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`join_elsewhere`] did.
#[derive(Debug)]
pub enum SpillOutcome {
    /// A peer admitted the participant.
    Placed {
        /// The session, driven by the WebSocket session.
        session: RemoteSession,
        /// The `join` reply's data, for the client.
        join: Value,
    },
    /// No peer admitted it: it stays on this node.
    Stay,
    /// The join itself failed on the peer (the client sees the error).
    Failed(SignalError),
}

/// The members as the spill ranking sees them.
fn offers(fabric: &Node) -> Vec<Offer> {
    fabric
        .members()
        .into_iter()
        .filter(|m| &m.id != fabric.id())
        .map(|m| Offer {
            alive: m.state == MemberState::Alive,
            draining: m.metadata.as_ref().is_some_and(|md| md.draining),
            load: member_load(&m),
            node: m.id,
        })
        .collect()
}

/// The exact loads of the first [`EXACT_ASKS`] of `ranked`, asked at once.
async fn exact_loads(fabric: &Node, ranked: &[NodeId]) -> Vec<(NodeId, NodeLoad)> {
    let asks = ranked.iter().take(EXACT_ASKS).map(|node| async move {
        let r = fabric.actor_ref::<GetNodeLoad>(node, LOAD_ACTOR).ok()?;
        let load = r.ask_timeout(GetNodeLoad, EXACT_ASK_TIMEOUT).await.ok()?;
        Some((node.clone(), load))
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The order in which peers are asked to admit: the asked ones that are
/// neither full nor draining by their exact load, best first, then the
/// rest of the gossip ranking. Peers in `prefer` (those already serving the
/// room) come first, in that order, so that a room fills one peer before
/// it spreads to the next (fewer cross-node pipes).
async fn admission_order(fabric: &Node, prefer: &[NodeId]) -> Vec<NodeId> {
    let mut ranked = rank(&offers(fabric), &mut rand::thread_rng());
    ranked.sort_by_key(|n| prefer.iter().position(|p| p == n).unwrap_or(usize::MAX));
    let mut exact: Vec<(usize, i64, i64, usize, NodeId)> = exact_loads(fabric, &ranked)
        .await
        .into_iter()
        .filter(|(_, l)| !l.full && !l.draining)
        .map(|(node, l)| {
            let pos = ranked.iter().position(|n| n == &node).unwrap_or(0);
            let preferred = prefer.iter().position(|p| p == &node).unwrap_or(usize::MAX);
            (preferred, band(l.score), l.peers, pos, node)
        })
        .collect();
    exact.sort();
    let mut order: Vec<NodeId> = exact.into_iter().map(|(.., n)| n).collect();
    order.extend(ranked.into_iter().skip(EXACT_ASKS));
    order
}

/// Places a participant whose node is full on a peer (see the module
/// docs): at most a few peers are asked to admit it, best first, those in
/// `prefer` (already serving the room) before the others.
pub async fn join_elsewhere(
    fabric: &Node,
    sessions: &Addr<SessionsActor>,
    join: &JoinRequest,
    capacity: usize,
    prefer: &[NodeId],
) -> SpillOutcome {
    for host in admission_order(fabric, prefer)
        .await
        .into_iter()
        .take(MAX_ADMISSION_TRIES)
    {
        let Ok((id, events)) = sessions
            .send(OpenOrigin {
                host: host.clone(),
                capacity,
            })
            .await
        else {
            return SpillOutcome::Stay;
        };
        let session = RemoteSession {
            host: host.clone(),
            id,
            fabric: fabric.clone(),
            sessions: sessions.clone(),
            events,
        };
        let asked = match fabric.actor_ref::<SpillJoin>(&host, SESSIONS_ACTOR) {
            Ok(r) => {
                r.ask_timeout(
                    SpillJoin {
                        origin: fabric.id().clone(),
                        session: id,
                        room: join.room.clone(),
                        display_name: join.display_name.clone(),
                    },
                    ADMISSION_TIMEOUT,
                )
                .await
            }
            Err(_) => continue,
        };
        // A session dropped below closes its origin (and a late admission
        // there).
        match asked {
            Ok(Ok(accepted)) => match serde_json::from_str(&accepted.join) {
                Ok(join) => return SpillOutcome::Placed { session, join },
                Err(e) => {
                    tracing::warn!(%host, error = %e, "spill: the peer's join reply is not JSON");
                }
            },
            Ok(Err(SpillError::Join(e))) => {
                let e = e.get().unwrap_or_else(|w| {
                    SignalError::new(ErrorCode::Internal, format!("join failed on {host}: {w}"))
                });
                return SpillOutcome::Failed(e);
            }
            Ok(Err(refused)) => {
                tracing::info!(%host, reason = %refused, "spill: the peer refused");
            }
            Err(e) => {
                tracing::info!(%host, error = %e, "spill: the peer did not answer");
            }
        }
    }
    SpillOutcome::Stay
}

/// Where a client refused by this (draining) node should join instead: the
/// signalling URL of the best peer that is neither full nor draining, or
/// of any peer that is not draining.
pub async fn redirect_url(fabric: &Node) -> Option<String> {
    let mut offers = offers(fabric);
    for o in offers.iter_mut() {
        match o.load.as_mut() {
            // Full nodes stay candidates (ranked after the others by
            // their score), for when every node is full.
            Some(load) => load.full = false,
            // A member whose load did not arrive yet is asked too, last.
            None => {
                o.load = Some(crate::cluster::GossipedLoad {
                    score: f32::MAX,
                    ..Default::default()
                })
            }
        }
    }
    let ranked = rank(&offers, &mut rand::thread_rng());
    let asked = exact_loads(fabric, &ranked).await;
    let url_where = |ok: &dyn Fn(&NodeLoad) -> bool| {
        asked
            .iter()
            .filter(|(_, l)| ok(l))
            .find_map(|(_, l)| l.signalling_url.clone())
    };
    url_where(&|l| !l.full && !l.draining).or_else(|| url_where(&|l| !l.draining))
}

/// A WebSocket session's participant whose media another node carries.
/// Dropping it ends the participant there.
#[derive(Debug)]
pub struct RemoteSession {
    host: NodeId,
    id: SessionId,
    fabric: Node,
    sessions: Addr<SessionsActor>,
    events: EventFrames,
}

impl RemoteSession {
    /// The node carrying the participant's media.
    pub fn host(&self) -> &NodeId {
        &self.host
    }

    /// Runs one request frame on the media node; answers the reply's
    /// `data`, or the protocol's error.
    pub async fn request(&self, frame: &str) -> Result<Value, SignalError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            SignalError::new(
                ErrorCode::Internal,
                format!(
                    "the node carrying this participant's media ({}): {e}",
                    self.host
                ),
            )
        };
        let r = self
            .fabric
            .actor_ref::<SessionRequest>(&self.host, SESSIONS_ACTOR)
            .map_err(|e| unreachable(&e))?;
        let reply = r
            .ask_timeout(
                SessionRequest {
                    origin: self.fabric.id().clone(),
                    session: self.id,
                    request: frame.to_owned(),
                },
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|e| unreachable(&e))?;
        match reply {
            Ok(data) => serde_json::from_str(&data).map_err(|e| unreachable(&e)),
            Err(e) => Err(e.get().unwrap_or_else(|w| unreachable(&w))),
        }
    }

    /// The next event frame for the client; `None` once the session is
    /// over (the media node dropped the participant, or went down after a
    /// `reconnect` event).
    pub async fn next_event(&mut self) -> Option<String> {
        self.events.recv().await
    }
}

impl Drop for RemoteSession {
    fn drop(&mut self) {
        self.sessions.do_send(CloseOrigin(self.id));
    }
}
