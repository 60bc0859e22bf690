//! Room shapes and the measurement loop: who publishes, who subscribes,
//! and how much the target sustains.
//!
//! A [`Session`] owns a [`Target`], a [`Sender`] and a [`Receiver`]. It adds
//! publishers and subscribers through the target (the same calls an
//! application makes), points their RTP at the sender's and receiver's
//! sockets, and measures windows: loss from sequence numbers, one-way
//! latency, and the CPU the target's workers used.
//!
//! [`ramp`] adds subscribers step by step until the loss of a window
//! exceeds a limit (twice in a row, the second time after a longer pause,
//! so that one hiccup of a noisy machine does not end it): the highest
//! count that stayed under the limit is the target's capacity for that room
//! shape.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use super::media::{StreamKind, StreamSpec};
use super::recv::{bind_socket, Receiver, ReceiverConfig};
use super::send::{Sender, SenderConfig};
use super::target::{ProducerKey, Target, TargetError};
use super::LoadgenError;

/// Sockets shared by the subscribers that are not measured.
const DRAIN_SOCKETS: usize = 4;

/// Subscribers measured before sampling starts, so that a sample covers
/// every worker of a small room.
const ALWAYS_MEASURED: usize = 4;

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The packet engine failed (sockets, threads).
    #[error(transparent)]
    Engine(#[from] LoadgenError),
    /// The target refused an operation.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// The shape of the room under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// A few publishers, every subscriber receives all of them.
    Broadcast {
        /// How many publishers.
        publishers: usize,
    },
    /// Every participant publishes and receives every other participant.
    Mesh,
}

/// Which tracks each publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tracks {
    /// An Opus stream.
    pub audio: bool,
    /// A VP8 stream.
    pub video: bool,
}

impl Tracks {
    fn specs(&self, rng: &mut impl Rng) -> Vec<StreamSpec> {
        let mut out = Vec::new();
        if self.audio {
            out.push(StreamSpec::opus(rng.gen_range(1_000_000..u32::MAX)));
        }
        if self.video {
            out.push(StreamSpec::vp8(rng.gen_range(1_000_000..u32::MAX)));
        }
        out
    }
}

/// Figures of one measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Subscribers (broadcast) or participants (mesh) in the room.
    pub subscribers: usize,
    /// Consumer streams the target forwards, measured or not.
    pub streams: usize,
    /// Consumer streams measured (see [`Session::measure_one_in`]).
    pub measured_streams: usize,
    /// Length of the window, seconds.
    pub seconds: f64,
    /// Packets the consumers' sequence numbers say were sent to us.
    pub expected: u64,
    /// Packets that arrived.
    pub received: u64,
    /// `expected - received` over `expected`, percent.
    pub loss_pct: f64,
    /// Packets per second delivered to the measured subscribers.
    pub measured_pps: f64,
    /// Packets per second delivered to all subscribers: the measured rate
    /// scaled by all streams over measured streams (equal to
    /// `measured_pps` when every subscriber is measured).
    pub delivered_pps: f64,
    /// One-way latency, milliseconds: median.
    pub latency_p50_ms: f64,
    /// One-way latency, milliseconds: 99th percentile.
    pub latency_p99_ms: f64,
    /// CPU of each worker thread over the window, percent of one core.
    pub worker_cpu_pct: Vec<f64>,
    /// CPU of this whole process minus the workers (loadgen's own cost),
    /// percent of one core.
    pub loadgen_cpu_pct: f64,
    /// Worker CPU microseconds per delivered packet (over
    /// `delivered_pps`).
    pub worker_us_per_packet: f64,
}

/// One run against a target.
pub struct Session<T: Target> {
    target: T,
    tracks: Tracks,
    sender: Sender,
    receiver: Receiver,
    /// Producers with the participant that owns them and what they carry.
    producers: Vec<(usize, ProducerKey, StreamKind)>,
    /// Participants that receive, in order of arrival.
    subscribers: Vec<usize>,
    /// How each participant that receives is received (decided on its
    /// first stream).
    reception: HashMap<usize, Reception>,
    /// SSRCs that another consumer already had (not measured).
    unmeasured: usize,
    rng: rand::rngs::StdRng,
    next_sink: usize,
    /// One subscriber in this many is measured; the others receive into
    /// `drains`.
    measure_one_in: usize,
    /// Sockets nobody reads (with their addresses), for the subscribers not
    /// measured: the kernel takes their packets and drops them once the
    /// buffer is full, so they cost the target what a real subscriber costs
    /// and this process nothing.
    drains: Vec<(UdpSocket, SocketAddr)>,
}

