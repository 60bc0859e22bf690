//! Node configuration: a TOML file whose every field has an embedded default.
//!
//! `mafalda node` with no `--config` runs on [`Config::default`], which serves
//! one node on 127.0.0.1 with one worker per core.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole node configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Node identity.
    pub node: NodeSection,
    /// HTTP and WebSocket listener.
    pub http: HttpSection,
    /// Where mediasoup listens for WebRTC media.
    pub rtc: RtcSection,
    /// mediasoup workers.
    pub workers: WorkersSection,
    /// Signalling limits.
    pub signalling: SignallingSection,
    /// Logging.
    pub log: LogSection,
    /// How participants are placed on workers.
    pub placement: PlacementSection,
    /// Cluster fabric membership.
    pub cluster: crate::cluster::ClusterSection,
    /// Room lifetime.
    pub rooms: RoomsSection,
    /// Graceful drain (SIGTERM, `POST /api/drain`).
    pub drain: DrainSection,
    /// Per-room and per-participant limits.
    pub limits: LimitsSection,
    /// Client access tokens.
    pub auth: AuthSection,
}

/// How joins are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A join needs a token signed with one of `auth.keys`.
    #[default]
    Token,
    /// As `token`, and `GET /api/dev-token` hands tokens to anyone: for a
    /// development machine only (`make run`). Without keys, a random key
    /// is made at start-up.
    Dev,
}

/// `[auth]`: client access tokens (see [`crate::auth`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `token` (default) or `dev`.
    pub mode: AuthMode,
    /// HS256 keys by id: the first signs what this node issues (dev
    /// tokens, `mafalda token`); any verifies a token naming it.
    pub keys: Vec<crate::auth::AuthKey>,
    /// How long a dev token lasts, in seconds.
    pub dev_token_ttl_s: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            mode: AuthMode::Token,
            keys: Vec::new(),
            dev_token_ttl_s: 24 * 3600,
        }
    }
}

/// `[limits]`: what one room or participant may hold; one more is refused
/// with `limit_exceeded` (the participant stays).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Participants in one room, over every node it spans (as this node
    /// knows them).
    pub peers_per_room: usize,
    /// Transports of one participant (WebRTC and plain).
    pub transports_per_peer: usize,
    /// Producers of one participant.
    pub producers_per_peer: usize,
    /// Consumers of one participant.
    pub consumers_per_peer: usize,
    /// Open WebSocket connections in total; more are refused (HTTP 503).
    pub connections: usize,
    /// Open WebSocket connections from one source address; more are
    /// refused (HTTP 503).
    pub connections_per_ip: usize,
    /// Requests one connection may send per second on average; more are
    /// answered `limit_exceeded` (the connection stays).
    pub requests_per_second: u32,
    /// Requests one connection may send at once above that rate.
    pub request_burst: u32,
    /// A connection that has not joined a room this many milliseconds
    /// after it opened is closed (1008).
    pub join_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            peers_per_room: 1000,
            transports_per_peer: 16,
            producers_per_peer: 16,
            consumers_per_peer: 2000,
            connections: 20_000,
            connections_per_ip: 1000,
            requests_per_second: 100,
            request_burst: 500,
            join_timeout_ms: 10_000,
        }
    }
}

/// `[drain]`: how a node empties itself before it stops (see
/// `docs/operations.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainSection {
    /// A draining node stops this many milliseconds after the drain began,
    /// even if participants are still connected.
    pub deadline_ms: u64,
    /// Participants told to `reconnect` at a time.
    pub batch_size: usize,
    /// Milliseconds between two batches.
    pub batch_interval_ms: u64,
}

impl Default for DrainSection {
    fn default() -> Self {
        Self {
            deadline_ms: 60_000,
            batch_size: 20,
            batch_interval_ms: 500,
        }
    }
}

