//! [`WorkerActor`]: owns one mediasoup [`Worker`] (one thread, one core).
//!
//! The actor hands out routers for rooms, counts what lives on its worker,
//! and samples the RTP its producers and consumers carry
//! ([`crate::media_stats`]).
//! When the worker dies, the actor tells the [`WorkerPool`](crate::pool::WorkerPool)
//! and stops; the pool spawns a replacement into the same slot. Stopping the
//! actor drops the `Worker` handle, which closes the worker and everything on it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use mediasoup::prelude::*;
use mediasoup::types::rtp_parameters::{
    MimeTypeAudio, MimeTypeVideo, RtcpFeedback, RtpCodecCapability, RtpCodecParametersParameters,
};
use mediasoup::worker::{WorkerId, WorkerLogLevel, WorkerLogTag};
use std::num::{NonZeroU32, NonZeroU8};
use tracing::Span;

use crate::config::Config;
use crate::ids::WorkerSlot;
use crate::media_stats::{MediaSampler, RtpTotals};
use crate::metrics::{Counters, Resource, Tracked};
use crate::placement::CpuGauge;

/// How often a worker's CPU use is sampled.
const CPU_SAMPLE_PERIOD: Duration = Duration::from_secs(1);
/// Clock ticks per second in `/proc/<pid>/task/<tid>/stat` (Linux `USER_HZ`,
/// 100 on every architecture mediasoup supports).
const USER_HZ: f64 = 100.0;

/// The calling thread's Linux TID, from the `/proc/thread-self` symlink
/// (`/proc/<pid>/task/<tid>`).
fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time (user + system) one of this process's threads has used, e.g. a
/// worker's (its TID is in the node status); for benchmarks.
pub fn thread_cpu_time(tid: u32) -> Option<Duration> {
    thread_cpu_ticks(tid).map(ticks_to_time)
}

/// CPU time (user + system) this whole process has used.
pub fn process_cpu_time() -> Option<Duration> {
    stat_cpu_ticks("/proc/self/stat").map(ticks_to_time)
}

fn ticks_to_time(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / USER_HZ)
}

/// utime + stime of one of this process's threads, in clock ticks.
fn thread_cpu_ticks(tid: u32) -> Option<u64> {
    stat_cpu_ticks(&format!("/proc/self/task/{tid}/stat"))
}

/// utime + stime from a `/proc` `stat` file (a process's or a thread's).
fn stat_cpu_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after it start at
    // field 3 (state). utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Error creating a router on a worker.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreateRouterError {
    /// The worker is dead or stopping.
    #[error("worker {0} is not available")]
    WorkerGone(WorkerSlot),
    /// mediasoup refused.
    #[error("mediasoup could not create a router: {0}")]
    Mediasoup(String),
}

/// Error starting a worker.
#[derive(Debug, thiserror::Error)]
#[error("cannot start mediasoup worker {slot}: {source}")]
pub struct SpawnWorkerError {
    /// Which slot.
    pub slot: WorkerSlot,
    /// Why.
    pub source: std::io::Error,
}

/// The media codecs every room's routers offer, in preference order.
pub fn media_codecs() -> Vec<RtpCodecCapability> {
    let nack_pli = || {
        vec![
            RtcpFeedback::Nack,
            RtcpFeedback::NackPli,
            RtcpFeedback::CcmFir,
            RtcpFeedback::GoogRemb,
            RtcpFeedback::TransportCc,
        ]
    };
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: None,
            clock_rate: NonZeroU32::new(48000).expect("non-zero"),
            channels: NonZeroU8::new(2).expect("non-zero"),
            parameters: RtpCodecParametersParameters::from([("useinbandfec", 1_u32.into())]),
            rtcp_feedback: vec![RtcpFeedback::TransportCc],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: None,
            clock_rate: NonZeroU32::new(90000).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: nack_pli(),
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp9,
            preferred_payload_type: None,
            clock_rate: NonZeroU32::new(90000).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: nack_pli(),
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::H264,
            preferred_payload_type: None,
            clock_rate: NonZeroU32::new(90000).expect("non-zero"),
            parameters: RtpCodecParametersParameters::from([
                ("packetization-mode", 1_u32.into()),
                ("level-asymmetry-allowed", 1_u32.into()),
                ("profile-level-id", "42e01f".into()),
            ]),
            rtcp_feedback: nack_pli(),
        },
    ]
}