/// How one participant's streams are received.
#[derive(Debug)]
enum Reception {
    /// By the receiver: the SSRCs measured.
    Measured(Vec<u32>),
    /// Into a drain socket: how many streams.
    Drained(usize),
}

impl<T: Target> std::fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target.describe())
            .field("producers", &self.producers.len())
            .field("subscribers", &self.subscribers.len())
            .field("streams", &self.streams())
            .finish_non_exhaustive()
    }
}

impl<T: Target> Session<T> {
    /// Starts the packet engine (sockets on `ip`) for `target`.
    pub fn new(
        target: T,
        tracks: Tracks,
        ip: std::net::IpAddr,
        recv_sockets: usize,
    ) -> Result<Self, ScenarioError> {
        let sender = Sender::start(SenderConfig {
            bind_ip: ip,
            ..SenderConfig::default()
        })?;
        let receiver = Receiver::start(ReceiverConfig {
            ip,
            sockets: recv_sockets.max(1),
            ..ReceiverConfig::default()
        })?;
        Ok(Self {
            target,
            tracks,
            sender,
            receiver,
            producers: Vec::new(),
            subscribers: Vec::new(),
            reception: HashMap::new(),
            unmeasured: 0,
            rng: rand::SeedableRng::from_entropy(),
            next_sink: 0,
            measure_one_in: 1,
            drains: Vec::new(),
        })
    }

    /// Measures one subscriber (or mesh participant) in `k`, chosen at
    /// random (the first four always are); the others receive into sockets
    /// nobody reads. The target forwards to every subscriber alike, so a
    /// sample shows its loss and latency, while this process, sharing the
    /// machine with the target, reads `k` times fewer packets. `k = 1`
    /// (the default) measures everyone. Applies to subscribers added
    /// afterwards.
    pub fn measure_one_in(&mut self, k: usize) -> Result<(), ScenarioError> {
        let k = k.max(1);
        if k > 1 && self.drains.is_empty() {
            let ip = self
                .receiver
                .local_addrs()
                .first()
                .map(SocketAddr::ip)
                .ok_or(LoadgenError::Config("receiver without sockets"))?;
            // A buffer as small as the kernel allows: it fills at once and
            // then drops, holding little memory.
            let config = ReceiverConfig {
                ip,
                recv_buffer: 1,
                ..ReceiverConfig::default()
            };
            for _ in 0..DRAIN_SOCKETS {
                let (socket, _) = bind_socket(&config)?;
                let addr = socket.local_addr().map_err(LoadgenError::Socket)?;
                self.drains.push((socket, addr));
            }
        }
        self.measure_one_in = k;
        Ok(())
    }

    /// How participant `peer` is received, decided on its first stream:
    /// measured (one in `measure_one_in`, at random, and the first
    /// [`ALWAYS_MEASURED`]) or drained.
    fn reception(&mut self, peer: usize) -> &mut Reception {
        let k = self.measure_one_in;
        let early = self.reception.len() < ALWAYS_MEASURED;
        let rng = &mut self.rng;
        self.reception.entry(peer).or_insert_with(|| {
            if k <= 1 || early || rng.gen_ratio(1, k as u32) {
                Reception::Measured(Vec::new())
            } else {
                Reception::Drained(0)
            }
        })
    }

    fn drain_addr(&mut self) -> SocketAddr {
        self.next_sink = self.next_sink.wrapping_add(1);
        self.drains[self.next_sink % self.drains.len()].1
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.target
    }

    /// The receiving side (per-stream figures).
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// The sending side (per-stream figures, keyframe requests).
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Consumer streams being measured.
    pub fn streams(&self) -> usize {
        self.reception
            .values()
            .map(|r| match r {
                Reception::Measured(ssrcs) => ssrcs.len(),
                Reception::Drained(_) => 0,
            })
            .sum()
    }

