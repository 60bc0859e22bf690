//! Waiting in tests: the one way the workspace's tests wait for something
//! to become true.
//!
//! A test that expects a state (a count dropping to zero, a member seen
//! alive, a pause travelling through a pipe) probes for it with
//! [`eventually`] under a deadline, instead of sleeping and hoping: the
//! probe is polled every [`POLL_INTERVAL`] until it reports success, and
//! the test fails with a message naming what it waited for when the
//! deadline passes. The interval is this module's business; tests never
//! sleep themselves.
//!
//! Probes are async closures (`async || …`, or closures returning a
//! future), so a probe may borrow state mutably, such as a client it sends
//! requests on:
//!
//! ```
//! use std::time::Duration;
//! use mafalda_actors::testing::eventually;
//!
//! # async fn demo() {
//! let mut polls = 0;
//! let n = eventually("the third poll", Duration::from_secs(5), async || {
//!     polls += 1;
//!     (polls == 3).then_some(polls)
//! })
//! .await;
//! assert_eq!(n, 3);
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```

use std::fmt::Debug;
use std::ops::AsyncFnMut;
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at, Instant};

/// Time between two polls of a probe.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Some(v)`, and returns `v`.
///
/// # Panics
///
/// When `deadline` (counted from the call) passes first, with a message
/// naming `what`. A probe still running at the deadline is abandoned.
pub async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    eventually_ok(what, deadline, async || probe().await.ok_or(NotYet)).await
}

/// Polls `probe` until it returns `Ok(v)`, and returns `v`; `Err(last)`
/// means "not yet" and carries the last observation, shown if the wait
/// fails.
///
/// # Panics
///
/// When `deadline` (counted from the call) passes first, with a message
/// naming `what` and the last `Err` observed. A probe still running at the
/// deadline is abandoned.
pub async fn eventually_ok<T, E: Debug>(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let end = Instant::now() + deadline;
    let mut last = None;
    loop {
        match timeout_at(end, probe()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => last = Some(e),
            Err(_) => break,
        }
        if Instant::now() >= end {
            break;
        }
        sleep_until((Instant::now() + POLL_INTERVAL).min(end)).await;
    }
    match last {
        Some(e) => panic!("timed out after {deadline:?} waiting for {what}; last seen: {e:?}"),
        None => panic!("timed out after {deadline:?} waiting for {what} (no probe finished)"),
    }
}

/// The observation of an [`eventually`] probe that returned `None`.
#[derive(Debug)]
struct NotYet;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_success() {
        let mut calls = 0;
        let got = eventually("the third call", Duration::from_secs(5), async || {
            calls += 1;
            (calls >= 3).then_some(calls * 10)
        })
        .await;
        assert_eq!((got, calls), (30, 3));
    }

    #[tokio::test]
    async fn polls_at_the_interval() {
        let start = Instant::now();
        let mut calls = 0;
        eventually("the third call", Duration::from_secs(5), async || {
            calls += 1;
            (calls == 3).then_some(())
        })
        .await;
        assert!(start.elapsed() >= POLL_INTERVAL * 2);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 100ms waiting for nothing; last seen: NotYet")]
    async fn panics_at_the_deadline() {
        eventually("nothing", Duration::from_millis(100), async || None::<()>).await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a count of 3; last seen: 2")]
    async fn the_panic_shows_the_last_observation() {
        let mut count = 0;
        eventually_ok("a count of 3", Duration::from_millis(100), async || {
            count = (count + 1).min(2);
            if count == 3 {
                Ok(())
            } else {
                Err(count)
            }
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for an answer (no probe finished)")]
    async fn a_hanging_probe_is_bounded_by_the_deadline() {
        eventually("an answer", Duration::from_millis(100), async || {
            std::future::pending::<Option<()>>().await
        })
        .await;
    }

    #[tokio::test]
    async fn closures_returning_futures_are_probes_too() {
        let got = eventually("a value", Duration::from_secs(5), || async { Some(7) }).await;
        assert_eq!(got, 7);
    }
}
