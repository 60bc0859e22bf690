//! One soak participant: its signalling session, its reaction to the
//! room's events, and its moves from node to node (see the module above).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::super::events::{ProducerEntry, ServerEvent};
use super::super::media::{now_since_epoch, StreamSpec};
use super::super::scenario::Tracks;
use super::super::signalling_client::{kind_name, Listening, SignallingPeer};
use super::super::stats::SharedGaps;
use super::super::target::TargetError;
use super::super::LoadgenError;
use super::report::JoinRecord;
use super::rotation::{initial_target, next_target, Backoff};
use super::{Ctx, HANDOVER_LINGER};

/// Attempts at consuming one announced producer.
const CONSUME_ATTEMPTS: u32 = 5;
/// Wait before consuming again after a failure.
const CONSUME_RETRY: Duration = Duration::from_millis(200);
/// `draining` redirections followed in a row without waiting.
const MAX_REDIRECTS: u32 = 3;

/// What a participant does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes its tracks.
    Publisher,
    /// Receives every producer of the room.
    Subscriber,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Publisher => "publisher",
            Self::Subscriber => "subscriber",
        })
    }
}

/// What a participant went through, for the report.
#[derive(Debug)]
pub struct Log {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Every session it had, in order.
    pub joins: Vec<JoinRecord>,
    /// Sessions after the first.
    pub rejoins: u32,
    /// Failed consumes.
    pub consume_errors: u64,
    /// Every arrival at a subscriber.
    pub silence: Option<SharedGaps>,
}

/// A session: the peer and its events.
#[derive(Debug)]
struct Live {
    peer: SignallingPeer,
    events: mpsc::UnboundedReceiver<ServerEvent>,
}

/// A consume to try again.
#[derive(Debug)]
struct Retry {
    producer: ProducerEntry,
    at: Instant,
    attempts: u32,
}

/// A subscriber's side.
#[derive(Debug, Default)]
struct Reception {
    /// Display names by peer id (the stream names start with them).
    names: HashMap<String, String>,
    /// The session's consumers, by producer id.
    consuming: HashMap<String, String>,
    retries: Vec<Retry>,
}

/// A soak participant; [`run`](Self::run) is its task.
#[derive(Debug)]
pub struct Participant {
    ctx: Arc<Ctx>,
    name: String,
    role: Role,
    /// The last target of the list it used.
    cursor: usize,
    /// The URL of its session.
    url: String,
    live: Option<Live>,
    /// A publisher's streams (their generators live in the sender).
    specs: Vec<StreamSpec>,
    /// Whether the sender has its streams.
    streaming: bool,
    /// Where a subscriber's media goes.
    sink: SocketAddr,
    reception: Reception,
    log: Arc<Mutex<Log>>,
}

/// Why a session could not be made.
type Attempt<T> = Result<T, TargetError>;

impl Participant {
    /// Participant number `index` (publishers first) of the soak.
    pub(super) fn new(
        ctx: Arc<Ctx>,
        name: String,
        role: Role,
        index: usize,
        tracks: Tracks,
        sink: SocketAddr,
    ) -> Self {
        let mut rng = rand::thread_rng();
        let mut specs = Vec::new();
        if role == Role::Publisher {
            if tracks.audio {
                specs.push(StreamSpec::opus(rng.gen_range(1_000_000..u32::MAX)));
            }
            if tracks.video {
                specs.push(StreamSpec::vp8(rng.gen_range(1_000_000..u32::MAX)));
            }
        }
        let cursor = initial_target(index, ctx.targets.len());
        let silence = (role == Role::Subscriber).then(SharedGaps::default);
        let log = Arc::new(Mutex::new(Log {
            name: name.clone(),
            role,
            joins: Vec::new(),
            rejoins: 0,
            consume_errors: 0,
            silence,
        }));
        Self {
            url: ctx.targets[cursor].clone(),
            ctx,
            name,
            role,
            cursor,
            live: None,
            specs,
            streaming: false,
            sink,
            reception: Reception::default(),
            log,
        }
    }

