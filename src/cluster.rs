//! Joining a node to the cluster fabric ([`mafalda_actors`]).
//!
//! When `[cluster] enabled = true`, a node starts a fabric [`Node`] next to
//! its SFU actors. It then
//!
//! - gossips its load ([`GossipedLoad`]: CPU, workers, rooms, peers,
//!   consumers) and drain flag in SWIM metadata, refreshed every
//!   `load_publish_ms` — the figures that cross-node placement reads. The
//!   fabric knows nothing of the load: it travels as the metadata's opaque
//!   application bytes ([`NodeMetadata::app`]), encoded with the fabric codec;
//! - serves [`GetNodeLoad`] asks from other nodes under the actor name
//!   [`LOAD_ACTOR`], with exact resource counts;
//! - shows the members it sees, with their latest load, in `/api/status`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use mafalda_actors::{
    codec, CodecError, EndpointSource, MemberInfo, MemberState, Node, NodeConfig, NodeId,
    NodeMetadata, RemoteMessage, SwimConfig, TlsConfig,
};
use serde::{Deserialize, Serialize};

use crate::home::{candidates, Candidate};
use crate::ids::RoomId;
use crate::registry::{HostsRoom, RoomRegistry, ROOMS_ACTOR};
use crate::room::fabric::RoomCall;
use crate::room::RoomEnv;
use crate::server::Server;
use crate::sfu::Sfu;
use crate::spill::SessionsActor;

/// Where a room lives, as [`Cluster::find_home`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// This node hosts it.
    Hosted(NodeId),
    /// Nobody that answered hosts it: `top` is where it should be created.
    Create {
        /// The top candidate.
        top: NodeId,
        /// Candidates that did not answer in time (they may host it).
        unanswered: Vec<NodeId>,
    },
}

/// The home rule's view of the cluster from `node`: itself and every
/// member, with whether each is alive and draining.
pub fn home_view(node: &Node) -> Vec<Candidate> {
    let me = Candidate {
        node: node.id().clone(),
        alive: true,
        draining: node.local_metadata().draining,
    };
    let members = node.members().into_iter().map(|m| Candidate {
        alive: m.state == MemberState::Alive,
        draining: m.metadata.as_ref().is_some_and(|md| md.draining),
        node: m.id,
    });
    // This node's own view of itself comes first and wins.
    std::iter::once(me)
        .chain(members)
        .fold(Vec::new(), |mut view: Vec<Candidate>, c| {
            if !view.iter().any(|v| v.node == c.node) {
                view.push(c);
            }
            view
        })
}

/// The home rule's top candidate for `room` other than this node (alive,
/// not draining, in this node's view), if there is one: where a draining
/// node hands a room's home over, and where it sends a shard that would
/// make it a home.
pub fn best_other_home(node: &Node, room: &RoomId) -> Option<NodeId> {
    candidates(room, &home_view(node))
        .into_iter()
        .find(|n| n != node.id())
}

/// Whether `other` is an alive member in this node's view (this node
/// always is).
pub fn is_alive(node: &Node, other: &NodeId) -> bool {
    home_view(node).iter().any(|c| &c.node == other && c.alive)
}

/// Where `room` lives (see [`crate::home`]): asks the candidates in
/// rendezvous order whether they host it, each within `per_ask`; the first
/// that does is its home. A candidate that does not answer is skipped. If
/// none hosts it, the top candidate is where it should be created. With
/// `skip_self`, this node is not asked (it is the one creating the room).
pub async fn find_home(
    node: &Node,
    room: &RoomId,
    per_ask: Duration,
    skip_self: bool,
) -> Result<Home, FindHomeError> {
    let order = candidates(room, &home_view(node));
    let Some(top) = order.first().cloned() else {
        return Err(FindHomeError::NoCandidate);
    };
    let mut unanswered = Vec::new();
    for candidate in order {
        if skip_self && &candidate == node.id() {
            continue;
        }
        let asked = node
            .actor_ref::<HostsRoom>(&candidate, ROOMS_ACTOR)
            .map_err(|e| FindHomeError::Name(e.to_string()))?
            .ask_timeout(HostsRoom { room: room.clone() }, per_ask)
            .await;
        match asked {
            Ok(true) => return Ok(Home::Hosted(candidate)),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(node = %candidate, error = %e, "home candidate did not answer");
                unanswered.push(candidate);
            }
        }
    }
    Ok(Home::Create { top, unanswered })
}