fn worker_settings(config: &Config, slot: WorkerSlot, tid: Arc<AtomicU32>) -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = match config.workers.log_level.as_str() {
        "debug" => WorkerLogLevel::Debug,
        "warn" => WorkerLogLevel::Warn,
        "none" => WorkerLogLevel::None,
        _ => WorkerLogLevel::Error,
    };
    settings.log_tags = vec![
        WorkerLogTag::Info,
        WorkerLogTag::Ice,
        WorkerLogTag::Dtls,
        WorkerLogTag::Srtp,
    ];
    settings.rtc_port_range = config.rtc.port_min..=config.rtc.port_max;
    settings.thread_initializer = Some(Arc::new(move || {
        if let Some(t) = current_tid() {
            tid.store(t, Ordering::Relaxed);
        } else {
            tracing::debug!(worker = %slot, "cannot read /proc/thread-self: no CPU figures");
        }
    }));
    settings
}

/// A started mediasoup worker and the TID of its thread (0 until known).
#[derive(Debug)]
pub struct SpawnedWorker {
    /// The worker.
    pub worker: Worker,
    /// Its thread's Linux TID, set by the thread itself when it starts.
    pub tid: Arc<AtomicU32>,
}

/// Starts one mediasoup worker for `slot`.
pub async fn spawn_worker(
    manager: &WorkerManager,
    config: &Config,
    slot: WorkerSlot,
) -> Result<SpawnedWorker, SpawnWorkerError> {
    let tid = Arc::new(AtomicU32::new(0));
    let worker = manager
        .create_worker(worker_settings(config, slot, Arc::clone(&tid)))
        .await
        .map_err(|source| SpawnWorkerError { slot, source })?;
    Ok(SpawnedWorker { worker, tid })
}

/// Sent to the worker pool when a worker dies.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WorkerDied {
    /// The slot that lost its worker.
    pub slot: WorkerSlot,
    /// The dead worker's id.
    pub worker_id: WorkerId,
    /// The exit reason, for logs.
    pub reason: String,
}

/// Owns one mediasoup worker.
#[derive(Debug)]
pub struct WorkerActor {
    slot: WorkerSlot,
    worker: Worker,
    tid: Arc<AtomicU32>,
    cpu: Arc<CpuGauge>,
    last_sample: Option<(Instant, u64)>,
    counters: Arc<Counters>,
    node_counters: Arc<Counters>,
    media: MediaSampler,
    stats_period: Duration,
    /// A media sample is running (samples never overlap).
    sampling: bool,
    on_death: Recipient<WorkerDied>,
    span: Span,
}

/// Where a worker's RTP figures go: its slot's totals, sampled every
/// `period`.
#[derive(Debug, Clone)]
pub struct MediaTotals {
    /// The slot's totals.
    pub totals: Arc<RtpTotals>,
    /// How often the worker's producers and consumers are sampled.
    pub period: Duration,
}

impl WorkerActor {
    /// Wraps a started worker.
    pub fn new(
        node: &str,
        slot: WorkerSlot,
        spawned: SpawnedWorker,
        node_counters: Arc<Counters>,
        media: MediaTotals,
        on_death: Recipient<WorkerDied>,
    ) -> Self {
        Self {
            span: tracing::info_span!("worker", node = %node, worker = %slot, room = tracing::field::Empty),
            slot,
            worker: spawned.worker,
            tid: spawned.tid,
            cpu: Arc::new(CpuGauge::default()),
            last_sample: None,
            counters: Arc::new(Counters::default()),
            node_counters,
            media: MediaSampler::new(media.totals),
            stats_period: media.period,
            sampling: false,
            on_death,
        }
    }

    /// This worker's live counts.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// This worker thread's CPU use, updated every second.
    pub fn cpu(&self) -> Arc<CpuGauge> {
        Arc::clone(&self.cpu)
    }

    /// Its thread's Linux TID (0 until the thread has started).
    pub fn tid(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.tid)
    }

    /// The mediasoup worker's id.
    pub fn worker_id(&self) -> WorkerId {
        self.worker.id()
    }

    /// Starts a media sample unless one is still running.
    fn sample_media(&mut self, ctx: &mut Context<Self>) {
        if self.sampling || self.worker.closed() {
            return;
        }
        self.sampling = true;
        let media = self.media.clone();
        ctx.spawn(
            async move { media.sample().await }
                .into_actor(self)
                .map(|(), act, _| act.sampling = false),
        );
    }

    fn sample_cpu(&mut self) {
        let tid = self.tid.load(Ordering::Relaxed);
        if tid == 0 {
            return;
        }
        let Some(ticks) = thread_cpu_ticks(tid) else {
            return;
        };
        let now = Instant::now();
        if let Some((at, before)) = self.last_sample {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let used = ticks.saturating_sub(before) as f64 / USER_HZ;
                self.cpu.set((used / secs * 100.0).max(0.0));
            }
        }
        self.last_sample = Some((now, ticks));
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!(worker_id = %self.worker.id(), "worker started");
        let slot = self.slot;
        let worker_id = self.worker.id();
        let on_death = self.on_death.clone();
        let me = ctx.address();
        self.worker
            .on_dead(move |result| {
                let reason = match result {
                    Ok(()) => "exited".to_owned(),
                    Err(e) => e.to_string(),
                };
                on_death.do_send(WorkerDied {
                    slot,
                    worker_id,
                    reason,
                });
                me.do_send(StopWorker);
            })
            .detach();
        self.sample_cpu();
        ctx.run_interval(CPU_SAMPLE_PERIOD, |act, _| act.sample_cpu());
        ctx.run_interval(self.stats_period, |act, ctx| act.sample_media(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::info!("worker actor stopped");
    }
}

