//! Where a room lives, decided from live membership alone: rendezvous
//! (highest-random-weight) hashing of the room id over the alive,
//! non-draining members, and the rule that settles a room found with two
//! homes. Pure functions, no I/O: the same inputs give the same answer on
//! every node and every build.
//!
//! # Home rule
//!
//! Every node ranks the candidate nodes for room `R` by
//! [`score`]`(node, R)`, highest first (ties, which need a hash collision,
//! by node name). A node that gets a join for `R` asks the candidates in
//! that order whether they host `R`; the first that does is `R`'s home. If
//! none does, the top candidate creates it. Membership changes move only
//! the rooms whose top candidate changed: rendezvous hashing keeps every
//! other room where it is.
//!
//! # Split-brain rule
//!
//! Views that differed (a partition, or a join racing a membership change)
//! can leave two nodes each hosting `R`. When they find each other, the
//! survivor is the one that [`ranks_before`] the other in the view of the
//! node deciding — a deterministic order (candidates before non-candidates,
//! then higher score, then name) that both homes compute alike once their
//! views agree. The loser's participants move to the survivor.

use std::cmp::Ordering;

use mafalda_actors::NodeId;

use crate::ids::RoomId;

/// A node as the home rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub node: NodeId,
    /// Alive in the local SWIM view (not suspect, not down).
    pub alive: bool,
    /// It gossips the draining flag: no new room homes.
    pub draining: bool,
}

impl Candidate {
    /// Whether the node may become a room's home.
    pub fn eligible(&self) -> bool {
        self.alive && !self.draining
    }
}

/// 64-bit FNV-1a over `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The SplitMix64 finaliser: spreads FNV's weak low bits over the word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous weight of `node` for `room`. Fixed forever: changing it
/// moves rooms between the nodes of a mixed-version cluster.
pub fn score(node: &NodeId, room: &RoomId) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    let h = fnv1a(OFFSET, node.as_str().as_bytes());
    // A separator no node name can contain keeps ("ab", "c") and ("a",
    // "bc") apart.
    let h = fnv1a(h, &[0]);
    mix(fnv1a(h, room.as_str().as_bytes()))
}

/// The order of the home rule: candidates able to host first, then higher
/// score, then node name.
pub fn ranks_before(a: &Candidate, b: &Candidate, room: &RoomId) -> Ordering {
    b.eligible()
        .cmp(&a.eligible())
        .then_with(|| score(&b.node, room).cmp(&score(&a.node, room)))
        .then_with(|| a.node.cmp(&b.node))
}

/// The eligible nodes for `room`, best first: the order in which a node
/// asks who hosts it, and whose head creates it.
pub fn candidates(room: &RoomId, members: &[Candidate]) -> Vec<NodeId> {
    let mut eligible: Vec<&Candidate> = members.iter().filter(|c| c.eligible()).collect();
    eligible.sort_by(|a, b| ranks_before(a, b, room));
    eligible.into_iter().map(|c| c.node.clone()).collect()
}

/// Of two nodes that both host `room`, the one that keeps it (see the
/// module's split-brain rule). `view` is the deciding node's membership;
/// a node missing from it counts as neither alive nor eligible.
pub fn survivor<'a>(room: &RoomId, a: &'a NodeId, b: &'a NodeId, view: &[Candidate]) -> &'a NodeId {
    let as_seen = |n: &NodeId| {
        view.iter()
            .find(|c| &c.node == n)
            .cloned()
            .unwrap_or(Candidate {
                node: n.clone(),
                alive: false,
                draining: false,
            })
    };
    match ranks_before(&as_seen(a), &as_seen(b), room) {
        Ordering::Greater => b,
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn node(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    fn alive(names: &[&str]) -> Vec<Candidate> {
        names
            .iter()
            .map(|n| Candidate {
                node: node(n),
                alive: true,
                draining: false,
            })
            .collect()
    }

    #[test]
    fn the_score_is_fixed() {
        // Pinned values (computed independently of this code): a change
        // here would move rooms in a cluster of mixed versions.
        assert_eq!(
            score(&node("mafalda-1"), &RoomId::new("lobby")),
            0x462f_3e6f_3f9b_3934
        );
        assert_eq!(
            score(&node("mafalda-2"), &RoomId::new("lobby")),
            0x585d_534e_f8b3_7fca
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            score(&node("ab"), &RoomId::new("c")),
            score(&node("a"), &RoomId::new("bc"))
        );
    }

    #[test]
    fn every_node_computes_the_same_candidates() {
        let room = RoomId::new("standup");
        let mut view = alive(&["n1", "n2", "n3", "n4"]);
        let first = candidates(&room, &view);
        view.reverse();
        assert_eq!(candidates(&room, &view), first);
        assert_eq!(first.len(), 4);
    }

    #[test]
    fn dead_suspect_and_draining_nodes_are_not_candidates() {
        let room = RoomId::new("r");
        let mut view = alive(&["n1", "n2", "n3"]);
        view[0].alive = false;
        view[1].draining = true;
        assert_eq!(candidates(&room, &view), vec![node("n3")]);
        assert!(candidates(&room, &[]).is_empty());
    }

    #[test]
    fn rooms_spread_over_nodes() {
        let view = alive(&["n1", "n2", "n3"]);
        let mut homes: HashMap<NodeId, usize> = HashMap::new();
        for i in 0..3000 {
            let top = candidates(&RoomId::new(format!("room-{i}")), &view)[0].clone();
            *homes.entry(top).or_default() += 1;
        }
        // 1000 each on average; rendezvous hashing keeps them within a few
        // percent.
        for (n, count) in &homes {
            assert!((850..=1150).contains(count), "{n}: {count} of 3000");
        }
    }

    #[test]
    fn a_lost_node_moves_only_its_own_rooms() {
        let before = alive(&["n1", "n2", "n3", "n4"]);
        let after = alive(&["n1", "n2", "n3"]);
        let mut moved = 0;
        for i in 0..2000 {
            let room = RoomId::new(format!("room-{i}"));
            let (b, a) = (
                candidates(&room, &before)[0].clone(),
                candidates(&room, &after)[0].clone(),
            );
            if b != a {
                assert_eq!(b, node("n4"), "only n4's rooms move");
                moved += 1;
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn both_homes_agree_on_the_survivor() {
        let view = alive(&["n1", "n2", "n3"]);
        for i in 0..200 {
            let room = RoomId::new(format!("r{i}"));
            let (x, y) = (node("n1"), node("n2"));
            let s1 = survivor(&room, &x, &y, &view).clone();
            let s2 = survivor(&room, &y, &x, &view).clone();
            assert_eq!(s1, s2, "the rule is symmetric");
            // The survivor is the better ranked of the two.
            let order = candidates(&room, &view);
            let pos = |n: &NodeId| order.iter().position(|c| c == n).unwrap();
            assert_eq!(pos(&s1), pos(&x).min(pos(&y)));
        }
    }

    #[test]
    fn a_draining_or_unknown_home_loses() {
        let room = RoomId::new("r");
        let mut view = alive(&["n1", "n2"]);
        view[0].draining = true;
        assert_eq!(
            survivor(&room, &node("n1"), &node("n2"), &view),
            &node("n2")
        );
        assert_eq!(
            survivor(&room, &node("gone"), &node("n2"), &view),
            &node("n2")
        );
    }
}