/// Why [`find_home`] found no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FindHomeError {
    /// No member (this node included) may host rooms: all are draining.
    #[error("no node may host the room: every member is draining")]
    NoCandidate,
    /// A candidate's actor path could not be formed.
    #[error("bad actor path: {0}")]
    Name(String),
}

/// `[cluster]` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// Join the cluster fabric.
    pub enabled: bool,
    /// UDP address of the node's QUIC endpoint.
    pub listen: SocketAddr,
    /// Address other nodes dial (required when `listen` is a wildcard).
    pub advertise: Option<SocketAddr>,
    /// Nodes to join through.
    pub seeds: Vec<SocketAddr>,
    /// Cluster CA certificate (`mafalda cluster ca`).
    pub ca: PathBuf,
    /// This node's certificate (`mafalda cluster cert --node NAME`); its name
    /// must be `node.name`.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
    /// SWIM probe period, in milliseconds.
    pub probe_period_ms: u64,
    /// How long a suspect member has to refute before it is down, in ms.
    pub suspect_to_down_ms: u64,
    /// How often the node's load is re-gossiped, in milliseconds.
    pub load_publish_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            advertise: None,
            seeds: Vec::new(),
            ca: PathBuf::from("certs/ca.pem"),
            cert: PathBuf::from("certs/node.pem"),
            key: PathBuf::from("certs/node.key"),
            probe_period_ms: 1000,
            suspect_to_down_ms: 3000,
            load_publish_ms: 1000,
        }
    }
}

impl ClusterSection {
    /// Range checks serde cannot express.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !self.enabled {
            return Ok(());
        }
        if self.probe_period_ms < 50 || self.suspect_to_down_ms < self.probe_period_ms {
            return Err("probe_period_ms >= 50 and suspect_to_down_ms >= probe_period_ms");
        }
        if self.load_publish_ms < 100 {
            return Err("load_publish_ms >= 100");
        }
        Ok(())
    }
}

/// Error joining the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `node.name` is not a valid cluster node name.
    #[error("node.name cannot be a cluster node name: {0}")]
    Name(#[from] mafalda_actors::NameError),
    /// The certificates could not be loaded.
    #[error("cluster certificates: {0}")]
    Certs(#[from] mafalda_actors::CertError),
    /// The fabric node could not start.
    #[error("cluster fabric: {0}")]
    Start(#[from] mafalda_actors::StartError),
}

/// The actor name under which every node serves [`GetNodeLoad`].
pub const LOAD_ACTOR: &str = "sfu.load";

/// Asks a node for its exact load (a plain wire type).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "NodeLoad")]
pub struct GetNodeLoad;

impl RemoteMessage for GetNodeLoad {
    const TAG: &'static str = "sfu.GetNodeLoad/v1";
}

/// A node's load, as answered to [`GetNodeLoad`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    /// Node name.
    pub node: String,
    /// Configured workers.
    pub workers: u32,
    /// Process CPU use, percent of one core (may exceed 100).
    pub cpu_percent: f32,
    /// Rooms.
    pub rooms: i64,
    /// Peers.
    pub peers: i64,
    /// Routers.
    pub routers: i64,
    /// Transports.
    pub transports: i64,
    /// Producers.
    pub producers: i64,
    /// Consumers.
    pub consumers: i64,
    /// Its best worker's placement score (see [`crate::placement`]).
    pub score: f64,
    /// Every worker is at or above the watermark: it takes no participant
    /// spilled from another node.
    pub full: bool,
    /// It is draining.
    pub draining: bool,
    /// Where its clients connect (`http.public_url`), if known.
    pub signalling_url: Option<String>,
}

/// The load a node gossips to every member, carried in the application bytes
/// of its SWIM metadata ([`NodeMetadata::app`]) and encoded with the fabric
/// codec (serde + bincode 2, [`mafalda_actors::codec`]). Approximate and a
/// little stale by design; [`GetNodeLoad`] gives exact counts.
///
/// The encoding is bincode, which is not self-describing: changing these
/// fields changes the gossiped format, and nodes on different formats will
/// generally fail to decode each other's load (shown as `load: null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GossipedLoad {
    /// Process CPU use, percent of one core (may exceed 100).
    pub cpu_percent: f32,
    /// Configured workers.
    pub workers: u32,
    /// Rooms hosted.
    pub rooms: u32,
    /// Connected peers.
    pub peers: u32,
    /// Consumers.
    pub consumers: u32,
    /// Its best worker's placement score.
    pub score: f32,
    /// Every worker is at or above the watermark.
    pub full: bool,
}

