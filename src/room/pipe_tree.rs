//! [`PipeTree`]: where one producer is piped, as a tree of hops rooted at
//! the producer's own router. Pure bookkeeping (no I/O, no mediasoup
//! calls), so that its rules are unit-tested; the room keeps one per piped
//! producer, with each hop's pipe handles as the payload `H`.
//!
//! Rules:
//! - every router forwards the producer to at most `pipe_fanout` others; a
//!   new hop attaches to the shallowest router holding the producer that
//!   still has room (ties: fewer children, then the lower location), so no
//!   stream crosses the same link twice and fan-out stays a tree;
//! - a hop stays while a consumer on its router uses it, a consume request
//!   waits for it, or another hop is fed from it (hops close bottom-up);
//! - cutting a router (it died) removes the hops into or out of it and
//!   every hop below them.

use std::collections::{HashMap, HashSet};

use mediasoup::prelude::ConsumerId;

use crate::ids::RouterLoc;

/// One hop: the producer piped from `from` into the hop's router.
#[derive(Debug)]
pub(crate) struct Hop<H> {
    /// Tells incarnations of the hop apart.
    pub id: u64,
    /// The router it is piped from: the producer's own, or another hop's.
    pub from: RouterLoc,
    /// Pipes between the producer's router and here (1 = piped directly).
    pub depth: u32,
    /// The pipe's handles (or the future that makes them).
    pub handle: H,
    /// Consumers on this router that receive through this hop.
    pub consumers: HashSet<ConsumerId>,
    /// Consume requests waiting for the hop.
    pub in_flight: usize,
}

impl<H> Hop<H> {
    /// A hop from `from` at `depth`, with one consume request waiting.
    pub fn new(id: u64, from: RouterLoc, depth: u32, handle: H) -> Self {
        Self {
            id,
            from,
            depth,
            handle,
            consumers: HashSet::new(),
            in_flight: 1,
        }
    }
}

/// The hops of one producer, by the router they bring it to.
#[derive(Debug)]
pub(crate) struct PipeTree<H> {
    origin: RouterLoc,
    hops: HashMap<RouterLoc, Hop<H>>,
}

impl<H> PipeTree<H> {
    /// A tree with no hops yet for a producer living on `origin`.
    pub fn new(origin: RouterLoc) -> Self {
        Self {
            origin,
            hops: HashMap::new(),
        }
    }

    /// Whether the tree has no hop left.
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// The hop into `to`.
    pub fn hop(&self, to: &RouterLoc) -> Option<&Hop<H>> {
        self.hops.get(to)
    }

    /// The hop into `to`, to update.
    pub fn hop_mut(&mut self, to: &RouterLoc) -> Option<&mut Hop<H>> {
        self.hops.get_mut(to)
    }

    /// Every hop, with the router it brings the producer to.
    #[cfg(test)]
    pub fn hops(&self) -> impl Iterator<Item = (&RouterLoc, &Hop<H>)> {
        self.hops.iter()
    }

    /// Adds the hop into `to`.
    pub fn insert(&mut self, to: RouterLoc, hop: Hop<H>) {
        self.hops.insert(to, hop);
    }

    /// How many hops are fed from `loc`.
    pub fn children(&self, loc: &RouterLoc) -> usize {
        self.hops.values().filter(|e| &e.from == loc).count()
    }

    /// Where a new hop into `to` attaches, and that router's depth: a
    /// router holding the producer with fewer than `fanout` children, on
    /// `to`'s node if there is one (a pipe between nodes costs more), then
    /// the shallowest (ties: fewer children, then the lower location). A
    /// leaf always has room, so there is always one.
    pub fn parent_for_new_hop(&self, fanout: usize, to: &RouterLoc) -> (RouterLoc, u32) {
        let away = |loc: &RouterLoc| loc.node != to.node;
        let origin = (
            away(&self.origin),
            0u32,
            self.children(&self.origin),
            &self.origin,
        );
        let hops = self
            .hops
            .iter()
            .map(|(loc, e)| (away(loc), e.depth, self.children(loc), loc));
        std::iter::once(origin)
            .chain(hops)
            .filter(|(_, _, children, _)| *children < fanout.max(1))
            .min()
            .map_or((self.origin.clone(), 0), |(_, depth, _, loc)| {
                (loc.clone(), depth)
            })
    }