/// `[rooms]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsSection {
    /// A room that stays empty (nobody joined it, or a join on its way in
    /// failed) closes after one to one and a half times this many
    /// milliseconds; a room whose last peer leaves closes at once.
    pub idle_close_ms: u64,
    /// Each room runs an active speaker observer on this node hearing every
    /// audio producer of the room (piped into its router), and tells its
    /// participants `activeSpeaker`.
    pub active_speaker: bool,
}

impl Default for RoomsSection {
    fn default() -> Self {
        Self {
            idle_close_ms: 30_000,
            active_speaker: false,
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name: a lowercase DNS label (`[a-z0-9-.]`, 1 to 63 bytes),
    /// its identity in the cluster, logs, spans and status.
    pub name: String,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: "mafalda-1".to_owned(),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Address the HTTP/WebSocket server binds.
    pub listen: SocketAddr,
    /// Directory with the bundled browser demo, served at `/`. Relative paths
    /// are resolved against the working directory.
    pub static_dir: PathBuf,
    /// The signalling URL clients reach this node at (`ws://host:port/ws`),
    /// sent to clients that must move here (drain). Unset: derived from
    /// `listen` unless that is a wildcard address.
    pub public_url: Option<String>,
    /// Browser origins (`https://app.example`) whose pages may open the
    /// signalling WebSocket, besides this node's own (`*`: any). Clients
    /// that send no `Origin` (servers, tools) are not concerned.
    pub allowed_origins: Vec<String>,
    /// The operator's token: `POST /api/drain`, and the detail of
    /// `/api/status` (rooms, workers, members), answer a client that
    /// presents it (`Authorization: Bearer`, or `?token=` for pages), or
    /// one in `admin_networks`.
    pub admin_token: Option<String>,
    /// Networks whose clients are operators without a token (default:
    /// loopback only; empty: the token only).
    pub admin_networks: Vec<crate::net::Network>,
}

impl HttpSection {
    /// The signalling URL of this node, as clients elsewhere reach it.
    pub fn signalling_url(&self) -> Option<String> {
        match &self.public_url {
            Some(url) => Some(url.clone()),
            None if self.listen.ip().is_unspecified() => None,
            None => Some(format!("ws://{}/ws", self.listen)),
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000),
            static_dir: PathBuf::from("web/dist"),
            public_url: None,
            allowed_origins: Vec::new(),
            admin_token: None,
            admin_networks: vec![
                "127.0.0.0/8".parse().expect("a network"),
                "::1/128".parse().expect("a network"),
            ],
        }
    }
}

/// `[rtc]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcSection {
    /// IP the WebRTC transports bind.
    pub listen_ip: IpAddr,
    /// IP or host name announced in ICE candidates (for NAT); defaults to
    /// `listen_ip`.
    pub announced_address: Option<String>,
    /// Lowest RTC port (inclusive).
    pub port_min: u16,
    /// Highest RTC port (inclusive).
    pub port_max: u16,
    /// Offer TCP candidates beside UDP.
    pub enable_tcp: bool,
    /// Initial outgoing bitrate estimate of each transport, in bps.
    pub initial_outgoing_bitrate: u32,
    /// Socket send and receive buffer of the pipe transports between
    /// workers, in bytes (the kernel caps it at `net.core.rmem_max` /
    /// `wmem_max`). A pipe carries every producer of one worker to another
    /// in bursts; the kernel default (~208 KiB) overflows under load. 1 MiB
    /// by default: measured side by side with 4 MiB (docs/benchmarks.md),
    /// both sustain the same room, and 1 MiB keeps the queueing delay at
    /// the failing step about 4 times lower.
    pub pipe_socket_buffer_bytes: u32,
    /// Milliseconds during which further keyframe requests for a video
    /// producer are merged into one, sent when the delay ends (mediasoup's
    /// `key_frame_request_delay`). The first request is forwarded at once.
    /// 0 (the default) forwards every request once the previous keyframe
    /// has arrived: each joining subscriber then costs a keyframe sent to
    /// every subscriber.
    pub key_frame_request_delay_ms: u32,
    /// Networks `connectPlainTransport` may send media to; anything else is
    /// refused (`forbidden`), and unspecified, multicast and broadcast
    /// addresses always are. Plain transports in `comedia` mode learn
    /// their peer from its packets and are not concerned.
    pub plain_allowed_networks: Vec<crate::net::Network>,
    /// The media codecs of the node's rooms, in preference order, as
    /// mediasoup's `RtpCodecCapability` (`kind`, `mimeType`, `clockRate`,
    /// `channels`, `parameters`, `rtcpFeedback`, `preferredPayloadType`).
    /// Empty: the built-in list (Opus, VP8, VP9, H264), whose payload
    /// types stay as they are. Every node of a cluster must have the same.
    pub media_codecs: Vec<mediasoup::prelude::RtpCodecCapability>,
}

