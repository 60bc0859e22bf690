//! `GET /metrics`: the node's figures in the Prometheus text format,
//! encoded by `prometheus-client` (nothing formatted by hand).
//!
//! Gauges are set from the same snapshot `/api/status` serves, at each
//! scrape; counters (signalling requests) count as requests are handled.
//! No metric has a room or peer label: per-room figures are in
//! `/api/status`'s `roomDetails`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::ApiState;
use crate::server::NodeStatus;

type FloatGauge = Gauge<f64, AtomicU64>;

/// Labels of one worker.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// The worker slot.
    pub worker: String,
}

/// Labels of a signalling request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The method (an unknown one is counted as `unknown`).
    pub method: String,
    /// `ok`, or the error code.
    pub result: String,
}

/// Labels of pipe links.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabels {
    /// `local` (between this node's workers) or `cross_node`.
    pub scope: String,
}

/// Labels of cluster members.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    /// `alive`, `suspect` or `down`.
    pub state: String,
}

/// The node's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Mutex<Registry>,
    workers: Gauge,
    rooms: Gauge,
    peers: Gauge,
    transports: Gauge,
    producers: Gauge,
    consumers: Gauge,
    worker_cpu: Family<WorkerLabels, FloatGauge>,
    worker_consumers: Family<WorkerLabels, Gauge>,
    pipe_producers: Family<WorkerLabels, Gauge>,
    pipe_consumers: Family<WorkerLabels, Gauge>,
    pipe_transports: Family<WorkerLabels, Gauge>,
    links: Family<LinkLabels, Gauge>,
    members: Family<MemberLabels, Gauge>,
    requests: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered with its help text.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("mafalda");
        let inner = Inner {
            registry: Mutex::new(Registry::default()),
            workers: Gauge::default(),
            rooms: Gauge::default(),
            peers: Gauge::default(),
            transports: Gauge::default(),
            producers: Gauge::default(),
            consumers: Gauge::default(),
            worker_cpu: Family::default(),
            worker_consumers: Family::default(),
            pipe_producers: Family::default(),
            pipe_consumers: Family::default(),
            pipe_transports: Family::default(),
            links: Family::default(),
            members: Family::default(),
            requests: Family::default(),
        };
        r.register("workers", "Live mediasoup workers", inner.workers.clone());
        r.register(
            "rooms",
            "Open rooms on this node (shards included)",
            inner.rooms.clone(),
        );
        r.register("peers", "Participants on this node", inner.peers.clone());
        r.register(
            "transports",
            "Transports (pipe transports included)",
            inner.transports.clone(),
        );
        r.register(
            "producers",
            "Producers (pipe producers included)",
            inner.producers.clone(),
        );
        r.register(
            "consumers",
            "Consumers (pipe consumers included)",
            inner.consumers.clone(),
        );
        r.register(
            "worker_cpu_ratio",
            "CPU use of a worker's thread over the last second, in cores",
            inner.worker_cpu.clone(),
        );
        r.register(
            "worker_consumers",
            "Consumers on a worker (pipe consumers included)",
            inner.worker_consumers.clone(),
        );
        r.register(
            "worker_pipe_producers",
            "Producers piped into a worker (from another worker or node)",
            inner.pipe_producers.clone(),
        );
        r.register(
            "worker_pipe_consumers",
            "Consumers feeding pipes out of a worker",
            inner.pipe_consumers.clone(),
        );
        r.register(
            "worker_pipe_transports",
            "Pipe transports on a worker",
            inner.pipe_transports.clone(),
        );
        r.register(
            "pipe_links",
            "Pipe links of this node's rooms, between its workers or with other nodes",
            inner.links.clone(),
        );
        r.register(
            "cluster_members",
            "Other members of the cluster, by SWIM state",
            inner.members.clone(),
        );
        r.register(
            "signalling_requests",
            "Signalling requests handled, by method and result",
            inner.requests.clone(),
        );
        *inner.registry.lock() = r;
        Self(Arc::new(inner))
    }

    /// Counts one signalling request.
    pub fn request(&self, method: &str, result: &str) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Sets the gauges from a status snapshot and the members' states.
    pub fn observe(&self, status: &NodeStatus, members: &[&str]) {
        let m = &self.0;
        m.workers.set(status.workers as i64);
        m.rooms.set(status.rooms);
        m.peers.set(status.peers);
        m.transports.set(status.transports);
        m.producers.set(status.producers);
        m.consumers.set(status.consumers);
        for w in &status.worker_details {
            let l = WorkerLabels {
                worker: w.slot.to_string(),
            };
            m.worker_cpu.get_or_create(&l).set(w.cpu_percent / 100.0);
            m.worker_consumers.get_or_create(&l).set(w.counts.consumers);
            m.pipe_producers
                .get_or_create(&l)
                .set(w.counts.pipe_producers);
            m.pipe_consumers
                .get_or_create(&l)
                .set(w.counts.pipe_consumers);
            m.pipe_transports
                .get_or_create(&l)
                .set(w.counts.pipe_transports);
        }
        let (mut local, mut cross) = (0, 0);
        for r in &status.room_details {
            for l in r.links_in.iter().chain(&r.links_out) {
                let same = l.from.split('/').next() == l.to.split('/').next();
                if same {
                    local += 1;
                } else {
                    cross += 1;
                }
            }
        }
        for (scope, n) in [("local", local), ("cross_node", cross)] {
            m.links
                .get_or_create(&LinkLabels {
                    scope: scope.into(),
                })
                .set(n);
        }
        for state in ["alive", "suspect", "down"] {
            let n = members.iter().filter(|s| **s == state).count() as i64;
            m.members
                .get_or_create(&MemberLabels {
                    state: state.into(),
                })
                .set(n);
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.0.registry.lock())?;
        Ok(out)
    }
}

/// `GET /metrics`
pub async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let status = match state.server.status().await {
        Ok(s) => s,
        Err(e) => return HttpResponse::ServiceUnavailable().body(e.to_string()),
    };
    let members = state
        .cluster
        .as_ref()
        .map(|c| c.members())
        .unwrap_or_default();
    let states: Vec<&str> = members.iter().map(|m| m.state).collect();
    state.metrics.observe(&status, &states);
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