    /// Removes the hops into or out of `loc`, and every hop below them (a
    /// hop from another node's router has its parent there, and is cut only
    /// with that router). Returns whether any hop was removed.
    pub fn cut(&mut self, loc: &RouterLoc) -> bool {
        let before = self.hops.len();
        self.hops.retain(|to, e| to != loc && &e.from != loc);
        loop {
            let orphans: Vec<RouterLoc> = self
                .hops
                .iter()
                .filter(|(to, e)| {
                    e.from != self.origin
                        && e.from.node == to.node
                        && !self.hops.contains_key(&e.from)
                })
                .map(|(to, _)| to.clone())
                .collect();
            if orphans.is_empty() {
                break;
            }
            for o in orphans {
                self.hops.remove(&o);
            }
        }
        self.hops.len() != before
    }

    /// Drops the hop into `loc` if nothing uses it any more (no consumer,
    /// no waiting request, no hop fed from it), then its parents in turn.
    /// Returns whether any hop was dropped.
    pub fn prune_from(&mut self, loc: &RouterLoc) -> bool {
        let mut loc = loc.clone();
        let mut pruned = false;
        loop {
            let unused = self
                .hops
                .get(&loc)
                .is_some_and(|e| e.in_flight == 0 && e.consumers.is_empty())
                && self.children(&loc) == 0;
            if !unused {
                break;
            }
            let Some(e) = self.hops.remove(&loc) else {
                break;
            };
            tracing::debug!(to = %loc, "pipe hop no longer used: closing");
            pruned = true;
            loc = e.from;
        }
        pruned
    }

    /// Every (sending router, receiving router) pair a hop uses.
    pub fn links(&self) -> impl Iterator<Item = (&RouterLoc, &RouterLoc)> {
        self.hops.iter().map(|(to, e)| (&e.from, to))
    }

