//! Fabric benchmark: ask round-trip latency and tell throughput between two
//! nodes on loopback, next to a raw quinn request/response baseline using
//! the same TLS configuration. Each node (and each side of the baseline)
//! runs in its own thread and runtime, like two processes would.
//!
//! `cargo bench -p mafalda-actors --bench fabric`

use std::{
    net::SocketAddr,
    sync::{mpsc, Arc},
    time::{Duration, Instant},
};

use actix::prelude::*;
use mafalda_actors::{
    tls::{generate_ca, generate_node_cert},
    EndpointSource, MemberState, Node, NodeConfig, NodeId, RemoteMessage, SwimConfig, TellError,
    TlsConfig,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

const ASKS: usize = 5_000;
const WARMUP: usize = 500;
const TELLS: u64 = 300_000;
const PAYLOAD: usize = 32;

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "Vec<u8>")]
struct Ping(Vec<u8>);
impl RemoteMessage for Ping {
    const TAG: &'static str = "bench.Ping/v1";
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Count(u64);
impl RemoteMessage for Count {
    const TAG: &'static str = "bench.Count/v1";
}

struct Sink {
    seen: u64,
    progress: watch::Sender<u64>,
}
impl Actor for Sink {
    type Context = Context<Self>;
}
impl Handler<Ping> for Sink {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> Self::Result {
        MessageResult(msg.0)
    }
}
impl Handler<Count> for Sink {
    type Result = ();
    fn handle(&mut self, _: Count, _: &mut Context<Self>) {
        self.seen += 1;
        if self.seen % 1000 == 0 || self.seen == TELLS {
            self.progress.send_replace(self.seen);
        }
    }
}

struct Pki {
    ca_cert: String,
    ca_key: String,
}
impl Pki {
    fn tls(&self, name: &str) -> TlsConfig {
        let c =
            generate_node_cert(&self.ca_cert, &self.ca_key, &NodeId::new(name).unwrap()).unwrap();
        TlsConfig::from_pem(&self.ca_cert, &c.cert_pem, &c.key_pem).unwrap()
    }
}

fn config(pki: &Pki, name: &str, seeds: Vec<SocketAddr>) -> NodeConfig {
    let mut c = NodeConfig::new(
        NodeId::new(name).unwrap(),
        pki.tls(name),
        EndpointSource::Bind("127.0.0.1:0".parse().unwrap()),
    );
    c.seeds = seeds;
    c.swim = SwimConfig::fast();
    c.tell_queue = 100_000;
    c
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `f` in a new thread with its own actix System; returns what `f`
/// sends back, and a handle that stops the thread.
fn server_thread<T: Send + 'static, F, Fut>(f: F) -> (T, mpsc::Sender<()>)
where
    F: FnOnce(mpsc::Sender<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            f(tx).await;
            let (t, r) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = stop_rx.recv();
                let _ = t.send(());
            });
            let _ = r.await;
        });
    });
    (rx.recv().unwrap(), stop_tx)
}

async fn raw_quinn_baseline(pki: &Pki) -> Vec<Duration> {
    let server_tls = pki.tls("raw-server");
    let (addr, stop) = server_thread(move |tx| async move {
        let transport = Arc::new(quinn::TransportConfig::default());
        let ep = quinn::Endpoint::server(
            server_tls.server_config(transport).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        tx.send(ep.local_addr().unwrap()).unwrap();
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        tokio::spawn(async move {
                            if let Ok(req) = recv.read_to_end(1 << 20).await {
                                let _ = send.write_all(&req).await;
                                let _ = send.finish();
                            }
                        });
                    }
                });
            }
        });
    });
    let transport = Arc::new(quinn::TransportConfig::default());
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(pki.tls("raw-client").client_config(transport).unwrap());
    let conn = ep.connect(addr, "raw-server").unwrap().await.unwrap();
    let payload = vec![7u8; PAYLOAD];
    let mut samples = Vec::with_capacity(ASKS);
    for i in 0..WARMUP + ASKS {
        let t = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&payload).await.unwrap();
        send.finish().unwrap();
        let reply = recv.read_to_end(1 << 20).await.unwrap();
        assert_eq!(reply.len(), PAYLOAD);
        if i >= WARMUP {
            samples.push(t.elapsed());
        }
    }
    conn.close(0u32.into(), b"done");
    let _ = stop.send(());
    samples
}

