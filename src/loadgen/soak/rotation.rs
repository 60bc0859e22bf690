//! Where a soak participant joins and when it tries again: pure logic.

use std::time::Duration;

/// The target participant `index` starts on: `index mod n` over the
/// targets (publishers are numbered first, so with as many publishers as
/// targets each target gets one).
pub fn initial_target(index: usize, targets: usize) -> usize {
    index % targets.max(1)
}

/// The target to try after `current` (an index into `targets`), round
/// robin, never `current` itself (nor another entry with the same URL as
/// `url`, the session being left) when there is any other. `url` may name
/// a node outside the list (one a `reconnect` pointed to): then the list
/// goes on after `current`, the last list entry used.
pub fn next_target(targets: &[String], current: usize, url: &str) -> usize {
    let n = targets.len();
    if n == 0 {
        return 0;
    }
    (1..=n)
        .map(|step| (current + step) % n)
        .find(|&i| targets[i] != url)
        .unwrap_or((current + 1) % n)
}

/// Waits between attempts to rejoin: 100 ms, doubling up to 1 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

/// The first wait.
const FIRST: Duration = Duration::from_millis(100);
/// The longest wait.
const MOST: Duration = Duration::from_secs(1);

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MOST);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn participants_spread_publishers_first() {
        // 3 targets, 3 publishers (0..3), then subscribers.
        let at: Vec<usize> = (0..7).map(|i| initial_target(i, 3)).collect();
        assert_eq!(at, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(initial_target(5, 1), 0);
        assert_eq!(initial_target(5, 0), 0);
    }

    #[test]
    fn round_robin_skips_the_current_target() {
        let t = urls(&["ws://a", "ws://b", "ws://c"]);
        assert_eq!(next_target(&t, 0, "ws://a"), 1);
        assert_eq!(next_target(&t, 2, "ws://c"), 0);
        // Going round keeps going round.
        let mut i = 0;
        let seen: Vec<usize> = (0..4)
            .map(|_| {
                i = next_target(&t, i, &t[i]);
                i
            })
            .collect();
        assert_eq!(seen, vec![1, 2, 0, 1]);
        // After a node outside the list, the list goes on after the last
        // entry used.
        assert_eq!(next_target(&t, 1, "ws://elsewhere"), 2);
    }

    #[test]
    fn round_robin_skips_other_entries_of_the_same_url() {
        let t = urls(&["ws://a", "ws://a", "ws://b"]);
        assert_eq!(next_target(&t, 0, "ws://a"), 2);
        // One target: the only choice, again.
        assert_eq!(next_target(&urls(&["ws://a"]), 0, "ws://a"), 0);
        // Every entry the same URL (the tests' one node): the next entry.
        let same = urls(&["ws://a", "ws://a"]);
        assert_eq!(next_target(&same, 0, "ws://a"), 1);
        assert_eq!(next_target(&[], 0, "ws://a"), 0);
    }

    #[test]
    fn backoff_doubles_up_to_a_second() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..6).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
    }
}