impl RtcSection {
    /// The codecs rooms offer: `media_codecs`, or the built-in list.
    pub fn room_codecs(&self) -> Vec<mediasoup::prelude::RtpCodecCapability> {
        if self.media_codecs.is_empty() {
            crate::worker::media_codecs()
        } else {
            self.media_codecs.clone()
        }
    }
}

impl Default for RtcSection {
    fn default() -> Self {
        Self {
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announced_address: None,
            port_min: 40000,
            port_max: 49999,
            enable_tcp: true,
            initial_outgoing_bitrate: 1_000_000,
            pipe_socket_buffer_bytes: 1024 * 1024,
            key_frame_request_delay_ms: 0,
            plain_allowed_networks: vec![
                "127.0.0.0/8".parse().expect("a network"),
                "::1/128".parse().expect("a network"),
            ],
            media_codecs: Vec::new(),
        }
    }
}

/// `[workers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersSection {
    /// Number of mediasoup workers; 0 means one per available core.
    pub count: usize,
    /// mediasoup worker log level: `debug`, `warn`, `error` or `none`.
    pub log_level: String,
    /// How often each worker asks mediasoup for its producers' and
    /// consumers' stats, for the RTP counters of `/metrics`.
    pub stats_interval_ms: u64,
}

impl Default for WorkersSection {
    fn default() -> Self {
        Self {
            count: 0,
            log_level: "warn".to_owned(),
            stats_interval_ms: 5000,
        }
    }
}

impl WorkersSection {
    /// `stats_interval_ms` as a duration.
    pub fn stats_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.stats_interval_ms)
    }
}

/// `[signalling]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignallingSection {
    /// Largest accepted WebSocket message, in bytes.
    pub max_message_bytes: usize,
    /// Events queued for one slow client before it is disconnected.
    pub max_pending_events: usize,
    /// Largest display name, in characters.
    pub max_display_name_chars: usize,
    /// Largest room name, in characters.
    pub max_room_name_chars: usize,
}

impl Default for SignallingSection {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_pending_events: 1024,
            max_display_name_chars: 128,
            max_room_name_chars: 128,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter, e.g. `info` or `mafalda=debug,info`. `RUST_LOG`
    /// overrides it.
    pub level: String,
    /// `text` (human-readable) or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Emit JSON lines (the older spelling of `format = "json"`).
    pub json: bool,
}

impl LogSection {
    /// Whether log lines are JSON.
    pub fn is_json(&self) -> bool {
        self.json || self.format == LogFormat::Json
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line, with the span fields (node, room, peer).
    Json,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
            json: false,
        }
    }
}

/// How [`PlacementSection`] chooses a worker for a new participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementMode {
    /// Fill one worker up to `watermark × worker_capacity` before using the next.
    Pack,
    /// Always use the least-loaded worker.
    Spread,
}

/// `[placement]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementSection {
    /// `pack` (default) or `spread`.
    pub mode: PlacementMode,
    /// Producers + consumers one worker is expected to hold at full load.
    pub worker_capacity: u32,
    /// Fraction of capacity (or of one core's CPU) at which `pack` moves on
    /// to the next worker; in (0, 1].
    pub watermark: f64,
    /// How many workers one worker pipes a producer to directly: a producer
    /// reaching more workers than this goes through a tree of pipes (each
    /// worker that holds a copy forwards it to at most this many others).
    pub pipe_fanout: u32,
    /// Participants one worker holds at full load (0: no limit); counts in
    /// a worker's score like `worker_capacity`.
    pub worker_max_peers: u32,
}

