//! The `mafalda` binary.

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mafalda::config::Config;
use mafalda::node::RunningNode;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "mafalda", version, about = "Mafalda: a distributed WebRTC SFU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node.
    Node {
        /// TOML configuration file; every field has a default.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the effective configuration and exit.
        #[arg(long)]
        print_config: bool,
        /// Join the cluster through this node's fabric address (repeatable;
        /// added to `[cluster] seeds`, and turns `[cluster] enabled` on).
        #[arg(long = "seed", value_name = "ADDR")]
        seeds: Vec<std::net::SocketAddr>,
    },
    /// Load generator: synthetic RTP publishers (Opus and VP8 shaped) and
    /// subscribers that measure loss and one-way latency, against a room.
    Loadgen(Box<LoadgenArgs>),
    /// Cluster certificates (mutual TLS between nodes).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a client access token (JWT) signed with the configuration's
    /// first `[[auth.keys]]`.
    Token {
        /// The node configuration holding the keys.
        #[arg(long, short)]
        config: PathBuf,
        /// The room it opens.
        #[arg(long)]
        room: String,
        /// The participant's identity (its display name unless `rename`).
        #[arg(long)]
        identity: String,
        /// How long it lasts: seconds, or with a unit (`90s`, `30m`, `1h`, `7d`).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// A grant (repeatable): publish, publish:audio, publish:video,
        /// publish:data, subscribe, plain, rename. Default: publish and
        /// subscribe.
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
    },
}

