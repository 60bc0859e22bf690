//! `GET /metrics`: the node's figures in the Prometheus text format,
//! encoded by `prometheus-client` (nothing formatted by hand).
//!
//! Gauges are set from the same snapshot `/api/status` serves, at each
//! scrape; signalling requests are counted as they are handled. The other
//! counters mirror running totals the node keeps elsewhere (its
//! [`Tallies`], the fabric's per-peer traffic): each scrape raises them to
//! the current total, under one lock, so they never go down. No metric has
//! a room or participant label: per-room figures are in `/api/status`'s
//! `roomDetails`. Fabric metrics are labelled by peer node and worker
//! metrics by worker slot, both bounded by configuration.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;

use super::ApiState;
use crate::cluster::MemberView;
use crate::media_stats::{Direction, Path};
use crate::metrics::Tallies;
use crate::server::NodeStatus;
use mafalda_actors::LinkStats;

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

/// Labels of one cluster member.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberNameLabels {
    /// Its node name.
    pub member: String,
}

/// Labels of RTP carried by a worker.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RtpLabels {
    /// The worker slot.
    pub worker: String,
    /// `client` (participants' transports) or `pipe`.
    pub kind: String,
}

/// Labels of refused joins.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The error code the client got.
    pub reason: String,
}

/// Labels of spill admissions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `admitted`, `full`, `draining`, `busy` or `join_failed`.
    pub outcome: String,
}

/// Labels of fabric traffic with one peer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's node name.
    pub peer: String,
}

/// Labels of fabric messages with one peer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerMessageLabels {
    /// The peer's node name.
    pub peer: String,
    /// `tell` or `ask` (actor lookups included).
    pub kind: String,
}

/// Registers `metric` as `name` with its help text, and hands it back.
fn reg<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

/// Raises a counter mirroring a running total to that total.
fn catch_up(counter: &Counter, total: u64) {
    let have = counter.get();
    if total > have {
        counter.inc_by(total - have);
    }
}