    /// Its log, for the report.
    pub(super) fn log(&self) -> Arc<Mutex<Log>> {
        self.log.clone()
    }

    /// The task: starts (telling `started` how that went), then follows
    /// the room until the soak's figures are taken, then leaves.
    pub(super) async fn run(mut self, started: oneshot::Sender<Result<(), TargetError>>) {
        let mut stop = self.ctx.stop.subscribe();
        let first = self.start().await;
        let failed = first.is_err();
        let _ = started.send(first);
        if failed {
            return;
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => {}
            _ = self.follow() => {}
        }
        if let Some(live) = self.live.take() {
            live.peer.close().await;
        }
    }

    /// The first session: through its target, or where a draining node
    /// sends it.
    async fn start(&mut self) -> Result<(), TargetError> {
        let mut to = Dest::listed(&self.ctx, self.cursor);
        for _ in 0..=MAX_REDIRECTS {
            match self.establish(&to.url).await {
                Ok(made) => {
                    return self
                        .adopt(made, &to, "start".into(), &mut None)
                        .map_err(|e| TargetError::Signalling(format!("sending: {e}")))
                }
                Err(TargetError::Refused {
                    url: Some(next), ..
                }) => {
                    to = Dest::named(&self.ctx, next);
                }
                Err(e) => return Err(e),
            }
        }
        Err(TargetError::Signalling(format!(
            "redirected more than {MAX_REDIRECTS} times"
        )))
    }

    /// Reacts to the session's events, forever.
    async fn follow(&mut self) {
        loop {
            let next_retry = self.reception.retries.iter().map(|r| r.at).min();
            let event = match self.live.as_mut() {
                Some(live) => tokio::select! {
                    e = live.events.recv() => Some(e),
                    _ = sleep_until_some(next_retry) => None,
                },
                None => Some(None),
            };
            let Some(event) = event else {
                self.retry_consumes().await;
                continue;
            };
            match event {
                None => {
                    let next = self.next_dest(&self.url);
                    self.rejoin(next, "socket closed".into(), None).await;
                }
                Some(ServerEvent::Reconnect { reason, url }) => {
                    let old = self.live.take();
                    let cause = format!("reconnect ({reason})");
                    let next = match url {
                        Some(url) => Dest::named(&self.ctx, url),
                        None => self.next_dest(&self.url),
                    };
                    self.rejoin(next, cause, old).await;
                }
                Some(event) => self.on_event(event).await,
            }
        }
    }

    /// The target after the last one used, other than `url` (the one
    /// being left, or that failed).
    fn next_dest(&self, url: &str) -> Dest {
        Dest::listed(&self.ctx, next_target(&self.ctx.targets, self.cursor, url))
    }