    /// Every hop's payload.
    pub fn handles(&self) -> impl Iterator<Item = &H> {
        self.hops.values().map(|e| &e.handle)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use mafalda_actors::NodeId;

    use super::*;
    use crate::ids::WorkerSlot;

    fn loc(node: &str, slot: usize) -> RouterLoc {
        RouterLoc::new(NodeId::new(node).unwrap(), WorkerSlot(slot))
    }

    fn consumer() -> ConsumerId {
        ConsumerId::from_str(&uuid::Uuid::new_v4().to_string()).unwrap()
    }

    /// Attaches a hop where the tree says, as the room does.
    fn grow(tree: &mut PipeTree<()>, to: RouterLoc, fanout: usize, id: u64) -> RouterLoc {
        let (parent, depth) = tree.parent_for_new_hop(fanout, &to);
        tree.insert(to, Hop::new(id, parent.clone(), depth + 1, ()));
        parent
    }

    #[test]
    fn fanout_one_makes_a_chain() {
        let mut t = PipeTree::new(loc("a", 0));
        assert_eq!(grow(&mut t, loc("a", 1), 1, 1), loc("a", 0));
        assert_eq!(grow(&mut t, loc("a", 2), 1, 2), loc("a", 1));
        assert_eq!(grow(&mut t, loc("b", 0), 1, 3), loc("a", 2));
        assert_eq!(t.hop(&loc("b", 0)).unwrap().depth, 3);
    }

    #[test]
    fn wide_fanout_feeds_everything_from_the_origin() {
        let mut t = PipeTree::new(loc("a", 0));
        for (i, n) in ["b", "c", "d"].iter().enumerate() {
            assert_eq!(grow(&mut t, loc(n, 0), 4, i as u64), loc("a", 0));
        }
        assert_eq!(t.children(&loc("a", 0)), 3);
    }

    #[test]
    fn fanout_two_fills_the_shallowest_level_first() {
        let mut t = PipeTree::new(loc("a", 0));
        grow(&mut t, loc("a", 1), 2, 1);
        grow(&mut t, loc("a", 2), 2, 2);
        // The origin is full: the next two hang under depth-1 hops, the
        // one with fewer children first, ties by location.
        assert_eq!(grow(&mut t, loc("a", 3), 2, 3), loc("a", 1));
        assert_eq!(grow(&mut t, loc("a", 4), 2, 4), loc("a", 2));
        assert_eq!(grow(&mut t, loc("a", 5), 2, 5), loc("a", 1));
        // No router forwards to more than two.
        for (l, _) in t.hops() {
            assert!(t.children(l) <= 2);
        }
        assert!(t.children(&loc("a", 0)) <= 2);
    }

    #[test]
    fn a_zero_fanout_is_treated_as_one() {
        let mut t = PipeTree::new(loc("a", 0));
        assert_eq!(grow(&mut t, loc("a", 1), 0, 1), loc("a", 0));
        assert_eq!(grow(&mut t, loc("a", 2), 0, 2), loc("a", 1));
    }

    #[test]
    fn cutting_a_middle_router_drops_everything_below() {
        let mut t = PipeTree::new(loc("a", 0));
        for (i, s) in [1, 2, 3].iter().enumerate() {
            grow(&mut t, loc("a", *s), 1, i as u64);
        }
        grow(&mut t, loc("b", 0), 4, 9);
        assert!(t.cut(&loc("a", 1)));
        // a1, and a2 and a3 below it, are gone; b0 hangs off the origin.
        assert!(t.hop(&loc("a", 2)).is_none() && t.hop(&loc("a", 3)).is_none());
        assert!(t.hop(&loc("b", 0)).is_some());
        assert!(!t.cut(&loc("c", 0)));
    }

    #[test]
    fn cutting_the_origin_empties_the_tree() {
        let mut t = PipeTree::new(loc("a", 0));
        grow(&mut t, loc("a", 1), 1, 1);
        grow(&mut t, loc("a", 2), 1, 2);
        t.cut(&loc("a", 0));
        assert!(t.is_empty());
    }

    #[test]
    fn hops_close_bottom_up_once_unused() {
        let mut t = PipeTree::new(loc("a", 0));
        grow(&mut t, loc("a", 1), 1, 1);
        grow(&mut t, loc("a", 2), 1, 2);
        let c1 = consumer();
        let c2 = consumer();
        for (l, c) in [(loc("a", 1), c1), (loc("a", 2), c2)] {
            let h = t.hop_mut(&l).unwrap();
            h.in_flight = 0;
            h.consumers.insert(c);
        }
        // The middle hop loses its consumer but still feeds a2.
        t.hop_mut(&loc("a", 1)).unwrap().consumers.remove(&c1);
        assert!(!t.prune_from(&loc("a", 1)));
        assert!(t.hop(&loc("a", 1)).is_some());
        // The leaf loses its own: both go.
        t.hop_mut(&loc("a", 2)).unwrap().consumers.remove(&c2);
        assert!(t.prune_from(&loc("a", 2)));
        assert!(t.is_empty());
    }

    #[test]
    fn a_waiting_request_keeps_a_hop() {
        let mut t = PipeTree::new(loc("a", 0));
        grow(&mut t, loc("a", 1), 1, 1);
        assert!(!t.prune_from(&loc("a", 1)));
        t.hop_mut(&loc("a", 1)).unwrap().in_flight = 0;
        assert!(t.prune_from(&loc("a", 1)));
    }

    #[test]
    fn a_router_on_the_same_node_is_preferred_over_another_node() {
        // The producer lives on a/w0; b/w0 already has it.
        let mut t = PipeTree::new(loc("a", 0));
        grow(&mut t, loc("b", 0), 4, 1);
        // b/w1 takes it from b/w0, not across nodes from a/w0 (which has
        // room for more).
        assert_eq!(grow(&mut t, loc("b", 1), 4, 2), loc("b", 0));
        // A router of a third node takes it from the shallowest router
        // with room: the origin.
        assert_eq!(grow(&mut t, loc("c", 0), 4, 3), loc("a", 0));
    }

    #[test]
    fn a_hop_fed_from_another_node_is_no_orphan() {
        // On node c, the producer (origin a/w0) arrives from b/w0, then
        // goes on to c/w1.
        let mut t = PipeTree::new(loc("a", 0));
        t.insert(loc("c", 0), Hop::new(1, loc("b", 0), 2, ()));
        t.insert(loc("c", 1), Hop::new(2, loc("c", 0), 3, ()));
        assert!(!t.cut(&loc("c", 7)));
        assert!(t.hop(&loc("c", 0)).is_some() && t.hop(&loc("c", 1)).is_some());
        // Losing c/w0 takes c/w1 with it.
        assert!(t.cut(&loc("c", 0)));
        assert!(t.is_empty());
    }

    #[test]
    fn links_name_each_sender_and_receiver() {
        let mut t = PipeTree::new(loc("a", 0));
        grow(&mut t, loc("b", 0), 1, 1);
        grow(&mut t, loc("c", 0), 1, 2);
        let mut links: Vec<_> = t.links().map(|(f, to)| (f.clone(), to.clone())).collect();
        links.sort();
        assert_eq!(
            links,
            vec![(loc("a", 0), loc("b", 0)), (loc("b", 0), loc("c", 0))]
        );
    }
}