impl GossipedLoad {
    /// The application bytes of this load, for [`NodeMetadata::app`].
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Decodes a member's application bytes; an error (never a panic) if they
    /// are not exactly one encoded [`GossipedLoad`].
    pub fn decode(app: &[u8]) -> Result<Self, CodecError> {
        codec::decode(app)
    }

    /// The gossiped subset of an exact [`NodeLoad`] (counts clamped to `u32`).
    fn from_node_load(load: &NodeLoad) -> Self {
        let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        Self {
            cpu_percent: load.cpu_percent,
            workers: load.workers,
            rooms: clamp(load.rooms),
            peers: clamp(load.peers),
            consumers: clamp(load.consumers),
            score: load.score as f32,
            full: load.full,
        }
    }
}

/// Process CPU time (user + system) from `/proc/self/stat`, in seconds.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // /proc reports USER_HZ ticks, 100 per second on Linux.
    Some((utime + stime) / 100.0)
}

/// Publishes the node's load in SWIM metadata and answers [`GetNodeLoad`].
struct LoadReporter {
    node: Node,
    env: Arc<RoomEnv>,
    period: Duration,
    last_cpu: Option<(Instant, f64)>,
    cpu_percent: f32,
}

impl LoadReporter {
    fn sample(&mut self) -> NodeLoad {
        let now = Instant::now();
        if let Some(cpu) = process_cpu_seconds() {
            if let Some((at, prev)) = self.last_cpu {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    self.cpu_percent = ((cpu - prev) / wall * 100.0) as f32;
                }
            }
            self.last_cpu = Some((now, cpu));
        }
        let c = self.env.counters.snapshot();
        let config = &self.env.config;
        let headroom = self.env.workers.headroom(&config.placement);
        NodeLoad {
            node: self.node.id().to_string(),
            workers: u32::try_from(config.worker_count()).unwrap_or(u32::MAX),
            cpu_percent: self.cpu_percent,
            rooms: c.rooms,
            peers: c.peers,
            routers: c.routers,
            transports: c.transports,
            producers: c.producers,
            consumers: c.consumers,
            score: if headroom.score.is_finite() {
                headroom.score
            } else {
                f64::MAX
            },
            full: headroom.full,
            draining: self.env.draining(),
            signalling_url: config.http.signalling_url(),
        }
    }

    fn publish(&mut self) {
        let load = GossipedLoad::from_node_load(&self.sample());
        let app = match load.encode() {
            Ok(app) => app,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode load metadata");
                return;
            }
        };
        let metadata = NodeMetadata {
            draining: self.env.draining(),
            app,
        };
        if let Err(e) = self.node.set_local_metadata(metadata) {
            tracing::warn!(error = %e, "cannot publish load metadata");
        }
    }
}

impl std::fmt::Debug for LoadReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadReporter").finish_non_exhaustive()
    }
}

impl Actor for LoadReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish();
        ctx.run_interval(self.period, |act, _| act.publish());
    }
}

impl Handler<GetNodeLoad> for LoadReporter {
    type Result = MessageResult<GetNodeLoad>;
    fn handle(&mut self, _msg: GetNodeLoad, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.sample())
    }
}

/// A member as shown in `/api/status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Node name.
    pub node: String,
    /// Its fabric address.
    pub addr: SocketAddr,
    /// `alive`, `suspect` or `down`.
    pub state: &'static str,
    /// Whether it is draining.
    pub draining: bool,
    /// Its latest gossiped load, if any arrived yet (and decoded).
    pub load: Option<GossipedLoad>,
}

/// This node's membership in the cluster; cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    node: Node,
    reporter: Addr<LoadReporter>,
    sessions: Addr<SessionsActor>,
}