    /// Joins again, first through `url`, until it works (the soak's end
    /// cancels it); `old`, the session being left, lives until then.
    async fn rejoin(&mut self, mut to: Dest, cause: String, mut old: Option<Live>) {
        let mut backoff = Backoff::default();
        let mut redirects = 0;
        loop {
            let url = to.url.clone();
            match self.establish(&url).await {
                Ok(made) => match self.adopt(made, &to, cause.clone(), &mut old) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(participant = %self.name, %url, error = %e, "cannot send to the new session")
                    }
                },
                Err(TargetError::Refused {
                    url: Some(next), ..
                }) if redirects < MAX_REDIRECTS => {
                    tracing::info!(participant = %self.name, %url, to = %next, "join redirected");
                    redirects += 1;
                    to = Dest::named(&self.ctx, next);
                    continue;
                }
                Err(e) => {
                    tracing::info!(participant = %self.name, %url, error = %e, "rejoin attempt failed")
                }
            }
            redirects = 0;
            if let Some(i) = to.target {
                self.cursor = i;
            }
            to = self.next_dest(&url);
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// Joins through `url` and publishes or consumes everything there;
    /// returns the session, the media addresses of its transports and
    /// (subscribers) its consumers.
    async fn establish(&mut self, url: &str) -> Attempt<Made> {
        let Listening {
            mut peer,
            reply,
            events,
        } = SignallingPeer::join_listening(url, &self.ctx.room, &self.name).await?;
        let mut media = Vec::new();
        let mut consuming = HashMap::new();
        match self.role {
            Role::Publisher => {
                for spec in &self.specs {
                    let (producer, dest) = peer.publish(spec).await?;
                    let kind = kind_name(spec.kind.media_kind());
                    let stream = format!("{}/{kind}", self.name);
                    self.ctx.producers.lock().insert(producer, stream);
                    media.push(dest);
                }
            }
            Role::Subscriber => {
                media.push(peer.recv_transport(self.sink).await?);
                for p in reply.peers {
                    self.reception.names.insert(p.peer_id, p.display_name);
                }
                for p in &reply.producers {
                    match self.consume(&mut peer, p).await {
                        Ok(consumer) => {
                            consuming.insert(p.producer_id.clone(), consumer);
                        }
                        // One stream failing does not fail the session.
                        Err(e) => self.consume_failed(p, 0, &e),
                    }
                }
            }
        }
        Ok(Made {
            live: Live { peer, events },
            media,
            consuming,
        })
    }

