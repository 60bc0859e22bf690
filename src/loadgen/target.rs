//! What loadgen drives: a room behind Mafalda's facade (in process), a room
//! on a node over the signalling API, or plain mediasoup routers (the
//! baseline without Mafalda).
//!
//! Every target speaks plain RTP: a published stream gets its own plain
//! transport in `comedia` mode (the node learns the sender's address from the
//! first packet), and each subscriber one plain transport connected to a
//! receive socket of ours, on which it consumes the streams it wants.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use mediasoup::prelude::{
    ConsumerOptions, PipeToRouterOptions, PlainTransportOptions, PlainTransportRemoteParameters,
    ProducerOptions, RouterOptions, Transport, WorkerManager,
};
use mediasoup::types::data_structures::{ListenInfo, Protocol};
use mediasoup::types::rtp_parameters::RtpParameters;

use super::media::{rtp_parameters, subscriber_rtp_capabilities, StreamSpec};
use super::signalling_client::SignallingPeer;
use crate::config::Config;
use crate::ids::WorkerSlot;
use crate::room::rtc_listen_info;
use crate::sfu::{self, Direction};
use crate::worker::{media_codecs, spawn_worker, thread_cpu_time};

/// Why a target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The Mafalda facade refused.
    #[error("mafalda: {0}")]
    Sfu(#[from] sfu::SfuError),
    /// The plain mediasoup baseline failed.
    #[error("mediasoup: {0}")]
    Mediasoup(String),
    /// The signalling exchange failed.
    #[error("signalling: {0}")]
    Signalling(String),
    /// The node refused a signalling request.
    #[error("signalling: `{method}` failed: {code}: {message}")]
    Refused {
        /// The method.
        method: String,
        /// The protocol's error code.
        code: String,
        /// Details.
        message: String,
        /// Where the node said to go instead (the error's `url`, e.g.
        /// with `draining`).
        url: Option<String>,
    },
    /// No such participant or producer (a loadgen bug, reported not panicked).
    #[error("unknown {0}")]
    Unknown(&'static str),
    /// The node announced an address we cannot send to.
    #[error("bad address from the node: {0}")]
    Address(String),
}

/// A producer as loadgen knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProducerKey(pub String);

/// A room loadgen can publish into and subscribe from.
#[async_trait(?Send)]
pub trait Target {
    /// A short description for reports.
    fn describe(&self) -> String;

    /// A new participant; returns its index.
    async fn join(&mut self, name: &str) -> Result<usize, TargetError>;

    /// Participant `peer` publishes a stream; returns the producer and where
    /// to send its RTP (and from where RTCP feedback will come).
    async fn publish(
        &mut self,
        peer: usize,
        spec: &StreamSpec,
    ) -> Result<(ProducerKey, SocketAddr), TargetError>;

    /// Participant `peer` receives `producer` at `sink` (one plain transport
    /// per participant, created on its first subscription); returns the SSRC
    /// the stream arrives with.
    async fn subscribe(
        &mut self,
        peer: usize,
        producer: &ProducerKey,
        sink: SocketAddr,
    ) -> Result<u32, TargetError>;

    /// Participant `peer` leaves (its transports, producers and consumers
    /// close).
    async fn leave(&mut self, peer: usize) -> Result<(), TargetError>;

    /// CPU time used so far by each worker thread serving the target.
    async fn worker_cpu(&self) -> Vec<std::time::Duration>;

    /// Closes every participant.
    async fn shutdown(&mut self);
}

/// Resolves the address a node announced for a plain transport; an
/// unspecified address means "this host".
pub(crate) fn send_addr(ip: &str, port: u16) -> Result<SocketAddr, TargetError> {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| TargetError::Address(ip.to_owned()))?;
    let ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    Ok(SocketAddr::new(ip, port))
}

fn first_ssrc(rtp: &RtpParameters) -> Result<u32, TargetError> {
    rtp.encodings
        .first()
        .and_then(|e| e.ssrc)
        .ok_or(TargetError::Unknown("consumer SSRC"))
}