/// Stops the actor (and closes the worker).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopWorker;

impl Handler<StopWorker> for WorkerActor {
    type Result = ();
    fn handle(&mut self, _msg: StopWorker, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Treats the worker as crashed: the actor reports [`WorkerDied`] and stops,
/// exactly as when mediasoup reports the worker dead. Rooms drop their
/// routers on it, which closes the worker for real. For tests and failure
/// drills (mediasoup offers no public way to crash a worker).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct KillWorker;

impl Handler<KillWorker> for WorkerActor {
    type Result = ();
    fn handle(&mut self, _msg: KillWorker, ctx: &mut Self::Context) {
        let _e = self.span.clone().entered();
        tracing::warn!(worker_id = %self.worker.id(), "worker killed on request");
        self.on_death.do_send(WorkerDied {
            slot: self.slot,
            worker_id: self.worker.id(),
            reason: "killed on request".into(),
        });
        ctx.stop();
    }
}

/// Asks for a new router on this worker.
#[derive(Debug, Message)]
#[rtype(result = "Result<RouterLease, CreateRouterError>")]
pub struct CreateRouter {
    /// The media codecs the router offers (the room's).
    pub media_codecs: Arc<Vec<RtpCodecCapability>>,
}

/// A router together with the counters of the worker it lives on.
#[derive(Debug, Clone)]
pub struct RouterLease {
    /// The router; dropping every clone closes it.
    pub router: Router,
    /// The worker's slot.
    pub slot: WorkerSlot,
    /// The mediasoup worker it lives on.
    pub worker_id: WorkerId,
    /// The worker's counters, for tracking what is created on the router.
    pub worker_counters: Arc<Counters>,
}

impl Handler<CreateRouter> for WorkerActor {
    type Result = ResponseFuture<Result<RouterLease, CreateRouterError>>;

    fn handle(&mut self, msg: CreateRouter, _ctx: &mut Self::Context) -> Self::Result {
        let worker = self.worker.clone();
        let slot = self.slot;
        let worker_counters = Arc::clone(&self.counters);
        let node_counters = Arc::clone(&self.node_counters);
        let media = self.media.clone();
        Box::pin(async move {
            if worker.closed() {
                return Err(CreateRouterError::WorkerGone(slot));
            }
            let router = worker
                .create_router(RouterOptions::new(msg.media_codecs.to_vec()))
                .await
                .map_err(|e| CreateRouterError::Mediasoup(e.to_string()))?;
            media.watch_router(&router);
            let tracked = Tracked::new(Resource::Router, &[&node_counters, &worker_counters]);
            router.on_close(move || drop(tracked)).detach();
            // Pipe transports are created by the rooms' pipe links; count
            // them as they appear.
            let (wc, nc) = (Arc::clone(&worker_counters), Arc::clone(&node_counters));
            router
                .on_new_transport(move |t| {
                    if let mediasoup::router::NewTransport::Pipe(pipe) = t {
                        let guards = (
                            Tracked::new(Resource::Transport, &[&nc, &wc]),
                            Tracked::new(Resource::PipeTransport, &[&nc, &wc]),
                        );
                        pipe.on_close(Box::new(move || drop(guards))).detach();
                    }
                })
                .detach();
            Ok(RouterLease {
                router,
                slot,
                worker_id: worker.id(),
                worker_counters,
            })
        })
    }
}

/// Asks for the worker's live counts.
#[derive(Debug, Message)]
#[rtype(result = "Arc<Counters>")]
pub struct GetCounters;

impl Handler<GetCounters> for WorkerActor {
    type Result = MessageResult<GetCounters>;
    fn handle(&mut self, _msg: GetCounters, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(Arc::clone(&self.counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_reads_its_tid_and_cpu_ticks() {
        let handle = std::thread::spawn(|| {
            let tid = current_tid().expect("/proc/thread-self");
            assert_ne!(tid, std::process::id(), "a thread id, not the pid");
            // Burn a little CPU so that the figure is meaningful.
            let start = Instant::now();
            let mut x = 0_u64;
            while start.elapsed() < Duration::from_millis(50) {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            (tid, x)
        });
        let (tid, _) = handle.join().unwrap();
        // The thread is gone now; our own thread's stat parses.
        assert!(thread_cpu_ticks(tid).is_none());
        let me = current_tid().unwrap();
        assert!(thread_cpu_ticks(me).is_some());
    }
}
