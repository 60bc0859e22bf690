//! What every file of the mediasoup conformance suite shares: the two
//! modes every test runs in, the worker (a Mafalda node) and the router
//! (a room), and a deadline for waiting on events.
#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mafalda::config::{Config, PlacementMode};
use mafalda::mafalda_actors::testing::POLL_INTERVAL;
use mafalda::mediasoup::prelude::*;
use tokio::time::{sleep_until, timeout_at, Instant};

/// Where the room's transports go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A node with one worker: every transport on one mediasoup router.
    OneWorker,
    /// A node with two workers and `spread` placement: consecutive
    /// transports land on different workers, so every consume of another
    /// transport's producer goes through a pipe.
    TwoWorkers,
}

/// A node for one test.
pub async fn worker(mode: Mode) -> Worker {
    let mut c = Config::default();
    c.node.name = format!("suite-{}", if mode == Mode::OneWorker { 1 } else { 2 });
    c.http.listen = "127.0.0.1:0".parse().expect("address");
    c.http.static_dir = "/nonexistent".into();
    c.rtc.enable_tcp = false;
    c.workers.count = match mode {
        Mode::OneWorker => 1,
        Mode::TwoWorkers => 2,
    };
    c.placement.mode = PlacementMode::Spread;
    c.auth.keys = vec![mafalda::auth::AuthKey::random("suite")];
    Worker::start(c).await.expect("node starts")
}

/// A router (room) offering `codecs`.
pub async fn router(worker: &Worker, codecs: Vec<RtpCodecCapability>) -> Router {
    worker
        .create_router(RouterOptions::new(codecs))
        .await
        .expect("router")
}

/// UDP on 127.0.0.1, any port.
pub fn listen_info() -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// WebRTC transport options on [`listen_info`].
pub fn webrtc_options() -> WebRtcTransportOptions {
    WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(listen_info()))
}

/// The deadline of every wait.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The project's one way of waiting for a state (not every file uses it).
#[allow(unused_imports)]
pub use mafalda::mafalda_actors::testing::eventually;

/// Waits for `fut`, failing the test after 10 s.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Checks that `probe` holds throughout `window` (from now), polling it
/// as [`eventually`] does, and fails the test the first time it does
/// not: how a test says that something does *not* happen (no event
/// arrives, a state does not change) over a bounded observation window.
pub async fn holds_for(what: &str, window: Duration, mut probe: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + window;
    loop {
        if !within(what, probe()).await {
            panic!("{what} stopped holding within {window:?}");
        }
        if Instant::now() >= end {
            return;
        }
        sleep_until((Instant::now() + POLL_INTERVAL).min(end)).await;
    }
}

/// Waits (under [`TIMEOUT`]) until `probe` has held for one whole
/// `window` without a break: how a test says that a state which may
/// still flicker while changes in flight land settles on a value and
/// stays there.
pub async fn settles(what: &str, window: Duration, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    let mut since = None;
    loop {
        let polled = Instant::now();
        if matches!(timeout_at(deadline, probe()).await, Ok(true)) {
            let start = *since.get_or_insert(polled);
            if Instant::now() >= start + window {
                return;
            }
        } else {
            since = None;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {TIMEOUT:?} waiting for {what} to hold for {window:?}");
        }
        sleep_until((Instant::now() + POLL_INTERVAL).min(deadline)).await;
    }
}

/// Declares each `async fn name(mode: Mode)` as a module `name` with two
/// tests, `one_worker` and `two_workers`.
#[macro_export]
macro_rules! both_modes {
    ($( async fn $name:ident($mode:ident: Mode) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn case($mode: Mode) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn one_worker() {
                    case(Mode::OneWorker).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn two_workers() {
                    case(Mode::TwoWorkers).await
                }
            }
        )*
    };
}
