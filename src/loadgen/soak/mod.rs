//! Soak mode (`mafalda loadgen --soak SECONDS`): a room kept alive over
//! several nodes for a while, through node loss and drains, measuring how
//! long the media stopped.
//!
//! # Participants
//!
//! `publishers` publishers (`pub-0`, …) and then `subscribers`
//! subscribers (`sub-0`, …) are numbered in that order; participant `i`
//! first joins through target `i mod n` of the `n` signalling URLs. Each
//! is a task of its own with its own WebSocket session, reading its
//! events all the time:
//!
//! - a publisher publishes its tracks (Opus, VP8) on plain transports
//!   (`comedia`), one per track;
//! - a subscriber consumes every producer of the room: those of its
//!   `join` reply and of every later `newProducer`, and forgets a consumer
//!   on `producerClosed` or `consumerClosed` (a failed consume is tried
//!   again a few times while the producer is announced).
//!
//! # Rejoining
//!
//! On a `reconnect` event, a participant joins again (make-before-break)
//! through the event's `url`, or else the next target (round robin, not
//! the one it is on), publishes again (a new transport and producers, fed
//! by the same generators: the stream goes on with the same SSRC and
//! sequence) or consumes everything again, and only then leaves its old
//! session: a subscriber at once, a publisher after [`HANDOVER_LINGER`],
//! sending every packet to both the old and the new producer meanwhile,
//! so that subscribers can move without a gap. When the socket closes or
//! fails without a `reconnect` (or the node is silent for 30 s), it
//! rejoins through the next target at once. A failed attempt moves on to
//! the next target after a wait (100 ms, doubling up to 1 s), until one
//! works or the soak ends; a `join` refused with `draining` and a `url`
//! goes there at once.
//!
//! # Measurements
//!
//! A publisher stream is known by a stable name, `{publisher}/{kind}`
//! (e.g. `pub-0/video`), whatever producer, consumer and SSRC carry it.
//! For every (subscriber, stream) pair, the receiver records the arrival
//! time of every packet of every consumer of that stream: the first, the
//! last, and the longest gap between two consecutive arrivals, where the
//! wait from the last arrival to the end of the soak counts as a gap too
//! and the wait before the first does not. For every subscriber, the same
//! over everything it receives: the longest silence. Loss comes from
//! sequence numbers per consumer SSRC, summed per pair.
//!
//! # The report
//!
//! [`SoakReport`], written as JSON with `--report FILE`; times are
//! milliseconds since the soak started (its first join):
//!
//! ```json
//! { "room": "soak", "targets": ["ws://a/ws", "ws://b/ws"],
//!   "duration_ms": 60000.0, "ready_ms": 850.2, "max_gap_limit_ms": 2000.0,
//!   "passed": true, "failures": [],
//!   "participants": [
//!     { "name": "pub-0", "role": "publisher", "rejoins": 1,
//!       "consume_errors": 0, "max_silence_ms": null,
//!       "joins": [
//!         { "at_ms": 0.0, "url": "ws://a/ws", "target": 0, "cause": "start",
//!           "media": ["10.0.0.1:40012", "10.0.0.1:40013"] },
//!         { "at_ms": 20311.5, "url": "ws://b/ws", "target": 1,
//!           "cause": "reconnect (node draining)", "media": ["10.0.0.2:40020", "10.0.0.2:40021"] } ] } ],
//!   "pairs": [
//!     { "subscriber": "sub-0", "stream": "pub-0/video", "received": 5012,
//!       "loss_pct": 0.02, "max_gap_ms": 180.4, "first_ms": 912.0,
//!       "last_ms": 59998.7, "consumers": 2 } ] }
//! ```
//!
//! `media` lists the address of the node's end of each plain transport of
//! that session (a publisher's per track, a subscriber's receiving one):
//! the node serving the media, which may not be the signalling node.
//! `target` is the index of the URL in `targets`, `null` for a URL a
//! `reconnect` or a `draining` error named. `max_gap_ms`, `first_ms` and
//! `last_ms` are `null` for a pair that received nothing. `ready_ms` is
//! when every subscriber first had every stream (`null`: never), when
//! `--ready-file` is written. With a limit (`--max-gap-ms`), `failures`
//! names each pair that never received anything or whose `max_gap_ms`
//! exceeds it, and `passed` is whether there are none.

mod participant;
mod report;
mod rotation;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::media::now_since_epoch;
use super::recv::{Receiver, ReceiverConfig};
use super::scenario::Tracks;
use super::send::{Sender, SenderConfig};
use super::stats::SharedGaps;
use super::target::TargetError;
use super::LoadgenError;
use participant::{Participant, Role};

pub use report::{JoinRecord, PairReport, ParticipantReport, SoakReport};

/// How long a publisher that moved keeps its old session, sending to both.
pub const HANDOVER_LINGER: Duration = Duration::from_secs(2);

