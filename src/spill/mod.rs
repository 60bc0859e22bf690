//! Spill-over: a participant whose node is full is served by a peer.
//!
//! A join arrives on node A (its WebSocket signalling stays there). When
//! every worker of A is at or above its watermark ([`Headroom::full`]), A
//! places the participant on a peer instead, decided by the peers alone:
//!
//! 1. **Ranking from gossip.** A ranks the members it sees alive, not
//!    draining and not full, by the load they gossip in SWIM metadata
//!    ([`GossipedLoad`]: best worker score, peers), in bands of 5 % of
//!    score; ties within a band are broken at random ([`rank`]). Members
//!    that already serve participants of the room come first (most
//!    participants first): a room fills one peer before it spreads to the
//!    next, which keeps its cross-node pipes few.
//! 2. **A fresh exact ask.** The first [`EXACT_ASKS`] of them are asked
//!    their exact load ([`GetNodeLoad`](crate::cluster::GetNodeLoad)) at
//!    once, within [`EXACT_ASK_TIMEOUT`], and re-ranked by it.
//! 3. **Admission.** A sends [`SpillJoin`] to the best; the peer admits
//!    only if, by its own exact counts at that moment, it is not full and
//!    not draining, and fewer than a few admissions are in flight there; it
//!    may refuse ([`SpillError`]), and A then tries the next. If nobody
//!    admits, A serves the participant itself (on its least-loaded worker).
//!
//! The peer's room then has the participant as one of its own peers: its
//! transports (and their ICE candidates) are the peer's, its producers and
//! consumers live on the peer's workers, and media from the rest of the
//! room reaches it through cross-node pipes. A relays the client's
//! requests ([`SessionRequest`], the protocol's JSON text) and the peer
//! relays the participant's events back ([`SessionEvent`], in order).
//!
//! # Herds
//!
//! Gossip is a little stale: many nodes filling up at once could all pick
//! the one peer that looked emptiest. Three things keep them from piling
//! on it: the random tie-break spreads choosers over peers of similar load;
//! the exact ask replaces the stale figure by the current one; and the
//! admission is decided by the peer itself on its exact counts, which
//! count a participant as soon as its join is accepted, so the peer
//! refuses once full, and refuses beyond a few concurrent admissions, and
//! the refused choosers move on to their next candidate.
//!
//! # Loss
//!
//! If the media node goes down, A's session gets a `reconnect` event and
//! its socket closes; the client joins again and is placed anew. If A goes
//! down, the peer drops the participants it hosted for A.

mod client;
mod sessions;
pub mod wire;

use rand::Rng;

use mafalda_actors::NodeId;

use crate::cluster::GossipedLoad;
use crate::placement::band;

pub use client::{join_elsewhere, redirect_url, RemoteSession, SpillOutcome};
pub use sessions::{CloseOrigin, EventFrames, OpenOrigin, OriginCount, SessionsActor};

/// Peers asked their exact load before choosing.
pub const EXACT_ASKS: usize = 3;

/// How long the exact asks may take.
pub const EXACT_ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

/// A member as the spill ranking sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The member.
    pub node: NodeId,
    /// SWIM says alive.
    pub alive: bool,
    /// It gossips the drain flag.
    pub draining: bool,
    /// Its gossiped load, if it decoded.
    pub load: Option<GossipedLoad>,
}

/// The members that may take a spilled participant, best first: alive, not
/// draining, with a load that says not full; by score band, then fewest
/// peers, then at random (`rng`).
pub fn rank(offers: &[Offer], rng: &mut impl Rng) -> Vec<NodeId> {
    let mut eligible: Vec<(i64, u32, u32, NodeId)> = offers
        .iter()
        .filter(|o| o.alive && !o.draining)
        .filter_map(|o| {
            let load = o.load.as_ref()?;
            (!load.full).then(|| {
                (
                    band(f64::from(load.score)),
                    load.peers,
                    rng.gen::<u32>(),
                    o.node.clone(),
                )
            })
        })
        .collect();
    eligible.sort();
    eligible.into_iter().map(|(.., n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn offer(name: &str, score: f32, peers: u32, full: bool) -> Offer {
        Offer {
            node: NodeId::new(name).unwrap(),
            alive: true,
            draining: false,
            load: Some(GossipedLoad {
                score,
                peers,
                full,
                ..GossipedLoad::default()
            }),
        }
    }

    fn names(v: &[NodeId]) -> Vec<String> {
        v.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn least_loaded_first_and_full_draining_dead_or_unknown_left_out() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut dead = offer("dead", 0.0, 0, false);
        dead.alive = false;
        let mut draining = offer("draining", 0.0, 0, false);
        draining.draining = true;
        let mut unknown = offer("unknown", 0.0, 0, false);
        unknown.load = None;
        let offers = vec![
            offer("busy", 0.5, 3, false),
            offer("full", 0.1, 0, true),
            dead,
            draining,
            unknown,
            offer("idle", 0.0, 9, false),
        ];
        assert_eq!(names(&rank(&offers, &mut rng)), ["idle", "busy"]);
    }

    #[test]
    fn within_a_band_fewer_peers_then_chance_decide() {
        let offers = vec![
            offer("a", 0.41, 5, false),
            offer("b", 0.44, 2, false),
            offer("c", 0.44, 2, false),
        ];
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..32 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let ranked = names(&rank(&offers, &mut rng));
            assert_eq!(ranked[2], "a", "{ranked:?}");
            firsts.insert(ranked[0].clone());
        }
        // Equal offers are not always taken in the same order (no herd).
        assert_eq!(firsts.len(), 2);
    }
}