/// A target's participants by index; a participant that left leaves a
/// hole, so indices stay stable.
#[derive(Debug)]
struct Peers<P>(Vec<Option<P>>);

impl<P> Default for Peers<P> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<P> Peers<P> {
    /// Adds one; returns its index.
    fn add(&mut self, p: P) -> usize {
        self.0.push(Some(p));
        self.0.len() - 1
    }

    fn get_mut(&mut self, i: usize) -> Result<&mut P, TargetError> {
        self.0
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or(TargetError::Unknown("participant"))
    }

    /// Removes one.
    fn take(&mut self, i: usize) -> Result<P, TargetError> {
        self.0
            .get_mut(i)
            .and_then(Option::take)
            .ok_or(TargetError::Unknown("participant"))
    }

    /// Removes them all.
    fn drain(&mut self) -> impl Iterator<Item = P> + '_ {
        self.0.drain(..).flatten()
    }

    fn len(&self) -> usize {
        self.0.iter().flatten().count()
    }
}

// ---- Mafalda in process -------------------------------------------------

struct FacadePeer {
    participant: sfu::Participant,
    recv: Option<sfu::PlainTransport>,
    sends: Vec<sfu::PlainTransport>,
    consumers: Vec<sfu::Consumer>,
}

/// A room behind Mafalda's facade, in this process: placement over the
/// node's workers and piping happen as for any embedding application.
pub struct FacadeTarget {
    sfu: sfu::Sfu,
    room: sfu::Room,
    peers: Peers<FacadePeer>,
}

impl std::fmt::Debug for FacadeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacadeTarget")
            .field("room", self.room.id())
            .field("peers", &self.peers.len())
            .finish()
    }
}

impl FacadeTarget {
    /// Opens (or creates) room `room` through the facade.
    pub async fn new(sfu: sfu::Sfu, room: &str) -> Result<Self, TargetError> {
        let room = sfu.room(room).await?;
        Ok(Self {
            sfu,
            room,
            peers: Peers::default(),
        })
    }
}

#[async_trait(?Send)]
impl Target for FacadeTarget {
    fn describe(&self) -> String {
        format!("mafalda room `{}` (in process)", self.room.id())
    }

    async fn join(&mut self, name: &str) -> Result<usize, TargetError> {
        let participant = self.room.join(name).await?;
        // Keep reading its events: a participant whose queue fills up is
        // removed from the room, like a slow client.
        if let Some(mut events) = participant.take_events() {
            actix_rt::spawn(async move { while events.recv().await.is_some() {} });
        }
        Ok(self.peers.add(FacadePeer {
            participant,
            recv: None,
            sends: Vec::new(),
            consumers: Vec::new(),
        }))
    }

    async fn publish(
        &mut self,
        peer: usize,
        spec: &StreamSpec,
    ) -> Result<(ProducerKey, SocketAddr), TargetError> {
        let p = self.peers.get_mut(peer)?;
        let t = p
            .participant
            .create_plain_transport(Direction::Send, true)
            .await?;
        let producer = t
            .produce(sfu::ProducerOptions::new(
                spec.kind.media_kind(),
                rtp_parameters(spec),
            ))
            .await?;
        let (ip, port) = t.local();
        let to = send_addr(ip, port)?;
        p.sends.push(t);
        Ok((ProducerKey(producer.id().to_string()), to))
    }

    async fn subscribe(
        &mut self,
        peer: usize,
        producer: &ProducerKey,
        sink: SocketAddr,
    ) -> Result<u32, TargetError> {
        let producer_id = producer
            .0
            .parse()
            .map_err(|_| TargetError::Unknown("producer"))?;
        let p = self.peers.get_mut(peer)?;
        let t = match &p.recv {
            Some(t) => t.clone(),
            None => {
                let t = p
                    .participant
                    .create_plain_transport(Direction::Recv, false)
                    .await?;
                t.connect(sink).await?;
                p.recv = Some(t.clone());
                t
            }
        };
        let consumer = t
            .consume(sfu::ConsumerOptions::new(
                producer_id,
                subscriber_rtp_capabilities(),
            ))
            .await?;
        consumer.resume().await?;
        let ssrc = first_ssrc(consumer.rtp_parameters())?;
        p.consumers.push(consumer);
        Ok(ssrc)
    }

