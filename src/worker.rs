//! [`WorkerActor`]: owns one mediasoup [`Worker`] (one thread, one core).
//!
//! The actor hands out routers for rooms and counts what lives on its worker.
//! When the worker dies, the actor tells the [`ServerActor`](crate::server::ServerActor)
//! and stops; the server spawns a replacement into the same slot. Stopping the
//! actor drops the `Worker` handle, which closes the worker and everything on it.

use std::sync::Arc;

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
use crate::metrics::{Counters, Resource, Tracked};

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

fn worker_settings(config: &Config, slot: WorkerSlot) -> WorkerSettings {
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
    let _ = slot;
    settings
}

/// Starts one mediasoup worker for `slot`.
pub async fn spawn_worker(
    manager: &WorkerManager,
    config: &Config,
    slot: WorkerSlot,
) -> Result<Worker, SpawnWorkerError> {
    manager
        .create_worker(worker_settings(config, slot))
        .await
        .map_err(|source| SpawnWorkerError { slot, source })
}

/// Sent to the server when a worker dies.
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
    counters: Arc<Counters>,
    node_counters: Arc<Counters>,
    on_death: Recipient<WorkerDied>,
    span: Span,
}

impl WorkerActor {
    /// Wraps a started worker.
    pub fn new(
        node: &str,
        slot: WorkerSlot,
        worker: Worker,
        node_counters: Arc<Counters>,
        on_death: Recipient<WorkerDied>,
    ) -> Self {
        Self {
            span: tracing::info_span!("worker", node = %node, worker = %slot, room = tracing::field::Empty),
            slot,
            worker,
            counters: Arc::new(Counters::default()),
            node_counters,
            on_death,
        }
    }

    /// This worker's live counts.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
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

/// Asks for a new router on this worker.
#[derive(Debug, Message)]
#[rtype(result = "Result<RouterLease, CreateRouterError>")]
pub struct CreateRouter;

/// A router together with the counters of the worker it lives on.
#[derive(Debug, Clone)]
pub struct RouterLease {
    /// The router; dropping every clone closes it.
    pub router: Router,
    /// The worker's slot.
    pub slot: WorkerSlot,
    /// The worker's counters, for tracking what is created on the router.
    pub worker_counters: Arc<Counters>,
}

impl Handler<CreateRouter> for WorkerActor {
    type Result = ResponseFuture<Result<RouterLease, CreateRouterError>>;

    fn handle(&mut self, _msg: CreateRouter, _ctx: &mut Self::Context) -> Self::Result {
        let worker = self.worker.clone();
        let slot = self.slot;
        let worker_counters = Arc::clone(&self.counters);
        let node_counters = Arc::clone(&self.node_counters);
        Box::pin(async move {
            if worker.closed() {
                return Err(CreateRouterError::WorkerGone(slot));
            }
            let router = worker
                .create_router(RouterOptions::new(media_codecs()))
                .await
                .map_err(|e| CreateRouterError::Mediasoup(e.to_string()))?;
            let tracked = Tracked::new(Resource::Router, &[&worker_counters, &node_counters]);
            router.on_close(move || drop(tracked)).detach();
            Ok(RouterLease {
                router,
                slot,
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