impl Cluster {
    /// Starts the fabric node and the load reporter. Must run inside an actix
    /// `System`.
    pub async fn join(server: &Server) -> Result<Self, ClusterError> {
        let env = Arc::clone(server.env());
        let rooms = server.rooms().clone();
        let section = env.config.cluster.clone();
        let id = NodeId::new(&env.config.node.name)?;
        let tls = TlsConfig::from_files(&section.ca, &section.cert, &section.key)?;
        let mut config = NodeConfig::new(id, tls, EndpointSource::Bind(section.listen));
        config.advertise_addr = section.advertise;
        config.seeds = section.seeds.clone();
        config.swim = SwimConfig {
            probe_period: Duration::from_millis(section.probe_period_ms),
            probe_rtt: Duration::from_millis(section.probe_period_ms * 2 / 5),
            suspect_to_down_after: Duration::from_millis(section.suspect_to_down_ms),
            gossip_period: Duration::from_millis((section.probe_period_ms / 5).max(20)),
            announce_period: Duration::from_millis(section.probe_period_ms * 10),
            metadata_refresh: Duration::from_millis(section.load_publish_ms * 10),
            ..SwimConfig::default()
        };
        let node = Node::start(config, std::future::pending::<()>()).await?;
        let reporter = LoadReporter {
            node: node.clone(),
            env,
            period: Duration::from_millis(section.load_publish_ms),
            last_cpu: None,
            cpu_percent: 0.0,
        }
        .start();
        if let Err(e) = node.register_actor::<LoadReporter, GetNodeLoad>(LOAD_ACTOR, &reporter) {
            tracing::error!(error = %e, "cannot register the load actor");
        }
        let registered = node
            .register_actor::<RoomRegistry, HostsRoom>(ROOMS_ACTOR, &rooms)
            .and_then(|_| node.register_actor::<RoomRegistry, RoomCall>(ROOMS_ACTOR, &rooms));
        if let Err(e) = registered {
            tracing::error!(error = %e, "cannot register the room registry");
        }
        // Rooms drop what lived on a node that goes down.
        node.subscribe(rooms.clone().recipient());
        let sessions = SessionsActor::new(
            Arc::clone(server.env()),
            Sfu::new(server.clone(), &server.env().config),
            node.clone(),
        )
        .start();
        if let Err(e) = SessionsActor::register(&node, &sessions) {
            tracing::error!(error = %e, "cannot register the sessions actor");
        }
        tracing::info!(node = %node.id(), addr = %node.addr(), seeds = ?section.seeds, "joined the cluster fabric");
        Ok(Self {
            node,
            reporter,
            sessions,
        })
    }

    /// Reads the certificate files of `section` again and makes the node
    /// present them from now on (links already up keep theirs until they
    /// close): renewing a certificate needs no restart (`SIGHUP`).
    pub fn reload_certificates(&self, section: &ClusterSection) -> Result<(), ClusterError> {
        let tls = TlsConfig::from_files(&section.ca, &section.cert, &section.key)?;
        self.node().reload_tls(tls)?;
        Ok(())
    }

    /// The fabric node, to message actors on other nodes.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Both ends of this node's spilled sessions ([`crate::spill`]).
    pub fn sessions(&self) -> &Addr<SessionsActor> {
        &self.sessions
    }

    /// The home rule's view of the cluster: this node and every member,
    /// with whether each is alive and draining.
    pub fn home_view(&self) -> Vec<Candidate> {
        home_view(&self.node)
    }

    /// Where `room` lives (see [`find_home`]).
    pub async fn find_home(&self, room: &RoomId, per_ask: Duration) -> Result<Home, FindHomeError> {
        find_home(&self.node, room, per_ask, false).await
    }

    /// The members this node sees, itself excluded, with their load.
    pub fn members(&self) -> Vec<MemberView> {
        self.node
            .members()
            .into_iter()
            .filter(|m| &m.id != self.node.id())
            .map(|m| MemberView {
                node: m.id.to_string(),
                addr: m.addr,
                state: match m.state {
                    MemberState::Alive => "alive",
                    MemberState::Suspect => "suspect",
                    MemberState::Down => "down",
                },
                draining: m.metadata.as_ref().is_some_and(|md| md.draining),
                load: member_load(&m),
            })
            .collect()
    }

    /// The signalling URLs of the other members that take participants:
    /// each member SWIM lists alive and not draining is asked its exact
    /// load ([`GetNodeLoad`]), all at once, each within `per_ask`; those
    /// that answer, are not draining and know their URL are listed, sorted
    /// by node name. A member that does not answer in time is left out.
    pub async fn peer_signalling_urls(&self, per_ask: Duration) -> Vec<(NodeId, String)> {
        let asks = self
            .node
            .members()
            .into_iter()
            .filter(|m| &m.id != self.node.id() && m.state == MemberState::Alive)
            .filter(|m| !m.metadata.as_ref().is_some_and(|md| md.draining))
            .map(|m| async move {
                let load = self
                    .node
                    .actor_ref::<GetNodeLoad>(&m.id, LOAD_ACTOR)
                    .ok()?
                    .ask_timeout(GetNodeLoad, per_ask)
                    .await
                    .ok()?;
                let url = load.signalling_url.filter(|_| !load.draining)?;
                Some((m.id, url))
            });
        let mut urls: Vec<(NodeId, String)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        urls.sort();
        urls
    }