    async fn leave(&mut self, peer: usize) -> Result<(), TargetError> {
        let p = self.peers.take(peer)?;
        p.participant.leave();
        Ok(())
    }

    async fn worker_cpu(&self) -> Vec<std::time::Duration> {
        match self.sfu.status().await {
            Ok(s) => s
                .worker_details
                .iter()
                .filter_map(|w| w.thread_id.and_then(thread_cpu_time))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn shutdown(&mut self) {
        for p in self.peers.drain() {
            p.participant.leave();
        }
    }
}

// ---- plain mediasoup (the baseline) ---------------------------------------

struct BaselinePeer {
    /// Index of the router (and worker) the peer was put on.
    router: usize,
    recv: Option<mediasoup::plain_transport::PlainTransport>,
    consumers: Vec<mediasoup::consumer::Consumer>,
}

/// A worker of the baseline with its one router.
struct BaselineWorker {
    /// Kept so that the worker lives as long as the target.
    _worker: mediasoup::worker::Worker,
    tid: Arc<std::sync::atomic::AtomicU32>,
    router: mediasoup::router::Router,
}

/// Plain mediasoup, no Mafalda: the baseline. With one worker (the
/// default), one router, for Mafalda's per-worker overhead. With N workers,
/// one router on each, participants put on them in turn, and a producer
/// piped to another router with mediasoup's own `pipe_producer_to_router`
/// the first time a consumer there wants it: how an application scales
/// mediasoup over the cores of one host without Mafalda. The workers are
/// started with the same settings as a node's.
pub struct BaselineTarget {
    _manager: WorkerManager,
    workers: Vec<BaselineWorker>,
    listen: ListenInfo,
    /// Producers with the index of their router.
    producers: HashMap<ProducerKey, (usize, mediasoup::producer::Producer)>,
    /// Pipes made, by producer and destination router (the handles keep
    /// them open).
    pipes: HashMap<
        (ProducerKey, usize),
        (mediasoup::consumer::Consumer, mediasoup::producer::Producer),
    >,
    sends: Vec<mediasoup::plain_transport::PlainTransport>,
    peers: Peers<BaselinePeer>,
    next_router: usize,
    /// `rtc.key_frame_request_delay_ms`, applied to producers as a node does.
    key_frame_request_delay: u32,
}

impl std::fmt::Debug for BaselineTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaselineTarget")
            .field("workers", &self.workers.len())
            .field("peers", &self.peers.len())
            .field("pipes", &self.pipes.len())
            .finish()
    }
}

impl BaselineTarget {
    /// Starts `config.workers.count` workers (settings from `config`, as a
    /// node would), each with a router with Mafalda's codecs.
    pub async fn new(config: &Config) -> Result<Self, TargetError> {
        let manager = WorkerManager::new();
        let mut workers = Vec::new();
        for slot in 0..config.workers.count.max(1) {
            let spawned = spawn_worker(&manager, config, WorkerSlot(slot))
                .await
                .map_err(ms_err)?;
            let router = spawned
                .worker
                .create_router(RouterOptions::new(media_codecs()))
                .await
                .map_err(ms_err)?;
            workers.push(BaselineWorker {
                _worker: spawned.worker,
                tid: spawned.tid,
                router,
            });
        }
        let listen = rtc_listen_info(&config.rtc, Protocol::Udp);
        Ok(Self {
            _manager: manager,
            workers,
            listen,
            producers: HashMap::new(),
            pipes: HashMap::new(),
            sends: Vec::new(),
            peers: Peers::default(),
            next_router: 0,
            key_frame_request_delay: config.rtc.key_frame_request_delay_ms,
        })
    }

