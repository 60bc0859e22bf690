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
    },
    /// Cluster certificates (mutual TLS between nodes).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
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
    },
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
        ClusterCommand::Cert { node, ca_dir, out } => {
            let id = NodeId::new(&node).with_context(|| format!("invalid node name `{node}`"))?;
            let files =
                tls::write_node_cert(&out, &ca_dir.join("ca.pem"), &ca_dir.join("ca.key"), &id)?;
            println!(
                "node `{id}`: {} (key {})",
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
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_node(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.http.listen)
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let name = config.node.name.clone();
    let node = RunningNode::start(config, listener).await?;
    println!(
        "mafalda node `{name}` is up. Demo: http://{}/?room=demo  (status: http://{}/api/status)",
        node.http_addr, node.http_addr
    );
    node.run_until(shutdown_signal()).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Node {
            config,
            print_config,
        } => {
            let config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if print_config {
                print!("{}", toml::to_string_pretty(&config)?);
                return Ok(());
            }
            init_logging(&config);
            actix_web::rt::System::new().block_on(run_node(config))
        }
        Command::Cluster { command } => cluster(command),
    }
}