    /// Consumer streams the target forwards: measured, drained, and those
    /// not measured because their SSRC was taken.
    pub fn all_streams(&self) -> usize {
        let drained: usize = self
            .reception
            .values()
            .map(|r| match r {
                Reception::Drained(n) => *n,
                Reception::Measured(_) => 0,
            })
            .sum();
        self.streams() + drained + self.unmeasured
    }

    /// Consumer streams not measured because their SSRC was taken.
    pub fn unmeasured(&self) -> usize {
        self.unmeasured
    }

    /// Subscribers (or mesh participants) so far.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    fn sink(&mut self) -> SocketAddr {
        let addrs = self.receiver.local_addrs();
        self.next_sink = (self.next_sink + 1) % addrs.len();
        addrs[self.next_sink]
    }

    /// The label of the stream participant `peer` receives of `producer`:
    /// `"{peer}<-{producer}:{kind}"`, e.g. `"3<-9f1c…:Vp8"`.
    pub fn label(peer: usize, producer: &ProducerKey, kind: StreamKind) -> String {
        format!("{peer}<-{}:{kind:?}", producer.0)
    }

    async fn receive(
        &mut self,
        peer: usize,
        producer: &ProducerKey,
        kind: StreamKind,
    ) -> Result<(), ScenarioError> {
        if let Reception::Drained(_) = self.reception(peer) {
            let drain = self.drain_addr();
            self.target.subscribe(peer, producer, drain).await?;
            if let Reception::Drained(n) = self.reception(peer) {
                *n += 1;
            }
            return Ok(());
        }
        let sink = self.sink();
        let ssrc = self.target.subscribe(peer, producer, sink).await?;
        match self
            .receiver
            .expect(ssrc, Self::label(peer, producer, kind))
        {
            Ok(()) => {
                if let Reception::Measured(ssrcs) = self.reception(peer) {
                    ssrcs.push(ssrc);
                }
            }
            Err(LoadgenError::DuplicateSsrc(_)) => self.unmeasured += 1,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// A participant that publishes the session's tracks (and receives
    /// nothing); returns its index.
    pub async fn add_publisher(&mut self) -> Result<usize, ScenarioError> {
        let name = format!("pub-{}", self.producers.len());
        let peer = self.target.join(&name).await?;
        self.publish(peer).await?;
        Ok(peer)
    }

    async fn publish(
        &mut self,
        peer: usize,
    ) -> Result<Vec<(ProducerKey, StreamKind)>, ScenarioError> {
        let mut keys = Vec::new();
        for spec in self.tracks.specs(&mut self.rng) {
            let (key, to) = self.target.publish(peer, &spec).await?;
            let kind = spec.kind;
            let label = format!("{peer}/{kind:?}");
            self.sender.add_stream(spec, label, to)?;
            self.producers.push((peer, key.clone(), kind));
            keys.push((key, kind));
        }
        Ok(keys)
    }

    /// A subscriber that receives every producer; returns its index.
    pub async fn add_subscriber(&mut self) -> Result<usize, ScenarioError> {
        let name = format!("sub-{}", self.subscribers.len());
        let peer = self.target.join(&name).await?;
        let producers: Vec<(ProducerKey, StreamKind)> = self
            .producers
            .iter()
            .map(|(_, k, kind)| (k.clone(), *kind))
            .collect();
        for (p, kind) in &producers {
            self.receive(peer, p, *kind).await?;
        }
        self.subscribers.push(peer);
        Ok(peer)
    }

    /// The last subscriber to arrive leaves (broadcast only: it publishes
    /// nothing); its streams are no longer measured.
    pub async fn remove_subscriber(&mut self) -> Result<(), ScenarioError> {
        let Some(peer) = self.subscribers.pop() else {
            return Ok(());
        };
        self.target.leave(peer).await?;
        if let Some(Reception::Measured(ssrcs)) = self.reception.remove(&peer) {
            for ssrc in ssrcs {
                self.receiver.forget(ssrc);
            }
        }
        Ok(())
    }

    /// A mesh participant: publishes, receives everyone else, and everyone
    /// else receives it.
    pub async fn add_mesh_participant(&mut self) -> Result<(), ScenarioError> {
        let name = format!("mesh-{}", self.subscribers.len());
        let peer = self.target.join(&name).await?;
        let existing: Vec<(ProducerKey, StreamKind)> = self
            .producers
            .iter()
            .map(|(_, k, kind)| (k.clone(), *kind))
            .collect();
        let mine = self.publish(peer).await?;
        for (p, kind) in &existing {
            self.receive(peer, p, *kind).await?;
        }
        let others = self.subscribers.clone();
        for other in others {
            for (p, kind) in &mine {
                self.receive(other, p, *kind).await?;
            }
        }
        self.subscribers.push(peer);
        Ok(())
    }

    /// Lets the room settle for `settle`, then measures one window.
    pub async fn measure(&mut self, settle: Duration, window: Duration) -> Window {
        tokio::time::sleep(settle).await;
        let cpu0 = self.target.worker_cpu().await;
        let proc0 = crate::worker::process_cpu_time();
        self.receiver.reset_window();
        let start = std::time::Instant::now();
        tokio::time::sleep(window).await;
        let snap = self.receiver.snapshot();
        let seconds = start.elapsed().as_secs_f64();
        let cpu1 = self.target.worker_cpu().await;
        let proc1 = crate::worker::process_cpu_time();
        let worker_cpu: Vec<f64> = cpu0
            .iter()
            .zip(&cpu1)
            .map(|(a, b)| b.saturating_sub(*a).as_secs_f64())
            .collect();
        let workers_s: f64 = worker_cpu.iter().sum();
        let process_s = match (proc0, proc1) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
            _ => 0.0,
        };
        let t = &snap.totals;
        let expected = t.window.expected;
        let received = t.window.received;
        let measured_pps = t.window_packets as f64 / seconds.max(1e-9);
        let (all, measured) = (self.all_streams(), self.streams());
        let delivered_pps = if measured > 0 {
            measured_pps * all as f64 / measured as f64
        } else {
            0.0
        };
        Window {
            subscribers: self.subscribers.len(),
            streams: all,
            measured_streams: measured,
            seconds,
            expected,
            received,
            loss_pct: t.window_loss_pct,
            measured_pps,
            delivered_pps,
            latency_p50_ms: t.window_latency.p50_ms,
            latency_p99_ms: t.window_latency.p99_ms,
            worker_cpu_pct: worker_cpu.iter().map(|s| 100.0 * s / seconds).collect(),
            loadgen_cpu_pct: 100.0 * (process_s - workers_s).max(0.0) / seconds,
            worker_us_per_packet: if delivered_pps > 0.0 {
                1e6 * workers_s / (delivered_pps * seconds)
            } else {
                f64::NAN
            },
        }
    }

    /// Sender and receiver totals since the start.
    pub fn report(&self) -> super::Report {
        super::Report::new(&self.sender.snapshot(), &self.receiver.snapshot())
    }

    /// Closes every participant and stops the packet engine.
    pub async fn finish(mut self) {
        self.target.shutdown().await;
        self.sender.stop();
        self.receiver.stop();
    }
}