    /// Gossips the node's load and drain flag now, instead of at the next
    /// period (after the drain flag changed).
    pub fn publish_now(&self) {
        self.reporter.do_send(PublishNow);
    }

    /// Leaves the cluster and closes every link.
    pub async fn leave(&self) {
        self.reporter.do_send(StopReporter);
        self.node.shutdown().await;
    }
}

/// A member's gossiped load, if its metadata arrived and its application
/// bytes decode (otherwise `None`, logged at debug level).
pub(crate) fn member_load(m: &MemberInfo) -> Option<GossipedLoad> {
    let metadata = m.metadata.as_ref()?;
    match GossipedLoad::decode(&metadata.app) {
        Ok(load) => Some(load),
        Err(e) => {
            tracing::debug!(node = %m.id, error = %e, "member's gossiped load does not decode");
            None
        }
    }
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct StopReporter;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PublishNow;

impl Handler<PublishNow> for LoadReporter {
    type Result = ();
    fn handle(&mut self, _msg: PublishNow, _ctx: &mut Self::Context) {
        self.publish();
    }
}

impl Handler<StopReporter> for LoadReporter {
    type Result = ();
    fn handle(&mut self, _msg: StopReporter, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> GossipedLoad {
        GossipedLoad {
            cpu_percent: 412.5,
            workers: 8,
            rooms: 120,
            peers: 3000,
            consumers: 90_000,
            score: 0.75,
            full: true,
        }
    }

    #[test]
    fn gossiped_load_round_trips() {
        for load in [GossipedLoad::default(), busy()] {
            let app = load.encode().unwrap();
            assert_eq!(GossipedLoad::decode(&app), Ok(load));
        }
    }

    #[test]
    fn garbage_app_bytes_are_an_error() {
        let app = busy().encode().unwrap();
        // Empty (a node that gossips no load), truncated, and trailing bytes.
        assert!(GossipedLoad::decode(&[]).is_err());
        assert!(GossipedLoad::decode(&app[..app.len() - 1]).is_err());
        let mut longer = app.clone();
        longer.push(0);
        assert_eq!(
            GossipedLoad::decode(&longer),
            Err(CodecError::TrailingBytes(1))
        );
        // 0xff is no valid varint integer prefix in bincode 2.
        let mut bad = vec![0u8; 4];
        bad.extend([0xff; 8]);
        assert!(GossipedLoad::decode(&bad).is_err());
        assert!(GossipedLoad::decode(b"not a load at all, just text").is_err());
    }

    #[test]
    fn gossiped_load_is_well_under_the_metadata_limit() {
        let max = GossipedLoad {
            cpu_percent: f32::MAX,
            workers: u32::MAX,
            rooms: u32::MAX,
            peers: u32::MAX,
            consumers: u32::MAX,
            score: f32::MAX,
            full: true,
        };
        let app = max.encode().unwrap();
        // f32 is 4 bytes, a varint u32 at most 5, a bool 1.
        assert!(app.len() <= 33, "{} bytes", app.len());
        let metadata = codec::encode(&NodeMetadata {
            draining: true,
            app,
        })
        .unwrap();
        let limit = mafalda_actors::membership::MAX_METADATA_BYTES;
        assert!(
            metadata.len() * 8 <= limit,
            "{} of {limit} bytes",
            metadata.len()
        );
    }

    #[test]
    fn gossiped_load_clamps_exact_counts() {
        let load = GossipedLoad::from_node_load(&NodeLoad {
            workers: 2,
            cpu_percent: 1.5,
            rooms: -1,
            peers: i64::MAX,
            consumers: 7,
            ..NodeLoad::default()
        });
        assert_eq!(
            load,
            GossipedLoad {
                cpu_percent: 1.5,
                workers: 2,
                rooms: 0,
                peers: u32::MAX,
                consumers: 7,
                score: 0.0,
                full: false,
            }
        );
    }

    #[test]
    fn cpu_time_is_readable() {
        assert!(process_cpu_seconds().is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn disabled_section_always_validates() {
        let mut s = ClusterSection {
            probe_period_ms: 1,
            ..ClusterSection::default()
        };
        assert!(s.validate().is_ok());
        s.enabled = true;
        assert!(s.validate().is_err());
        s.probe_period_ms = 300;
        s.suspect_to_down_ms = 900;
        assert!(s.validate().is_ok());
    }
}