/// `90`, `90s`, `30m`, `1h`, `7d`.
fn parse_ttl(s: &str) -> anyhow::Result<std::time::Duration> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().with_context(|| format!("--ttl `{s}`"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => anyhow::bail!("--ttl unit `{other}`: s, m, h or d"),
    };
    anyhow::ensure!(secs > 0, "--ttl must be positive");
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a configuration file with every key at its default, made from
    /// the configuration struct itself (start a node's file from it).
    Default,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Generate the cluster CA: `ca.pem` and `ca.key` in `--out`.
    Ca {
        /// Output directory.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
    /// Issue a node certificate signed by the cluster CA: `NAME.pem` and
    /// `NAME.key` in `--out`.
    Cert {
        /// Node name (lowercase DNS label); it is the node's identity.
        #[arg(long)]
        node: String,
        /// Directory holding `ca.pem` and `ca.key`.
        #[arg(long, default_value = "certs")]
        ca_dir: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Days the certificate is valid (from now); peers refuse it after.
        #[arg(long, default_value_t = 90)]
        days: u64,
    },
}

#[derive(Debug, clap::Args)]
struct LoadgenArgs {
    /// What to load: `inproc` (a node started in this process, driven
    /// through the `mafalda::sfu` facade), `baseline` (one plain mediasoup
    /// router, no Mafalda), or a node's signalling URL
    /// (`ws://HOST:PORT/ws`). Several URLs of one cluster, separated by
    /// commas, spread the room over them: publishers join the first node,
    /// the other participants the others in turn.
    #[arg(long, default_value = "inproc")]
    target: String,
    /// Node configuration for `inproc` and `baseline` (workers, placement,
    /// RTC ports); every field has a default.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// For `ws://` targets: sign the participants' access tokens with this
    /// key (`kid:secret`, one of the nodes' `[[auth.keys]]`); without it,
    /// tokens are asked of the nodes' `/api/dev-token` (dev mode).
    #[arg(long, value_name = "KID:SECRET")]
    auth_key: Option<String>,
    /// Workers of the in-process node (overrides the configuration).
    #[arg(long)]
    workers: Option<usize>,
    /// Placement of the in-process node: `pack` or `spread`.
    #[arg(long)]
    placement: Option<String>,
    /// Room name.
    #[arg(long, default_value = "loadgen")]
    room: String,
    /// `broadcast` (publishers → every subscriber) or `mesh` (everyone
    /// publishes and receives everyone else).
    #[arg(long, default_value = "broadcast")]
    shape: String,
    /// Publishers (broadcast).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers (broadcast) or participants (mesh); with `--ramp`, the
    /// most to try.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Publish no Opus stream.
    #[arg(long)]
    no_audio: bool,
    /// Publish no VP8 stream.
    #[arg(long)]
    no_video: bool,
    /// Grow the room this many at a time until a window's loss exceeds
    /// `--loss-limit` (twice in a row); report the highest count under it.
    #[arg(long)]
    ramp: Option<usize>,
    /// Highest acceptable loss of a window, percent. Without `--ramp`, a
    /// run that loses more (or receives nothing) exits with an error.
    #[arg(long, default_value_t = 1.0)]
    loss_limit: f64,
    /// With `--ramp`: highest acceptable median one-way latency of a
    /// window, ms (beyond it the target is queueing, i.e. overloaded).
    #[arg(long, default_value_t = 50.0)]
    latency_limit: f64,
    /// With `--ramp`: highest acceptable 99th-percentile one-way latency of
    /// a window, ms (queueing in deep buffers shows here before loss).
    #[arg(long, default_value_t = 200.0)]
    p99_limit: f64,
    /// With `--ramp`: once the busiest worker uses this much of a core
    /// (percent), grow by a quarter step.
    #[arg(long, default_value_t = 80.0)]
    fine_above_cpu: f64,
    /// Length of a measured window, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Wait before measuring (after each ramp step), seconds.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// With --ramp, wait before measuring a size again after a failed
    /// window, seconds: the keyframes a step's joins ask for go to every
    /// subscriber, and near capacity that burst takes seconds to drain.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Local address of the publisher and subscriber sockets.
    #[arg(long, default_value = "127.0.0.1")]
    ip: std::net::IpAddr,
    /// Receiving sockets (each read by its own thread).
    #[arg(long, default_value_t = 1)]
    recv_sockets: usize,
    /// Measure one subscriber in K, chosen at random; the others receive
    /// into sockets nobody reads, so that loadgen, sharing the machine with
    /// the workers, reads K times fewer packets. 1 measures everyone.
    #[arg(long, default_value_t = 1, value_name = "K")]
    measure_one_in: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Soak mode: keep a room alive for SECONDS over the `--target` URLs
    /// (participant i joins through URL i mod n, publishers first) while
    /// nodes drain or die, and measure the media gaps. Each participant
    /// follows its events: on `reconnect` it joins again (through the
    /// event's `url`, else the next URL), publishes or subscribes again,
    /// and only then leaves its old session; on a lost socket it rejoins
    /// through the next URL, retrying (100 ms, doubling up to 1 s). Exits
    /// non-zero only if a participant cannot start, or with
    /// `--max-gap-ms`. Takes `--target` (ws:// URLs), `--room`,
    /// `--publishers`, `--subscribers`, `--no-audio`, `--no-video`,
    /// `--ip`, `--recv-sockets`, `--json` (the report on stdout).
    #[arg(long, value_name = "SECONDS")]
    soak: Option<f64>,
    /// With --soak: write the report, JSON, to FILE. Times are ms since
    /// the first join. `{room, targets, duration_ms, ready_ms,
    /// max_gap_limit_ms, passed, failures: [text], participants: [{name,
    /// role: publisher|subscriber, rejoins, consume_errors, max_silence_ms,
    /// joins: [{at_ms, url, target (index or null), cause, media:
    /// ["IP:port" of the node's end of each plain transport]}]}], pairs:
    /// [{subscriber, stream ("pub-N/audio|video"), received, loss_pct,
    /// max_gap_ms, first_ms, last_ms, consumers}]}`. A gap is the longest
    /// time between two arrivals of a stream at a subscriber over whatever
    /// consumers carried it, the time from the last arrival to the end
    /// included, the time before the first excluded; `max_silence_ms` is
    /// the same over all of a subscriber's streams.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// With --soak: write FILE (the time, ms) once every subscriber
    /// receives every stream, e.g. for a script to then stop a node.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// With --soak: exit non-zero if a stream never reached a subscriber
    /// or a pair's longest gap exceeds MS.
    #[arg(long, value_name = "MS")]
    max_gap_ms: Option<f64>,
}

/// `mafalda loadgen --soak`: runs the soak, writes and prints the report.
fn soak(args: &LoadgenArgs, seconds: f64) -> anyhow::Result<()> {
    use mafalda::loadgen::scenario::Tracks;
    use mafalda::loadgen::soak::{run, SoakConfig};

    let targets: Vec<String> = args.target.split(',').map(str::to_owned).collect();
    anyhow::ensure!(
        targets
            .iter()
            .all(|t| t.starts_with("ws://") || t.starts_with("wss://")),
        "--soak needs --target with ws:// URLs, not `{}`",
        args.target
    );
    anyhow::ensure!(
        seconds.is_finite() && seconds > 0.0,
        "--soak must be a positive number of seconds"
    );
    anyhow::ensure!(
        args.ramp.is_none() && args.shape == "broadcast",
        "--soak runs a broadcast room: no --ramp, no --shape mesh"
    );
    let config = SoakConfig {
        targets,
        room: args.room.clone(),
        publishers: args.publishers,
        subscribers: args.subscribers,
        tracks: Tracks {
            audio: !args.no_audio,
            video: !args.no_video,
        },
        duration: std::time::Duration::from_secs_f64(seconds),
        ip: args.ip,
        recv_sockets: args.recv_sockets,
        ready_file: args.ready_file.clone(),
        max_gap_ms: args.max_gap_ms,
    };
    let report = actix_web::rt::System::new().block_on(run(config))?;
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    anyhow::ensure!(report.passed, "{}", report.failures.join("; "));
    Ok(())
}

fn loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    use mafalda::config::PlacementMode;
    use mafalda::loadgen::scenario::{ramp, RampConfig, Session, Shape, Tracks};
    use mafalda::loadgen::target::{BaselineTarget, FacadeTarget, SignallingTarget, Target};
    use std::time::Duration;

    if let Some(spec) = &args.auth_key {
        let key = mafalda::loadgen::tokens::parse_key(spec).map_err(anyhow::Error::msg)?;
        mafalda::loadgen::tokens::use_keys(key);
    }
    if let Some(seconds) = args.soak {
        return soak(&args, seconds);
    }
    anyhow::ensure!(
        args.report.is_none() && args.ready_file.is_none() && args.max_gap_ms.is_none(),
        "--report, --ready-file and --max-gap-ms go with --soak"
    );
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            // The load generator's own node: nobody joins it by signalling.
            let mut c = Config::default();
            c.auth.keys = vec![mafalda::auth::AuthKey::random("loadgen")];
            c
        }
    };
    if let Some(n) = args.workers {
        config.workers.count = n;
    }
    match args.placement.as_deref() {
        None => {}
        Some("pack") => config.placement.mode = PlacementMode::Pack,
        Some("spread") => config.placement.mode = PlacementMode::Spread,
        Some(other) => anyhow::bail!("--placement must be `pack` or `spread`, not `{other}`"),
    }
    config.validate()?;
    let shape = match args.shape.as_str() {
        "broadcast" => Shape::Broadcast {
            publishers: args.publishers,
        },
        "mesh" => Shape::Mesh,
        other => anyhow::bail!("--shape must be `broadcast` or `mesh`, not `{other}`"),
    };
    let tracks = Tracks {
        audio: !args.no_audio,
        video: !args.no_video,
    };
    anyhow::ensure!(tracks.audio || tracks.video, "nothing to publish");
    anyhow::ensure!(
        args.duration > 0.0 && args.settle >= 0.0 && args.drain >= 0.0,
        "--duration must be positive, --settle and --drain not negative"
    );
    /// A session against `target`, driven by `args`, then closed.
    async fn run<T: Target>(
        target: T,
        tracks: Tracks,
        args: &LoadgenArgs,
        shape: Shape,
    ) -> anyhow::Result<serde_json::Value> {
        let mut session = Session::new(target, tracks, args.ip, args.recv_sockets)?;
        session.measure_one_in(args.measure_one_in)?;
        let out = drive(&mut session, args, shape).await;
        session.finish().await;
        out
    }
    async fn drive<T: Target>(
        session: &mut Session<T>,
        args: &LoadgenArgs,
        shape: Shape,
    ) -> anyhow::Result<serde_json::Value> {
        let secs = Duration::from_secs_f64;
        if let Some(step) = args.ramp {
            let report = ramp(
                session,
                RampConfig {
                    shape,
                    step: step.max(1),
                    max: args.subscribers,
                    settle: secs(args.settle),
                    drain: secs(args.drain),
                    window: secs(args.duration),
                    loss_limit_pct: args.loss_limit,
                    latency_p50_limit_ms: args.latency_limit,
                    latency_p99_limit_ms: args.p99_limit,
                    fine_above_cpu_pct: args.fine_above_cpu,
                },
            )
            .await;
            for w in &report.windows {
                let line = format!(
                    "{:>6} subscribers {:>7} streams: loss {:>6.3}%  {:>9.0} pkt/s  latency p50 {:.2} ms p99 {:.2} ms  workers {:?}% CPU  loadgen {:.0}% CPU",
                    w.subscribers, w.streams, w.loss_pct, w.delivered_pps, w.latency_p50_ms,
                    w.latency_p99_ms, w.worker_cpu_pct.iter().map(|c| c.round()).collect::<Vec<_>>(),
                    w.loadgen_cpu_pct
                );
                // With --json, stdout is the report alone.
                if args.json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
            if !args.json {
                println!(
                    "{}: sustained {} with loss under {}%, median latency under {} ms and p99 under {} ms ({:.0} pkt/s delivered); stopped: {}",
                    report.target,
                    report.sustained,
                    args.loss_limit,
                    args.latency_limit,
                    args.p99_limit,
                    report.sustained_pps,
                    report.stopped_because
                );
            }
            return Ok(serde_json::to_value(&report)?);
        }
        if let Shape::Broadcast { publishers } = shape {
            for _ in 0..publishers {
                session.add_publisher().await?;
            }
        }
        for _ in 0..args.subscribers {
            match shape {
                Shape::Broadcast { .. } => drop(session.add_subscriber().await?),
                Shape::Mesh => session.add_mesh_participant().await?,
            }
        }
        let w = session
            .measure(secs(args.settle), secs(args.duration))
            .await;
        if !args.json {
            println!("{}", session.target().describe());
            println!(
                "{} subscribers, {} streams ({} measured, {} with a taken SSRC): loss {:.3}%, {:.0} pkt/s delivered, latency p50 {:.2} ms p99 {:.2} ms, workers {:?}% CPU, loadgen {:.0}% CPU",
                w.subscribers, w.streams, w.measured_streams, session.unmeasured(), w.loss_pct, w.delivered_pps,
                w.latency_p50_ms, w.latency_p99_ms,
                w.worker_cpu_pct.iter().map(|c| c.round()).collect::<Vec<_>>(), w.loadgen_cpu_pct
            );
            println!("{}", session.report());
        }
        Ok(serde_json::to_value(&w)?)
    }

    actix_web::rt::System::new().block_on(async move {
        let json = match args.target.as_str() {
            "inproc" => {
                let config = std::sync::Arc::new(config);
                let server =
                    mafalda::server::Server::start(config.clone(), Default::default()).await?;
                let sfu = mafalda::sfu::Sfu::new(server.clone(), &config);
                let target = FacadeTarget::new(sfu, &args.room).await?;
                let out = run(target, tracks, &args, shape).await;
                server.shutdown().await;
                out?
            }
            "baseline" => run(BaselineTarget::new(&config).await?, tracks, &args, shape).await?,
            url if url.starts_with("ws://") || url.starts_with("wss://") => {
                let urls = url.split(',').map(str::to_owned).collect();
                let target = SignallingTarget::spread(urls, &args.room);
                run(target, tracks, &args, shape).await?
            }
            other => {
                anyhow::bail!("--target must be `inproc`, `baseline` or a ws:// URL, not `{other}`")
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        // A fixed room (no ramp) is a check: it fails when nothing arrived
        // or the loss is over the limit, so scripts can rely on the exit
        // status.
        if args.ramp.is_none() {
            let expected = json["expected"].as_u64().unwrap_or(0);
            let loss = json["loss_pct"].as_f64().unwrap_or(f64::INFINITY);
            anyhow::ensure!(expected > 0, "no media arrived at the subscribers");
            anyhow::ensure!(
                loss <= args.loss_limit,
                "loss {loss:.3}% is above --loss-limit {}%",
                args.loss_limit
            );
        }
        Ok(())
    })
}

fn cluster(command: ClusterCommand) -> anyhow::Result<()> {
    use mafalda::mafalda_actors::{tls, NodeId};
    match command {
        ClusterCommand::Ca { out } => {
            let files = tls::write_ca(&out)?;
            println!(
                "cluster CA: {} (key {})",
                files.cert.display(),
                files.key.display()
            );
        }
        ClusterCommand::Cert {
            node,
            ca_dir,
            out,
            days,
        } => {
            let id = NodeId::new(&node).with_context(|| format!("invalid node name `{node}`"))?;
            anyhow::ensure!((1..=3650).contains(&days), "--days must be 1..=3650");
            let validity = std::time::Duration::from_secs(days * 24 * 3600);
            let (files, expires) = tls::write_node_cert_for(
                &out,
                &ca_dir.join("ca.pem"),
                &ca_dir.join("ca.key"),
                &id,
                validity,
            )?;
            let expires = time::OffsetDateTime::from(expires)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| format!("in {days} days"));
            println!(
                "node `{id}`: {} (key {}), valid until {expires}",
                files.cert.display(),
                files.key.display()
            );
        }
    }
    Ok(())
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log.is_json() {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM (drain, then stop).
async fn terminate() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// SIGINT / Ctrl-C (stop at once).
async fn interrupt() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run_node(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.http.listen)
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let name = config.node.name.clone();
    let section = config.cluster.clone();
    let node = RunningNode::start(config, listener).await?;
    // SIGHUP: the cluster certificate is read again (renewal without a restart).
    #[cfg(unix)]
    if let (Some(cluster), Ok(mut hup)) = (
        node.cluster.clone(),
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()),
    ) {
        actix_web::rt::spawn(async move {
            while hup.recv().await.is_some() {
                match cluster.reload_certificates(&section) {
                    Ok(()) => tracing::info!("SIGHUP: cluster certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: certificate not reloaded; the old one stays")
                    }
                }
            }
        });
    }
    println!(
        "mafalda node `{name}` is up. Demo: http://{}/?room=demo  (status: http://{}/api/status)",
        node.http_addr, node.http_addr
    );
    node.run_until_drained(terminate, interrupt()).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Node {
            config,
            print_config,
            seeds,
        } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if !seeds.is_empty() {
                config.cluster.enabled = true;
                config.cluster.seeds.extend(seeds);
                config.validate()?;
            }
            if print_config {
                print!("{}", toml::to_string_pretty(&config)?);
                return Ok(());
            }
            init_logging(&config);
            actix_web::rt::System::new().block_on(run_node(config))
        }
        Command::Cluster { command } => cluster(command),
        Command::Token {
            config,
            room,
            identity,
            ttl,
            grants,
        } => {
            let config = Config::load(&config)?;
            anyhow::ensure!(
                !config.auth.keys.is_empty(),
                "the configuration has no [[auth.keys]] to sign with"
            );
            let mut granted = mafalda::auth::Grants::default();
            for g in &grants {
                mafalda::auth::add_grant(&mut granted, g).map_err(anyhow::Error::msg)?;
            }
            if grants.is_empty() {
                granted = mafalda::auth::Grants::participant();
            }
            let keys = mafalda::auth::Keys::new(config.auth.keys.clone());
            let token = keys.issue(&room, &identity, parse_ttl(&ttl)?, granted)?;
            println!("{token}");
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{}", toml::to_string_pretty(&Config::default())?);
            Ok(())
        }
        Command::Loadgen(args) => {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
            // Logs go to stderr: stdout carries the report (JSON with --json).
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            loadgen(*args)
        }
    }
}