/// How a ramp grows the room.
#[derive(Debug, Clone, Serialize)]
pub struct RampConfig {
    /// Room shape.
    pub shape: Shape,
    /// Subscribers (or mesh participants) added per step.
    pub step: usize,
    /// Stop after this many.
    pub max: usize,
    /// Wait after each step before measuring.
    pub settle: Duration,
    /// Wait before measuring a size again after a failed window.
    pub drain: Duration,
    /// Length of a measured window.
    pub window: Duration,
    /// Highest acceptable loss of a window, percent.
    pub loss_limit_pct: f64,
    /// Highest acceptable median one-way latency of a window, ms: beyond
    /// it the worker is queueing (overloaded) even while nothing is lost
    /// yet.
    pub latency_p50_limit_ms: f64,
    /// Highest acceptable 99th-percentile one-way latency of a window, ms:
    /// deep socket buffers turn loss into queueing near capacity, and this
    /// caps it before loss shows.
    pub latency_p99_limit_ms: f64,
    /// Busiest worker's CPU (percent of a core) from which steps are a
    /// quarter as large.
    pub fine_above_cpu_pct: f64,
}

/// What a ramp found.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    /// The target, described.
    pub target: String,
    /// How it was grown.
    pub config: RampConfig,
    /// Every measured window, in order.
    pub windows: Vec<Window>,
    /// The most subscribers (or participants) with loss under the limit.
    pub sustained: usize,
    /// Delivered packets per second at that point.
    pub sustained_pps: f64,
    /// Why the ramp stopped.
    pub stopped_because: String,
    /// Consumer streams not measured (SSRC taken by another).
    pub unmeasured_streams: usize,
}