async fn run() {
    let ca = generate_ca("bench CA").unwrap();
    let pki = Pki {
        ca_cert: ca.cert_pem,
        ca_key: ca.key_pem,
    };
    let (progress_tx, mut progress) = watch::channel(0u64);
    let cfg_b = config(&pki, "bench-b", vec![]);
    let (addr_b, stop_b) = server_thread(move |tx| async move {
        let node = Node::start(cfg_b, std::future::pending()).await.unwrap();
        let sink = Sink {
            seen: 0,
            progress: progress_tx,
        }
        .start();
        node.register_actor::<Sink, Ping>("sink", &sink).unwrap();
        node.register_actor::<Sink, Count>("sink", &sink).unwrap();
        tx.send(node.addr()).unwrap();
        std::mem::forget(node);
    });
    let a = Node::start(
        config(&pki, "bench-a", vec![addr_b]),
        std::future::pending(),
    )
    .await
    .unwrap();
    let mut events = a.events();
    while !a
        .members()
        .iter()
        .any(|m| m.id.as_str() == "bench-b" && m.state == MemberState::Alive)
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
    }
    let b = NodeId::new("bench-b").unwrap();

    // Ask round trips.
    let ping = a.actor_ref::<Ping>(&b, "sink").unwrap();
    let mut fabric = Vec::with_capacity(ASKS);
    for i in 0..WARMUP + ASKS {
        let t = Instant::now();
        let reply = ping.ask(Ping(vec![7u8; PAYLOAD])).await.unwrap();
        assert_eq!(reply.len(), PAYLOAD);
        if i >= WARMUP {
            fabric.push(t.elapsed());
        }
    }
    let mut raw = raw_quinn_baseline(&pki).await;
    fabric.sort();
    raw.sort();
    let (f50, f99) = (percentile(&fabric, 0.5), percentile(&fabric, 0.99));
    let (r50, r99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
    println!(
        "ask round trip ({ASKS} sequential asks, {PAYLOAD}-byte payload, after {WARMUP} warm-up)"
    );
    println!(
        "  fabric ask      p50 {:8.1} us   p99 {:8.1} us",
        micros(f50),
        micros(f99)
    );
    println!(
        "  raw quinn bi    p50 {:8.1} us   p99 {:8.1} us",
        micros(r50),
        micros(r99)
    );
    println!(
        "  ratio fabric/raw  p50 {:.2}x   p99 {:.2}x   (goal: <= 1.5x)",
        micros(f50) / micros(r50),
        micros(f99) / micros(r99)
    );

    // Tell throughput.
    let count = a.actor_ref::<Count>(&b, "sink").unwrap();
    let t = Instant::now();
    let mut full = 0u64;
    for i in 0..TELLS {
        loop {
            match count.tell(Count(i)) {
                Ok(()) => break,
                Err(TellError::QueueFull { .. }) => {
                    full += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("tell: {e}"),
            }
        }
    }
    let queued = t.elapsed();
    progress.wait_for(|n| *n >= TELLS).await.unwrap();
    let total = t.elapsed();
    println!("tell throughput ({TELLS} tells, one link, 8-byte payload)");
    println!(
        "  {:.0} tells/s delivered to the remote actor ({:.2} s; queueing took {:.2} s, {} queue-full retries)   (goal: >= 100000/s)",
        TELLS as f64 / total.as_secs_f64(),
        total.as_secs_f64(),
        queued.as_secs_f64(),
        full
    );
    a.shutdown().await;
    let _ = stop_b.send(());
}

fn main() {
    actix::System::new().block_on(run());
}