impl Default for PlacementSection {
    fn default() -> Self {
        Self {
            mode: PlacementMode::Pack,
            worker_capacity: 500,
            watermark: 0.6,
            pipe_fanout: 4,
            worker_max_peers: 0,
        }
    }
}

/// Error loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped fields.
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid config value `{field}`: {reason}")]
    Invalid {
        /// Dotted field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Parses a TOML document and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// What a node needs to start beyond a valid file: in token mode, a
    /// key to verify tokens with (the default configuration has none, so a
    /// node refuses to start until it is given one, or dev mode).
    pub fn check_startable(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.auth.mode == AuthMode::Token && self.auth.keys.is_empty() {
            return Err(ConfigError::Invalid {
                field: "auth.keys",
                reason: "token mode needs at least one key ([[auth.keys]] kid, secret); \
                         for a development node set [auth] mode = \"dev\""
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Checks value ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if let Err(e) = mafalda_actors::NodeId::new(&self.node.name) {
            return invalid("node.name", &e.to_string());
        }
        if self.rooms.idle_close_ms < 100 {
            return invalid("rooms.idle_close_ms", "at least 100");
        }
        if self.rtc.port_min == 0 || self.rtc.port_min > self.rtc.port_max {
            return invalid(
                "rtc.port_min",
                "must be non-zero and not above rtc.port_max",
            );
        }
        let supported = mediasoup::supported_rtp_capabilities::get_supported_rtp_capabilities();
        for codec in &self.rtc.media_codecs {
            if !supported
                .codecs
                .iter()
                .any(|s| s.mime_type() == codec.mime_type())
            {
                return invalid(
                    "rtc.media_codecs",
                    &format!("{:?} is not a codec mediasoup supports", codec.mime_type()),
                );
            }
        }
        for (i, key) in self.auth.keys.iter().enumerate() {
            if key.secret.len() < 32 {
                return invalid("auth.keys", "each secret has at least 32 bytes");
            }
            if key.kid.is_empty() || self.auth.keys[..i].iter().any(|k| k.kid == key.kid) {
                return invalid("auth.keys", "each key has a distinct, non-empty kid");
            }
        }
        if self.worker_count() > 256 {
            return invalid("workers.count", "at most 256 workers per node");
        }
        if !["debug", "warn", "error", "none"].contains(&self.workers.log_level.as_str()) {
            return invalid("workers.log_level", "one of debug, warn, error, none");
        }
        if self.workers.stats_interval_ms < 100 {
            return invalid("workers.stats_interval_ms", "at least 100");
        }
        if self.signalling.max_message_bytes < 1024 {
            return invalid("signalling.max_message_bytes", "at least 1024");
        }
        if let Err(reason) = self.cluster.validate() {
            return invalid("cluster", reason);
        }
        if self.signalling.max_pending_events == 0 {
            return invalid("signalling.max_pending_events", "at least 1");
        }
        if self.placement.worker_capacity == 0 {
            return invalid("placement.worker_capacity", "at least 1");
        }
        if self.placement.pipe_fanout == 0 {
            return invalid("placement.pipe_fanout", "at least 1");
        }
        if !(self.placement.watermark > 0.0 && self.placement.watermark <= 1.0) {
            return invalid("placement.watermark", "must be in (0, 1]");
        }
        let l = &self.limits;
        if l.peers_per_room == 0
            || l.transports_per_peer == 0
            || l.producers_per_peer == 0
            || l.consumers_per_peer == 0
            || l.connections == 0
            || l.connections_per_ip == 0
            || l.requests_per_second == 0
            || l.request_burst == 0
            || l.join_timeout_ms == 0
        {
            return invalid("limits", "every limit at least 1");
        }
        if self.drain.batch_size == 0 || self.drain.batch_interval_ms == 0 {
            return invalid("drain", "batch_size and batch_interval_ms at least 1");
        }
        if let Some(url) = &self.http.public_url {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return invalid("http.public_url", "must be a ws:// or wss:// URL");
            }
        }
        Ok(())
    }

    /// The number of workers to run: `workers.count`, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers.count == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.workers.count
        }
    }

    /// The default configuration as a commented TOML document.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_default() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn log_format_json_and_its_older_spelling() {
        assert!(!Config::default().log.is_json());
        let c = Config::from_toml("[log]\nformat = \"json\"").unwrap();
        assert!(c.log.is_json());
        let c = Config::from_toml("[log]\njson = true").unwrap();
        assert!(c.log.is_json());
        assert!(Config::from_toml("[log]\nformat = \"xml\"").is_err());
    }

    #[test]
    fn default_round_trips_through_toml() {
        let text = Config::default_toml();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c =
            Config::from_toml("[rtc]\nport_min = 41000\nport_max = 41010\n[workers]\ncount = 2\n")
                .unwrap();
        assert_eq!(c.rtc.port_min, 41000);
        assert_eq!(c.worker_count(), 2);
        assert_eq!(c.http, HttpSection::default());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::from_toml("[http]\nlisten_addr = \"1.2.3.4:5\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn bad_ranges_are_refused() {
        let err = Config::from_toml("[rtc]\nport_min = 5000\nport_max = 4000\n").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "rtc.port_min",
                ..
            }
        ));
        let err = Config::from_toml("[workers]\nlog_level = \"loud\"\n").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "workers.log_level",
                ..
            }
        ));
    }

    #[test]
    fn placement_section_parses_and_validates() {
        let c = Config::from_toml(
            "[placement]\nmode = \"spread\"\nworker_capacity = 100\nwatermark = 0.5\n",
        )
        .unwrap();
        assert_eq!(c.placement.mode, PlacementMode::Spread);
        assert_eq!(c.placement.worker_capacity, 100);
        assert_eq!(Config::default().placement.mode, PlacementMode::Pack);
        for bad in [
            "[placement]\nwatermark = 0.0\n",
            "[placement]\nwatermark = 1.5\n",
            "[placement]\nworker_capacity = 0\n",
            "[placement]\npipe_fanout = 0\n",
        ] {
            assert!(
                matches!(Config::from_toml(bad), Err(ConfigError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Config::from_toml("[placement]\nmode = \"random\"\n"),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn zero_workers_means_one_per_core() {
        assert!(Config::default().worker_count() >= 1);
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = Config::load(Path::new("/nonexistent/mafalda.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    #[test]
    fn rooms_take_the_configured_codecs_or_the_built_in_list() {
        let c = Config::from_toml(
            r#"
[[rtc.media_codecs]]
kind = "audio"
mimeType = "audio/opus"
clockRate = 48000
channels = 2
parameters = { useinbandfec = 1 }
rtcpFeedback = [{ type = "transport-cc", parameter = "" }]
"#,
        )
        .expect("parses");
        assert!(c.validate().is_ok());
        let codecs = c.rtc.room_codecs();
        assert_eq!(codecs.len(), 1);
        assert!(matches!(
            codecs[0],
            mediasoup::prelude::RtpCodecCapability::Audio {
                mime_type: mediasoup::prelude::MimeTypeAudio::Opus,
                ..
            }
        ));
        assert_eq!(
            Config::default().rtc.room_codecs(),
            crate::worker::media_codecs()
        );
    }

    #[test]
    fn an_unsupported_codec_is_a_configuration_error() {
        let c = Config::from_toml(
            r#"
[[rtc.media_codecs]]
kind = "video"
mimeType = "video/H265"
clockRate = 90000
"#,
        );
        let err = match c {
            Ok(c) => c.validate().expect_err("H265 is refused").to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("media_codecs") || err.contains("H265"),
            "{err}"
        );
    }
}