/// Measures windows until one is within the limits (`Ok`, with the
/// delivered packet rate) or two in a row are not (`Err`); every window is
/// kept in `windows`.
async fn judge<T: Target>(
    session: &mut Session<T>,
    config: &RampConfig,
    windows: &mut Vec<Window>,
) -> Result<f64, ()> {
    for attempt in 0..2 {
        // A second chance after a longer pause: a step's joins each ask for
        // a keyframe, every keyframe goes to every subscriber, and a worker
        // near its capacity drains such a burst (or a stall of a shared
        // machine) only slowly, while a real overload stays.
        let settle = if attempt == 0 {
            config.settle
        } else {
            config.drain.max(config.settle)
        };
        let w = session.measure(settle, config.window).await;
        let ok = w.loss_pct <= config.loss_limit_pct
            && w.expected > 0
            && w.latency_p50_ms <= config.latency_p50_limit_ms
            && w.latency_p99_ms <= config.latency_p99_limit_ms;
        let pps = w.delivered_pps;
        windows.push(w);
        if ok {
            return Ok(pps);
        }
    }
    Err(())
}

/// Grows the room in `session` until two windows in a row lose more than
/// the limit (or queue: median latency over its limit), the maximum is
/// reached, or the target refuses. Steps are
/// `step` large while the busiest worker stays under `fine_above_cpu_pct`
/// of a core, and a quarter of that beyond, so that the capacity is found to
/// within a quarter step without overshooting far: an overloaded worker
/// stays overloaded for a while (its producers ask for keyframes, which are
/// larger), so the room only grows.
pub async fn ramp<T: Target>(session: &mut Session<T>, config: RampConfig) -> RampReport {
    let mut windows = Vec::new();
    let mut sustained = 0;
    let mut sustained_pps = 0.0;
    let mut stopped_because = String::new();
    if let Shape::Broadcast { publishers } = config.shape {
        for _ in 0..publishers {
            if let Err(e) = session.add_publisher().await {
                stopped_because = format!("cannot publish: {e}");
                break;
            }
        }
    }
    let mut step = config.step.max(1);
    'ramp: while stopped_because.is_empty() {
        if session.subscribers() >= config.max {
            stopped_because = format!("reached the maximum of {}", config.max);
            break;
        }
        for _ in 0..step.min(config.max - session.subscribers()) {
            let added = match config.shape {
                Shape::Broadcast { .. } => session.add_subscriber().await.map(drop),
                Shape::Mesh => session.add_mesh_participant().await,
            };
            if let Err(e) = added {
                stopped_because = format!("the target refused: {e}");
                break 'ramp;
            }
        }
        match judge(session, &config, &mut windows).await {
            Ok(pps) => {
                sustained = session.subscribers();
                sustained_pps = pps;
                let busiest = windows
                    .last()
                    .and_then(|w| w.worker_cpu_pct.iter().copied().reduce(f64::max))
                    .unwrap_or(0.0);
                if busiest >= config.fine_above_cpu_pct {
                    step = (config.step / 4).max(1);
                }
            }
            Err(()) => {
                stopped_because = format!(
                    "loss above {}%, median latency above {} ms or p99 latency above {} ms in two windows in a row at {}",
                    config.loss_limit_pct,
                    config.latency_p50_limit_ms,
                    config.latency_p99_limit_ms,
                    session.subscribers()
                );
            }
        }
    }
    RampReport {
        target: session.target.describe(),
        config,
        windows,
        sustained,
        sustained_pps,
        stopped_because,
        unmeasured_streams: session.unmeasured,
    }
}