    fn options(&self) -> PlainTransportOptions {
        let mut o = PlainTransportOptions::new(self.listen.clone());
        o.rtcp_mux = true;
        o
    }

    /// The router a producer is on, and the producer's id on router `to`
    /// (piped there first if need be).
    async fn producer_on(
        &mut self,
        producer: &ProducerKey,
        to: usize,
    ) -> Result<mediasoup::producer::ProducerId, TargetError> {
        let (from, original) = self
            .producers
            .get(producer)
            .map(|(r, p)| (*r, p.id()))
            .ok_or(TargetError::Unknown("producer"))?;
        if from == to {
            return Ok(original);
        }
        let key = (producer.clone(), to);
        if let Some((_, piped)) = self.pipes.get(&key) {
            return Ok(piped.id());
        }
        let target = self.workers[to].router.clone();
        let pipe = self.workers[from]
            .router
            .pipe_producer_to_router(original, PipeToRouterOptions::new(target))
            .await
            .map_err(ms_err)?;
        let piped = pipe.pipe_producer.into_inner();
        let id = piped.id();
        self.pipes.insert(key, (pipe.pipe_consumer, piped));
        Ok(id)
    }
}

fn ms_err(e: impl std::fmt::Display) -> TargetError {
    TargetError::Mediasoup(e.to_string())
}

#[async_trait(?Send)]
impl Target for BaselineTarget {
    fn describe(&self) -> String {
        match self.workers.len() {
            1 => "one plain mediasoup router (no Mafalda)".to_owned(),
            n => format!(
                "plain mediasoup, {n} routers on {n} workers, pipe_producer_to_router (no Mafalda)"
            ),
        }
    }

    async fn join(&mut self, _name: &str) -> Result<usize, TargetError> {
        let router = self.next_router % self.workers.len();
        self.next_router += 1;
        Ok(self.peers.add(BaselinePeer {
            router,
            recv: None,
            consumers: Vec::new(),
        }))
    }

    async fn publish(
        &mut self,
        peer: usize,
        spec: &StreamSpec,
    ) -> Result<(ProducerKey, SocketAddr), TargetError> {
        let r = self.peers.get_mut(peer)?.router;
        let mut options = self.options();
        options.comedia = true;
        let t = self.workers[r]
            .router
            .create_plain_transport(options)
            .await
            .map_err(ms_err)?;
        let mut options = ProducerOptions::new(spec.kind.media_kind(), rtp_parameters(spec));
        // As a node would.
        options.key_frame_request_delay = self.key_frame_request_delay;
        let producer = t.produce(options).await.map_err(ms_err)?;
        let tuple = t.tuple();
        let to = send_addr(tuple.local_address(), tuple.local_port())?;
        let key = ProducerKey(producer.id().to_string());
        self.producers.insert(key.clone(), (r, producer));
        self.sends.push(t);
        Ok((key, to))
    }

    async fn subscribe(
        &mut self,
        peer: usize,
        producer: &ProducerKey,
        sink: SocketAddr,
    ) -> Result<u32, TargetError> {
        let r = self.peers.get_mut(peer)?.router;
        let producer_id = self.producer_on(producer, r).await?;
        let options = self.options();
        let router = self.workers[r].router.clone();
        let p = self.peers.get_mut(peer)?;
        let t = match &p.recv {
            Some(t) => t.clone(),
            None => {
                let t = router
                    .create_plain_transport(options)
                    .await
                    .map_err(ms_err)?;
                t.connect(PlainTransportRemoteParameters {
                    ip: Some(sink.ip()),
                    port: Some(sink.port()),
                    rtcp_port: None,
                    srtp_parameters: None,
                })
                .await
                .map_err(ms_err)?;
                p.recv = Some(t.clone());
                t
            }
        };
        let mut options = ConsumerOptions::new(producer_id, subscriber_rtp_capabilities());
        options.paused = true;
        let consumer = t.consume(options).await.map_err(ms_err)?;
        consumer.resume().await.map_err(ms_err)?;
        let ssrc = first_ssrc(consumer.rtp_parameters())?;
        p.consumers.push(consumer);
        Ok(ssrc)
    }