/// What one scrape reads: the status snapshot, the cluster members, the
/// node's running totals and its fabric traffic per peer.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The node status.
    pub status: &'a NodeStatus,
    /// The other members (none without a cluster).
    pub members: &'a [MemberView],
    /// The node's running totals.
    pub tallies: &'a Tallies,
    /// Fabric traffic per peer (none without a cluster).
    pub links: &'a [LinkStats],
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
    member_up: Family<MemberNameLabels, Gauge>,
    requests: Family<RequestLabels, Counter>,
    rtp_in_packets: Family<RtpLabels, Counter>,
    rtp_in_bytes: Family<RtpLabels, Counter>,
    rtp_out_packets: Family<RtpLabels, Counter>,
    rtp_out_bytes: Family<RtpLabels, Counter>,
    joins_refused: Family<ReasonLabels, Counter>,
    joins_spilled: Counter,
    joins_spill_missed: Counter,
    spill_admissions: Family<OutcomeLabels, Counter>,
    link_up: Family<PeerLabels, Gauge>,
    link_rtt: Family<PeerLabels, FloatGauge>,
    fabric_sent_messages: Family<PeerMessageLabels, Counter>,
    fabric_received_messages: Family<PeerMessageLabels, Counter>,
    fabric_sent_bytes: Family<PeerLabels, Counter>,
    fabric_received_bytes: Family<PeerLabels, Counter>,
    /// Held while a scrape updates the metrics, so that two scrapes never
    /// add the same difference twice; holds the members ever listed.
    sync: Mutex<BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered with its help text.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mafalda");
        let r = &mut registry;
        let inner = Inner {
            registry: Mutex::new(Registry::default()),
            workers: reg(r, "workers", "Live mediasoup workers", Gauge::default()),
            rooms: reg(
                r,
                "rooms",
                "Open rooms on this node (shards included)",
                Gauge::default(),
            ),
            peers: reg(r, "peers", "Participants on this node", Gauge::default()),
            transports: reg(
                r,
                "transports",
                "Transports (pipe transports included)",
                Gauge::default(),
            ),
            producers: reg(
                r,
                "producers",
                "Producers (pipe producers included)",
                Gauge::default(),
            ),
            consumers: reg(
                r,
                "consumers",
                "Consumers (pipe consumers included)",
                Gauge::default(),
            ),
            worker_cpu: reg(
                r,
                "worker_cpu_ratio",
                "CPU use of a worker's thread over the last second, in cores",
                Family::default(),
            ),
            worker_consumers: reg(
                r,
                "worker_consumers",
                "Consumers on a worker (pipe consumers included)",
                Family::default(),
            ),
            pipe_producers: reg(
                r,
                "worker_pipe_producers",
                "Producers piped into a worker (from another worker or node)",
                Family::default(),
            ),
            pipe_consumers: reg(
                r,
                "worker_pipe_consumers",
                "Consumers feeding pipes out of a worker",
                Family::default(),
            ),
            pipe_transports: reg(
                r,
                "worker_pipe_transports",
                "Pipe transports on a worker",
                Family::default(),
            ),
            links: reg(
                r,
                "pipe_links",
                "Pipe links of this node's rooms, between its workers or with other nodes",
                Family::default(),
            ),
            members: reg(
                r,
                "cluster_members",
                "Other members of the cluster, by SWIM state",
                Family::default(),
            ),
            member_up: reg(
                r,
                "cluster_member_up",
                "1 while SWIM sees the member alive, 0 once suspect or down",
                Family::default(),
            ),
            requests: reg(
                r,
                "signalling_requests",
                "Signalling requests handled, by method and result",
                Family::default(),
            ),
            rtp_in_packets: reg(
                r,
                "worker_rtp_received_packets",
                "RTP packets received by a worker's producers (sampled)",
                Family::default(),
            ),
            rtp_in_bytes: reg(
                r,
                "worker_rtp_received_bytes",
                "RTP bytes received by a worker's producers (sampled)",
                Family::default(),
            ),
            rtp_out_packets: reg(
                r,
                "worker_rtp_sent_packets",
                "RTP packets sent by a worker's consumers (sampled)",
                Family::default(),
            ),
            rtp_out_bytes: reg(
                r,
                "worker_rtp_sent_bytes",
                "RTP bytes sent by a worker's consumers (sampled)",
                Family::default(),
            ),
            joins_refused: reg(
                r,
                "joins_refused",
                "Joins refused to this node's clients, by the error code they got",
                Family::default(),
            ),
            joins_spilled: reg(
                r,
                "joins_spilled",
                "Joins this node, full, placed on a peer",
                Counter::default(),
            ),
            joins_spill_missed: reg(
                r,
                "joins_spill_missed",
                "Joins that arrived while this node was full, no peer admitting them, served here",
                Counter::default(),
            ),
            spill_admissions: reg(
                r,
                "spill_admissions",
                "Other nodes' requests to admit a spilled participant, by outcome",
                Family::default(),
            ),
            link_up: reg(
                r,
                "fabric_link_up",
                "1 while a fabric link to the peer is up",
                Family::default(),
            ),
            link_rtt: reg(
                r,
                "fabric_link_rtt_seconds",
                "Round-trip time of the live fabric link to the peer, as QUIC estimates it",
                Family::default(),
            ),
            fabric_sent_messages: reg(
                r,
                "fabric_sent_messages",
                "Fabric messages sent to the peer, by kind",
                Family::default(),
            ),
            fabric_received_messages: reg(
                r,
                "fabric_received_messages",
                "Fabric messages received from the peer, by kind",
                Family::default(),
            ),
            fabric_sent_bytes: reg(
                r,
                "fabric_sent_bytes",
                "UDP bytes sent to the peer over fabric links",
                Family::default(),
            ),
            fabric_received_bytes: reg(
                r,
                "fabric_received_bytes",
                "UDP bytes received from the peer over fabric links",
                Family::default(),
            ),
            sync: Mutex::new(BTreeSet::new()),
        };
        *inner.registry.lock() = registry;
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

    /// Sets the gauges and raises the mirrored counters from one scrape's
    /// readings.
    pub fn observe(&self, seen: Observed<'_>) {
        let mut listed = self.0.sync.lock();
        self.observe_status(seen.status);
        self.observe_members(seen.members, &mut listed);
        self.observe_tallies(seen.tallies);
        self.observe_links(seen.links);
    }

    fn observe_status(&self, status: &NodeStatus) {
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
    }

    /// `listed`: every member ever listed; one the cluster has forgotten
    /// stays, at 0.
    fn observe_members(&self, members: &[MemberView], listed: &mut BTreeSet<String>) {
        let m = &self.0;
        for state in ["alive", "suspect", "down"] {
            let n = members.iter().filter(|v| v.state == state).count() as i64;
            m.members
                .get_or_create(&MemberLabels {
                    state: state.into(),
                })
                .set(n);
        }
        for member in listed.iter() {
            if !members.iter().any(|v| &v.node == member) {
                m.member_up
                    .get_or_create(&MemberNameLabels {
                        member: member.clone(),
                    })
                    .set(0);
            }
        }
        for v in members {
            listed.insert(v.node.clone());
            m.member_up
                .get_or_create(&MemberNameLabels {
                    member: v.node.clone(),
                })
                .set(i64::from(v.state == "alive"));
        }
    }

    fn observe_tallies(&self, tallies: &Tallies) {
        let m = &self.0;
        for (slot, totals) in tallies.rtp_slots().iter().enumerate() {
            for path in Path::ALL {
                let l = RtpLabels {
                    worker: slot.to_string(),
                    kind: path.as_str().into(),
                };
                let rx = totals.get(path, Direction::In);
                let tx = totals.get(path, Direction::Out);
                catch_up(&m.rtp_in_packets.get_or_create(&l), rx.packets);
                catch_up(&m.rtp_in_bytes.get_or_create(&l), rx.bytes);
                catch_up(&m.rtp_out_packets.get_or_create(&l), tx.packets);
                catch_up(&m.rtp_out_bytes.get_or_create(&l), tx.bytes);
            }
        }
        for (reason, n) in tallies.joins_refused() {
            let l = ReasonLabels { reason };
            catch_up(&m.joins_refused.get_or_create(&l), n);
        }
        catch_up(&m.joins_spilled, tallies.joins_spilled());
        catch_up(&m.joins_spill_missed, tallies.joins_spill_missed());
        for (outcome, n) in tallies.spill_admissions() {
            let l = OutcomeLabels { outcome };
            catch_up(&m.spill_admissions.get_or_create(&l), n);
        }
    }

    fn observe_links(&self, links: &[LinkStats]) {
        let m = &self.0;
        for s in links {
            let peer = PeerLabels {
                peer: s.peer.to_string(),
            };
            m.link_up
                .get_or_create(&peer)
                .set(i64::from(s.rtt.is_some()));
            match s.rtt {
                Some(rtt) => {
                    m.link_rtt.get_or_create(&peer).set(rtt.as_secs_f64());
                }
                None => {
                    m.link_rtt.remove(&peer);
                }
            }
            catch_up(&m.fabric_sent_bytes.get_or_create(&peer), s.bytes_sent);
            catch_up(
                &m.fabric_received_bytes.get_or_create(&peer),
                s.bytes_received,
            );
            for (kind, sent, received) in [
                ("tell", s.tells_sent, s.tells_received),
                ("ask", s.asks_sent, s.asks_received),
            ] {
                let l = PeerMessageLabels {
                    peer: peer.peer.clone(),
                    kind: kind.into(),
                };
                catch_up(&m.fabric_sent_messages.get_or_create(&l), sent);
                catch_up(&m.fabric_received_messages.get_or_create(&l), received);
            }
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
    let (members, links) = match &state.cluster {
        Some(c) => (c.members(), c.node().link_stats()),
        None => (Vec::new(), Vec::new()),
    };
    state.metrics.observe(Observed {
        status: &status,
        members: &members,
        tallies: &state.server.env().tallies,
        links: &links,
    });
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