/// How often the soak checks whether every subscriber has every stream.
const READY_POLL: Duration = Duration::from_millis(20);

/// How long the participants get to leave at the end.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Signalling URLs (`ws://HOST:PORT/ws`), at least one.
    pub targets: Vec<String>,
    /// Room name.
    pub room: String,
    /// Publishers, at least one.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// What each publisher sends.
    pub tracks: Tracks,
    /// How long, from the first join.
    pub duration: Duration,
    /// Local address of the publisher and subscriber sockets.
    pub ip: IpAddr,
    /// Receiving sockets.
    pub recv_sockets: usize,
    /// Written once every subscriber receives every stream.
    pub ready_file: Option<PathBuf>,
    /// Largest acceptable gap of a pair, ms (see [`SoakReport::passed`]).
    pub max_gap_ms: Option<f64>,
}

/// Why a soak could not run.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The configuration cannot work.
    #[error("invalid soak configuration: {0}")]
    Config(&'static str),
    /// The packet engine failed.
    #[error(transparent)]
    Engine(#[from] LoadgenError),
    /// A participant could not join and publish or subscribe at the start.
    #[error("{participant} could not start: {source}")]
    Setup {
        /// Which.
        participant: String,
        /// Why.
        source: TargetError,
    },
    /// A participant's task ended before it could say how its start went.
    #[error("{0} stopped during its start")]
    Lost(String),
    /// Writing the ready file failed.
    #[error("writing {path}: {source}")]
    ReadyFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One (subscriber, stream) pair's measurements.
#[derive(Debug, Default)]
struct Pair {
    /// Every arrival of the stream at the subscriber.
    gaps: SharedGaps,
    /// The consumer SSRCs that carried it.
    ssrcs: Vec<u32>,
    /// Whether the soak expected it (a stream of its own publishers).
    expected: bool,
}

/// What every participant task shares.
struct Ctx {
    room: String,
    targets: Vec<String>,
    sender: Sender,
    receiver: Receiver,
    /// The soak's start, since the loadgen epoch.
    origin: Duration,
    /// When it ends.
    end: tokio::time::Instant,
    /// Set once the figures are taken: the participants leave.
    stop: tokio::sync::watch::Sender<bool>,
    /// By (subscriber, stream).
    pairs: Mutex<BTreeMap<(String, String), Pair>>,
    /// The stream each producer of ours carries, by producer id.
    producers: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("room", &self.room)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The gap tracker of a pair (made on first use), and records `ssrc`
    /// as one of its carriers.
    fn pair(&self, subscriber: &str, stream: &str, ssrc: u32) -> SharedGaps {
        let mut pairs = self.pairs.lock();
        let pair = pairs
            .entry((subscriber.to_owned(), stream.to_owned()))
            .or_default();
        pair.ssrcs.push(ssrc);
        pair.gaps.clone()
    }

    /// Whether every expected pair has had a packet.
    fn ready(&self) -> bool {
        self.pairs
            .lock()
            .values()
            .filter(|p| p.expected)
            .all(|p| p.gaps.lock().first().is_some())
    }

    /// Milliseconds from the soak's start to `at` (since the epoch).
    fn ms(&self, at: Duration) -> f64 {
        report::ms(at.saturating_sub(self.origin))
    }
}

/// The stream names publisher `name` sends with `tracks`.
fn streams_of(name: &str, tracks: Tracks) -> Vec<String> {
    let mut out = Vec::new();
    if tracks.audio {
        out.push(format!("{name}/audio"));
    }
    if tracks.video {
        out.push(format!("{name}/video"));
    }
    out
}

fn check(config: &SoakConfig) -> Result<(), SoakError> {
    if config.targets.is_empty() {
        return Err(SoakError::Config("no target URL"));
    }
    if config.publishers == 0 {
        return Err(SoakError::Config("a soak needs a publisher"));
    }
    if !config.tracks.audio && !config.tracks.video {
        return Err(SoakError::Config("nothing to publish"));
    }
    if config.duration.is_zero() {
        return Err(SoakError::Config("the soak needs a duration"));
    }
    Ok(())
}

/// Runs a soak to its end and reports. Fails only when it cannot start:
/// the packet engine, or a participant's first join, publish or
/// subscription; whatever happens later is in the report.
pub async fn run(config: SoakConfig) -> Result<SoakReport, SoakError> {
    check(&config)?;
    let sender = Sender::start(SenderConfig {
        bind_ip: config.ip,
        ..SenderConfig::default()
    })?;
    let receiver = Receiver::start(ReceiverConfig {
        ip: config.ip,
        sockets: config.recv_sockets.max(1),
        ..ReceiverConfig::default()
    })?;
    let sinks: Vec<SocketAddr> = receiver.local_addrs().to_vec();
    let publishers: Vec<String> = (0..config.publishers).map(|i| format!("pub-{i}")).collect();
    let subscribers: Vec<String> = (0..config.subscribers)
        .map(|i| format!("sub-{i}"))
        .collect();
    let mut pairs = BTreeMap::new();
    for sub in &subscribers {
        for stream in publishers.iter().flat_map(|p| streams_of(p, config.tracks)) {
            let pair = Pair {
                expected: true,
                ..Pair::default()
            };
            pairs.insert((sub.clone(), stream), pair);
        }
    }
    let ctx = Arc::new(Ctx {
        room: config.room.clone(),
        targets: config.targets.clone(),
        sender,
        receiver,
        origin: now_since_epoch(),
        end: tokio::time::Instant::now() + config.duration,
        stop: tokio::sync::watch::Sender::new(false),
        pairs: Mutex::new(pairs),
        producers: Mutex::default(),
    });

    let mut logs = Vec::new();
    let mut tasks = Vec::new();
    // Publishers first, so that the subscribers find their producers in
    // the join reply.
    let roles = [
        (Role::Publisher, publishers),
        (Role::Subscriber, subscribers),
    ];
    let mut index = 0;
    for (role, names) in roles {
        let mut starting = Vec::new();
        for name in names {
            let sink = sinks[index % sinks.len()];
            let p = Participant::new(ctx.clone(), name.clone(), role, index, config.tracks, sink);
            index += 1;
            logs.push(p.log());
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(p.run(tx)));
            starting.push((name, rx));
        }
        for (name, rx) in starting {
            let started = match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(SoakError::Setup {
                    participant: name,
                    source,
                }),
                Err(_) => Err(SoakError::Lost(name)),
            };
            if let Err(e) = started {
                tasks.iter().for_each(tokio::task::JoinHandle::abort);
                return Err(e);
            }
        }
    }

    let ready_at = watch(&ctx, config.ready_file.as_deref()).await?;
    let end = now_since_epoch();
    let report = SoakReport::new(&ctx, &logs, end, ready_at, config.max_gap_ms);
    // The figures are taken: the participants may leave.
    ctx.stop.send_replace(true);
    let all = futures::future::join_all(tasks.iter_mut());
    if tokio::time::timeout(LEAVE_TIMEOUT, all).await.is_err() {
        tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
    Ok(report)
}

/// Waits for the end of the soak, writing `ready_file` once every
/// subscriber has every stream; returns when that was (since the epoch).
async fn watch(
    ctx: &Ctx,
    ready_file: Option<&std::path::Path>,
) -> Result<Option<Duration>, SoakError> {
    let mut ready_at = None;
    loop {
        let now = tokio::time::Instant::now();
        if now >= ctx.end {
            return Ok(ready_at);
        }
        if ready_at.is_none() && ctx.ready() {
            let at = now_since_epoch();
            ready_at = Some(at);
            if let Some(path) = ready_file {
                write_ready(path, ctx.ms(at))?;
            }
        }
        let next = if ready_at.is_some() {
            ctx.end
        } else {
            (now + READY_POLL).min(ctx.end)
        };
        tokio::time::sleep_until(next).await;
    }
}

/// Writes the ready file (the time it became ready, ms), whole: through a
/// temporary file renamed over it.
fn write_ready(path: &std::path::Path, ms: f64) -> Result<(), SoakError> {
    let err = |source| SoakError::ReadyFile {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{ms}\n")).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SoakConfig {
        SoakConfig {
            targets: vec!["ws://a/ws".into()],
            room: "r".into(),
            publishers: 1,
            subscribers: 1,
            tracks: Tracks {
                audio: true,
                video: true,
            },
            duration: Duration::from_secs(1),
            ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            recv_sockets: 1,
            ready_file: None,
            max_gap_ms: None,
        }
    }

    #[test]
    fn configurations_that_cannot_work() {
        assert!(check(&config()).is_ok());
        let mut c = config();
        c.targets.clear();
        assert!(matches!(check(&c), Err(SoakError::Config(_))));
        let mut c = config();
        c.publishers = 0;
        assert!(matches!(check(&c), Err(SoakError::Config(_))));
        let mut c = config();
        c.tracks.audio = false;
        c.tracks.video = false;
        assert!(matches!(check(&c), Err(SoakError::Config(_))));
    }

    #[test]
    fn stream_names() {
        let both = Tracks {
            audio: true,
            video: true,
        };
        assert_eq!(
            streams_of("pub-1", both),
            vec!["pub-1/audio", "pub-1/video"]
        );
        let video = Tracks {
            audio: false,
            video: true,
        };
        assert_eq!(streams_of("pub-0", video), vec!["pub-0/video"]);
    }

    #[test]
    fn ready_file_is_written_whole() {
        let dir = std::env::temp_dir().join(format!("mafalda-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ready");
        write_ready(&path, 812.5).expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "812.5\n");
        assert!(!dir.join("ready.tmp").exists());
        assert!(matches!(
            write_ready(&dir.join("missing/ready"), 1.0),
            Err(SoakError::ReadyFile { .. })
        ));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
