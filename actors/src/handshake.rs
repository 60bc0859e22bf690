//! Link handshake decisions, without I/O.
//!
//! Two nodes may dial each other at the same time, and a node may redial a
//! peer whose link it lost. The rules below are applied independently by
//! both ends and always pick the same surviving connection:
//!
//! * a link from an older generation than the live one is stale;
//! * a newer generation (the peer restarted) replaces the live link;
//! * between two links of the same incarnations, **the connection dialed by
//!   the lower `NodeId` wins**; two connections dialed by the same node:
//!   the newest wins (the dialer only redials after losing its link).
//!
//! The acceptor applies the rule when a hello arrives ([`decide_incoming`]),
//! the dialer again when its handshake completes ([`decide_outgoing`]),
//! because a dial to a seed address cannot be known as "dialing that node"
//! before the peer has named itself. Whichever order the two connections
//! complete in, both ends end up on the lower node's connection.

use crate::{id::NodeId, wire::RejectReason};

/// What the acceptor knows about its current link to the dialing peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// No link and no dial in progress.
    None,
    /// We are dialing the peer ourselves.
    Dialing,
    /// A live link.
    Up {
        /// The peer generation on that link.
        generation: u64,
        /// Whether we dialed it.
        dialed_by_us: bool,
    },
}

/// Outcome for a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Use the new connection. If a live link exists it is replaced;
    /// `retire_gracefully` tells whether the old one may still finish its
    /// in-flight streams (same incarnation) or must be closed now.
    Accept {
        /// Keep the replaced link open for a grace period.
        retire_gracefully: bool,
    },
    /// Refuse the new connection.
    Reject(RejectReason),
}

/// Decides on an incoming connection (we are the acceptor).
pub fn decide_incoming(
    local: &NodeId,
    peer: &NodeId,
    peer_generation: u64,
    existing: Existing,
) -> Decision {
    if local == peer {
        return Decision::Reject(RejectReason::SelfConnect);
    }
    let peer_is_lower = peer < local;
    match existing {
        Existing::None => Decision::Accept {
            retire_gracefully: false,
        },
        Existing::Dialing => {
            if peer_is_lower {
                Decision::Accept {
                    retire_gracefully: false,
                }
            } else {
                Decision::Reject(RejectReason::DuplicateLink)
            }
        }
        Existing::Up {
            generation,
            dialed_by_us,
        } => {
            if peer_generation < generation {
                Decision::Reject(RejectReason::Stale)
            } else if peer_generation > generation {
                Decision::Accept {
                    retire_gracefully: false,
                }
            } else if peer_is_lower || !dialed_by_us {
                // The lower node's dial wins; or the peer redialed after
                // losing the link it had dialed before.
                Decision::Accept {
                    retire_gracefully: true,
                }
            } else {
                Decision::Reject(RejectReason::DuplicateLink)
            }
        }
    }
}

/// Decides on an outgoing connection whose handshake just succeeded (we are
/// the dialer) while another link may have been set up meanwhile (e.g. a
/// seed dial, which cannot be tracked before the peer's name is known).
pub fn decide_outgoing(
    local: &NodeId,
    peer: &NodeId,
    peer_generation: u64,
    existing: Existing,
) -> Decision {
    match existing {
        Existing::None | Existing::Dialing => Decision::Accept {
            retire_gracefully: false,
        },
        Existing::Up {
            generation,
            dialed_by_us,
        } => {
            if peer_generation < generation {
                Decision::Reject(RejectReason::Stale)
            } else if peer_generation > generation {
                Decision::Accept {
                    retire_gracefully: false,
                }
            } else if dialed_by_us || local < peer {
                // Newest of our own dials, or our dial beats the peer's.
                Decision::Accept {
                    retire_gracefully: true,
                }
            } else {
                Decision::Reject(RejectReason::DuplicateLink)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// Simulates both ends of a simultaneous dial in every interleaving the
    /// acceptor can observe and checks that both keep the same connection.
    #[test]
    fn simultaneous_dial_keeps_lower_nodes_link() {
        let (a, b) = (n("a"), n("b"));
        // `a` is dialing `b` when b's hello arrives: a rejects.
        assert_eq!(
            decide_incoming(&a, &b, 1, Existing::Dialing),
            Decision::Reject(RejectReason::DuplicateLink)
        );
        // `b` is dialing `a` when a's hello arrives: b accepts a's link.
        assert!(matches!(
            decide_incoming(&b, &a, 1, Existing::Dialing),
            Decision::Accept { .. }
        ));
        // `a` already completed its dial and then sees b's hello: reject.
        let up_by_us = Existing::Up {
            generation: 1,
            dialed_by_us: true,
        };
        assert_eq!(
            decide_incoming(&a, &b, 1, up_by_us),
            Decision::Reject(RejectReason::DuplicateLink)
        );
        // `b` completed its own dial but a's hello arrives: a's wins.
        assert!(matches!(
            decide_incoming(&b, &a, 1, up_by_us),
            Decision::Accept { .. }
        ));
        // Untracked (seed) dials completing after the peer's link arrived.
        let up_incoming = Existing::Up {
            generation: 1,
            dialed_by_us: false,
        };
        assert!(matches!(
            decide_outgoing(&a, &b, 1, up_incoming),
            Decision::Accept { .. }
        ));
        assert_eq!(
            decide_outgoing(&b, &a, 1, up_incoming),
            Decision::Reject(RejectReason::DuplicateLink)
        );
        assert!(matches!(
            decide_outgoing(&b, &a, 1, up_by_us),
            Decision::Accept { .. }
        ));
    }

    #[test]
    fn generations() {
        let (a, b) = (n("a"), n("b"));
        let up = Existing::Up {
            generation: 5,
            dialed_by_us: true,
        };
        assert_eq!(
            decide_incoming(&a, &b, 4, up),
            Decision::Reject(RejectReason::Stale)
        );
        assert_eq!(
            decide_incoming(&a, &b, 6, up),
            Decision::Accept {
                retire_gracefully: false
            }
        );
        assert_eq!(
            decide_incoming(&a, &a, 6, Existing::None),
            Decision::Reject(RejectReason::SelfConnect)
        );
    }
}