    async fn leave(&mut self, peer: usize) -> Result<(), TargetError> {
        // Dropping the handles closes the transport and its consumers.
        self.peers.take(peer).map(drop)
    }

    async fn worker_cpu(&self) -> Vec<std::time::Duration> {
        self.workers
            .iter()
            .filter_map(|w| thread_cpu_time(w.tid.load(std::sync::atomic::Ordering::Relaxed)))
            .collect()
    }

    async fn shutdown(&mut self) {
        self.peers.drain().for_each(drop);
        self.pipes.clear();
        self.sends.clear();
        self.producers.clear();
    }
}

// ---- a node over signalling --------------------------------------------------

/// A room on a running node, driven over the WebSocket signalling API like
/// any client (one connection per participant).
#[derive(Debug)]
pub struct SignallingTarget {
    urls: Vec<String>,
    room: String,
    peers: Peers<SignallingPeer>,
    /// Participants that are not publishers, so far (to take the nodes in
    /// turn).
    others: usize,
}

/// How long a subscription waits for a producer made on another node to
/// reach the subscriber's node.
const PRODUCER_REACH: std::time::Duration = std::time::Duration::from_secs(5);

impl SignallingTarget {
    /// Targets room `room` of the node whose WebSocket endpoint is `url`
    /// (e.g. `ws://127.0.0.1:3000/ws`).
    pub fn new(url: impl Into<String>, room: impl Into<String>) -> Self {
        Self::spread(vec![url.into()], room)
    }

    /// Targets room `room` over several nodes of a cluster: publishers
    /// join the first URL, the other participants the others in turn (all
    /// of them when there is only one).
    pub fn spread(urls: Vec<String>, room: impl Into<String>) -> Self {
        Self {
            urls,
            room: room.into(),
            peers: Peers::default(),
            others: 0,
        }
    }

    fn url_for(&mut self, name: &str) -> &str {
        if name.starts_with("pub") || self.urls.len() == 1 {
            return &self.urls[0];
        }
        let i = 1 + self.others % (self.urls.len() - 1);
        self.others += 1;
        &self.urls[i]
    }
}

#[async_trait(?Send)]
impl Target for SignallingTarget {
    fn describe(&self) -> String {
        format!(
            "room `{}` at {} (signalling)",
            self.room,
            self.urls.join(", ")
        )
    }

    async fn join(&mut self, name: &str) -> Result<usize, TargetError> {
        let url = self.url_for(name).to_owned();
        let room = self.room.clone();
        let peer = SignallingPeer::join(&url, &room, name).await?;
        Ok(self.peers.add(peer))
    }

    async fn publish(
        &mut self,
        peer: usize,
        spec: &StreamSpec,
    ) -> Result<(ProducerKey, SocketAddr), TargetError> {
        let (id, to) = self.peers.get_mut(peer)?.publish(spec).await?;
        Ok((ProducerKey(id), to))
    }

    async fn subscribe(
        &mut self,
        peer: usize,
        producer: &ProducerKey,
        sink: SocketAddr,
    ) -> Result<u32, TargetError> {
        // A producer made on another node reaches this participant's node
        // through the room's home a moment later.
        let deadline = tokio::time::Instant::now() + PRODUCER_REACH;
        loop {
            match self.peers.get_mut(peer)?.subscribe(&producer.0, sink).await {
                Err(TargetError::Refused { code, .. })
                    if code == "unknown_producer" && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn leave(&mut self, peer: usize) -> Result<(), TargetError> {
        let p = self.peers.take(peer)?;
        p.close().await;
        Ok(())
    }

    async fn worker_cpu(&self) -> Vec<std::time::Duration> {
        // A remote node's workers are not ours to read.
        Vec::new()
    }

    async fn shutdown(&mut self) {
        for p in self.peers.drain() {
            p.close().await;
        }
    }
}
