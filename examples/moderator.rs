//! A custom actor that moderates a room spanning three nodes, through the
//! room's public fabric messages (`sfu.RoomCall/v1`, see `docs/protocol.md`).
//!
//! Three clustered nodes A, B and C run in this process (QUIC with mutual
//! TLS on loopback, a CA and certificates made in a temporary folder). A
//! room whose home is node A (the name is picked so that the home rule
//! chooses A) has a participant on A and one on B, who publishes video. A
//! `Moderator` actor on node C then:
//!
//! 1. finds the room's home, as every node does (`mafalda::cluster::find_home`),
//! 2. lists the room there (`ShardCall::Describe`): its peers, and its
//!    producers with the router (node and worker) each lives on,
//! 3. pauses the producer that lives on node B (`ShardCall::SetProducerPaused`
//!    to node B's room registry, actor `sfu.rooms`),
//!
//! and the participant on A sees `producerPaused`, as it would if the
//! publisher had paused it.
//!
//! Run: `cargo run --example moderator` (inside a network namespace with
//! only loopback, as `make test` does, or on any machine).

use std::net::TcpListener;
use std::time::Duration;

use actix::prelude::*;
use anyhow::{bail, Context as _};
use mafalda::cluster::{find_home, Home};
use mafalda::config::Config;
use mafalda::home::candidates;
use mafalda::ids::RoomId;
use mafalda::mafalda_actors::{tls, ActorRef, Node, NodeId};
use mafalda::node::RunningNode;
use mafalda::registry::ROOMS_ACTOR;
use mafalda::room::fabric::{RoomCall, ShardCall, ShardReply};
use mafalda::sfu::{Direction, Event, ProducerOptions, Sfu};
use mediasoup::prelude::{MediaKind, ProducerId};
use serde_json::json;

/// The moderator: an ordinary actix actor on node C, using the fabric.
struct Moderator {
    fabric: Node,
}

impl Actor for Moderator {
    type Context = Context<Self>;
}

/// Pause every producer of `room` that lives on `on`; answers how many.
#[derive(Message)]
#[rtype(result = "anyhow::Result<usize>")]
struct PauseProducersOn {
    room: RoomId,
    on: NodeId,
}

impl Moderator {
    fn rooms_of(&self, node: &NodeId) -> anyhow::Result<ActorRef<RoomCall>> {
        Ok(self.fabric.actor_ref::<RoomCall>(node, ROOMS_ACTOR)?)
    }
}

impl Handler<PauseProducersOn> for Moderator {
    type Result = ResponseFuture<anyhow::Result<usize>>;

    fn handle(&mut self, msg: PauseProducersOn, _ctx: &mut Self::Context) -> Self::Result {
        let fabric = self.fabric.clone();
        let me = fabric.id().clone();
        let rooms_of_on = self.rooms_of(&msg.on);
        Box::pin(async move {
            // 1. Where the room lives.
            let home = match find_home(&fabric, &msg.room, Duration::from_secs(2), false).await? {
                Home::Hosted(home) => home,
                Home::Create { .. } => bail!("no node hosts room {}", msg.room),
            };
            println!("moderator on {me}: room `{}` lives on {home}", msg.room);
            // 2. The room as its home knows it.
            let call = |call| RoomCall {
                room: msg.room.clone(),
                from: me.clone(),
                call,
                trace: None,
            };
            let listing = fabric
                .actor_ref::<RoomCall>(&home, ROOMS_ACTOR)?
                .ask(call(ShardCall::Describe))
                .await?
                .map_err(|e| anyhow::anyhow!("describe: {e}"))?;
            let ShardReply::Snapshot { peers, producers } = listing else {
                bail!("unexpected answer to Describe: {listing:?}");
            };
            for (peer, node) in &peers {
                println!("  peer {} `{}` on {node}", peer.peer_id, peer.display_name);
            }
            for (p, loc) in &producers {
                println!(
                    "  producer {} ({:?}) on {loc}, paused: {}",
                    p.producer_id, p.kind, p.paused
                );
            }
            // 3. Pause those living on `on`, asking that node's shard.
            let targets: Vec<ProducerId> = producers
                .iter()
                .filter(|(_, loc)| loc.node == msg.on)
                .map(|(p, _)| p.producer_id)
                .collect();
            let on = rooms_of_on?;
            for producer_id in &targets {
                on.ask(call(ShardCall::SetProducerPaused {
                    producer_id: *producer_id,
                    paused: true,
                }))
                .await?
                .map_err(|e| anyhow::anyhow!("pause {producer_id}: {e}"))?;
                println!(
                    "moderator on {me}: paused producer {producer_id} on {}",
                    msg.on
                );
            }
            Ok(targets.len())
        })
    }
}