    /// Makes `made` the participant's session: the sender's streams move
    /// to its producers, the old session (if any) is taken and left, the
    /// move is logged. Fails (leaving `old`) if the sender does.
    fn adopt(
        &mut self,
        made: Made,
        to: &Dest,
        cause: String,
        old: &mut Option<Live>,
    ) -> Result<(), LoadgenError> {
        let Made {
            live,
            media,
            consuming,
        } = made;
        let linger = if old.is_some() {
            HANDOVER_LINGER
        } else {
            Duration::ZERO
        };
        for (spec, dest) in self.specs.iter().zip(&media) {
            if self.streaming {
                self.ctx.sender.redirect(spec.ssrc, *dest, linger)?;
            } else {
                let label = format!("{}/{}", self.name, kind_name(spec.kind.media_kind()));
                self.ctx.sender.add_stream(spec.clone(), label, *dest)?;
            }
        }
        self.streaming = self.role == Role::Publisher;
        self.live = Some(live);
        self.reception.consuming = consuming;
        if let Some(i) = to.target {
            self.cursor = i;
        }
        self.url = to.url.clone();
        if let Some(old) = old.take() {
            // A publisher's old producers keep their subscribers fed (the
            // sender mirrors) until they have moved to the new ones.
            let wait = if self.role == Role::Publisher {
                linger
            } else {
                Duration::ZERO
            };
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                old.peer.close().await;
            });
        }
        let mut log = self.log.lock();
        if !log.joins.is_empty() {
            log.rejoins += 1;
        }
        log.joins.push(JoinRecord {
            at_ms: self.ctx.ms(now_since_epoch()),
            url: to.url.clone(),
            target: to.target,
            cause,
            media: media.iter().map(SocketAddr::to_string).collect(),
        });
        Ok(())
    }

    /// Consumes an announced producer on `peer` and measures what arrives;
    /// returns the consumer id.
    async fn consume(&self, peer: &mut SignallingPeer, p: &ProducerEntry) -> Attempt<String> {
        let owner = self.reception.names.get(&p.peer_id).cloned();
        let stream = match owner {
            Some(name) => format!("{name}/{}", p.kind),
            None => match self.ctx.producers.lock().get(&p.producer_id) {
                Some(stream) => stream.clone(),
                None => format!("peer-{}/{}", p.peer_id, p.kind),
            },
        };
        let consumed = peer.consume(&p.producer_id, self.sink).await?;
        let pair = self.ctx.pair(&self.name, &stream, consumed.ssrc);
        let mut observers = vec![pair];
        observers.extend(self.log.lock().silence.clone());
        let label = format!("{}<-{stream}", self.name);
        if let Err(e) = self
            .ctx
            .receiver
            .expect_observed(consumed.ssrc, label, observers)
        {
            // Another consumer's SSRC (a one-in-2^32 draw): not measured.
            tracing::warn!(participant = %self.name, error = %e, "stream not measured");
        }
        Ok(consumed.id)
    }

    /// Counts a failed consume and schedules another attempt.
    fn consume_failed(&mut self, p: &ProducerEntry, attempts: u32, e: &TargetError) {
        tracing::info!(participant = %self.name, producer = %p.producer_id, error = %e, "consume failed");
        self.log.lock().consume_errors += 1;
        if attempts + 1 < CONSUME_ATTEMPTS {
            self.reception.retries.push(Retry {
                producer: p.clone(),
                at: Instant::now() + CONSUME_RETRY,
                attempts: attempts + 1,
            });
        }
    }

    /// Consumes `p` on the current session unless it already does.
    async fn consume_on_session(&mut self, p: &ProducerEntry, attempts: u32) {
        if self.reception.consuming.contains_key(&p.producer_id) {
            return;
        }
        let Some(mut live) = self.live.take() else {
            return;
        };
        let result = self.consume(&mut live.peer, p).await;
        self.live = Some(live);
        match result {
            Ok(consumer) => {
                self.reception
                    .consuming
                    .insert(p.producer_id.clone(), consumer);
            }
            Err(e) => self.consume_failed(p, attempts, &e),
        }
    }

    /// Tries again the consumes whose time has come.
    async fn retry_consumes(&mut self) {
        let now = Instant::now();
        let (due, later) = std::mem::take(&mut self.reception.retries)
            .into_iter()
            .partition(|r| r.at <= now);
        self.reception.retries = later;
        for r in due {
            self.consume_on_session(&r.producer, r.attempts).await;
        }
    }

    async fn on_event(&mut self, event: ServerEvent) {
        if self.role == Role::Publisher {
            // A publisher reacts to `reconnect` only.
            return;
        }
        let r = &mut self.reception;
        match event {
            ServerEvent::NewProducer {
                producer_id,
                peer_id,
                kind,
            } => {
                let p = ProducerEntry {
                    producer_id,
                    peer_id,
                    kind,
                };
                self.consume_on_session(&p, 0).await;
            }
            ServerEvent::ProducerClosed { producer_id } => {
                r.consuming.remove(&producer_id);
                r.retries.retain(|x| x.producer.producer_id != producer_id);
            }
            ServerEvent::ConsumerClosed {
                consumer_id,
                producer_id,
            } => {
                if r.consuming.get(&producer_id) == Some(&consumer_id) {
                    r.consuming.remove(&producer_id);
                }
            }
            ServerEvent::PeerJoined {
                peer_id,
                display_name,
            } => {
                r.names.insert(peer_id, display_name);
            }
            ServerEvent::PeerLeft { .. }
            | ServerEvent::Reconnect { .. }
            | ServerEvent::Other(_) => {}
        }
    }
}

/// Where to join.
#[derive(Debug, Clone)]
struct Dest {
    url: String,
    /// Its index in the targets, if it is one.
    target: Option<usize>,
}

impl Dest {
    /// Target `i`.
    fn listed(ctx: &Ctx, i: usize) -> Self {
        Self {
            url: ctx.targets[i].clone(),
            target: Some(i),
        }
    }

    /// A URL a node named: the first target with that URL, if any.
    fn named(ctx: &Ctx, url: String) -> Self {
        let target = ctx.targets.iter().position(|t| *t == url);
        Self { url, target }
    }
}

/// A session just made.
#[derive(Debug)]
struct Made {
    live: Live,
    /// The node's end of each of its plain transports.
    media: Vec<SocketAddr>,
    /// Its consumers by producer id (subscribers).
    consuming: HashMap<String, String>,
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