fn config(name: &str, certs: &std::path::Path, seeds: Vec<std::net::SocketAddr>) -> Config {
    let mut c = Config::default();
    c.node.name = name.into();
    // Its participants join in process, not through signalling.
    c.auth.keys = vec![mafalda::auth::AuthKey::random("moderator")];
    c.http.static_dir = "/nonexistent".into();
    c.workers.count = 1;
    c.rtc.enable_tcp = false;
    c.cluster.enabled = true;
    c.cluster.listen = "127.0.0.1:0".parse().expect("address");
    c.cluster.seeds = seeds;
    c.cluster.ca = certs.join("ca.pem");
    c.cluster.cert = certs.join(format!("{name}.pem"));
    c.cluster.key = certs.join(format!("{name}.key"));
    c.cluster.probe_period_ms = 300;
    c.cluster.suspect_to_down_ms = 900;
    c
}

async fn run() -> anyhow::Result<()> {
    let names = ["mod-a", "mod-b", "mod-c"];
    let certs = std::env::temp_dir().join(format!("mafalda-moderator-{}", std::process::id()));
    tls::write_ca(&certs)?;
    for n in names {
        tls::write_node_cert(
            &certs,
            &certs.join("ca.pem"),
            &certs.join("ca.key"),
            &NodeId::new(n)?,
        )?;
    }
    let mut nodes: Vec<RunningNode> = Vec::new();
    for n in names {
        let seeds = nodes
            .first()
            .and_then(|a| a.cluster.as_ref())
            .map(|c| vec![c.node().addr()])
            .unwrap_or_default();
        nodes.push(
            RunningNode::start(config(n, &certs, seeds), TcpListener::bind("127.0.0.1:0")?).await?,
        );
    }
    let cluster = |i: usize| nodes[i].cluster.as_ref().context("clustered");
    // Everyone sees everyone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while (0..3).any(|i| {
        cluster(i).map_or(true, |c| {
            c.home_view().iter().filter(|m| m.alive).count() < 3
        })
    }) {
        if tokio::time::Instant::now() > deadline {
            bail!("the three nodes did not see each other");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a, b) = (
        cluster(0)?.node().id().clone(),
        cluster(1)?.node().id().clone(),
    );
    // A room whose home the home rule puts on A.
    let view = cluster(0)?.home_view();
    let room = (0..)
        .map(|i| RoomId::new(format!("townhall-{i}")))
        .find(|r| candidates(r, &view).first() == Some(&a))
        .context("a room name homed on A")?;

    // A viewer on A, a publisher on B.
    let viewer = Sfu::from_node(&nodes[0])
        .room(room.as_str())
        .await?
        .join("viewer")
        .await?;
    let mut events = viewer.take_events().context("events")?;
    let speaker = Sfu::from_node(&nodes[1])
        .room(room.as_str())
        .await?
        .join("speaker")
        .await?;
    let send = speaker.create_webrtc_transport(Direction::Send).await?;
    send.connect(serde_json::from_value(json!({
        "role": "client",
        "fingerprints": [{"algorithm": "sha-256", "value":
            "E5:F5:CA:A7:2D:93:E6:16:AC:21:09:9F:23:51:62:8C:D0:66:E9:0C:22:54:2B:82:0C:DF:E0:C5:2C:7E:CD:53"}]
    }))?)
    .await?;
    let producer = send
        .produce(ProducerOptions::new(
            MediaKind::Video,
            serde_json::from_value(json!({
                "mid": "0",
                "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                            "parameters": {}, "rtcpFeedback": [{"type": "nack", "parameter": "pli"}]}],
                "headerExtensions": [],
                "encodings": [{"ssrc": 1234}],
                "rtcp": {"cname": "speaker", "reducedSize": true}
            }))?,
        ))
        .await?;
    // The viewer on A learns of the speaker's producer on B.
    wait_for(
        &mut events,
        |e| matches!(e, Event::NewProducer(i) if i.producer_id == producer.id()),
    )
    .await?;

    // The moderator, on C.
    let moderator = Moderator {
        fabric: cluster(2)?.node().clone(),
    }
    .start();
    let paused = moderator
        .send(PauseProducersOn {
            room: room.clone(),
            on: b.clone(),
        })
        .await??;
    if paused != 1 {
        bail!("expected to pause one producer on {b}, paused {paused}");
    }
    wait_for(
        &mut events,
        |e| matches!(e, Event::ProducerPaused { producer_id } if *producer_id == producer.id()),
    )
    .await?;
    println!(
        "viewer on {a}: producerPaused for {} (it lives on {b})",
        producer.id()
    );

    drop((viewer, speaker, send, producer, events));
    for n in nodes.into_iter().rev() {
        n.stop().await;
    }
    let _ = std::fs::remove_dir_all(&certs);
    println!("moderator example: OK");
    Ok(())
}

/// The next event matching `want`, within 10 s.
async fn wait_for(
    events: &mut tokio::sync::mpsc::Receiver<Event>,
    want: impl Fn(&Event) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if want(&e) => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => bail!("the participant's event queue closed"),
            Err(_) => bail!("no matching event within 10 s"),
        }
    }
}

fn main() -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run())
}
