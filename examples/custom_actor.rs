//! A custom chat actor on node B, asked from an actor on node A.
//!
//! Both nodes run in this process on loopback, with throw-away certificates
//! generated in a temporary directory (what `mafalda cluster ca` and
//! `mafalda cluster cert --node NAME` write). Run with:
//!
//! ```text
//! cargo run -p mafalda-actors --example custom_actor
//! ```

use std::{path::PathBuf, time::Duration};

use actix::prelude::*;
use mafalda_actors::{
    tls, ActorRef, EndpointSource, MembershipEvent, Node, NodeConfig, NodeId, RemoteMessage,
    SwimConfig, TlsConfig,
};
use serde::{Deserialize, Serialize};

// ---- messages: plain serde types with stable tags ----------------------

/// Post a line to the room; the reply is the line's sequence number.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "Result<u64, ChatError>")]
struct Post {
    from: String,
    text: String,
}
impl RemoteMessage for Post {
    const TAG: &'static str = "chat.Post/v1";
}

/// Fetch the room's history.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "Vec<String>")]
struct History;
impl RemoteMessage for History {
    const TAG: &'static str = "chat.History/v1";
}

/// A fire-and-forget reaction.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct React(String);
impl RemoteMessage for React {
    const TAG: &'static str = "chat.React/v1";
}

/// Application errors travel inside the reply.
#[derive(Debug, Serialize, Deserialize)]
enum ChatError {
    Empty,
}

// ---- the room, on node B -------------------------------------------------

#[derive(Default)]
struct ChatRoom {
    lines: Vec<String>,
}

impl Actor for ChatRoom {
    type Context = Context<Self>;
}

impl Handler<Post> for ChatRoom {
    type Result = Result<u64, ChatError>;
    fn handle(&mut self, msg: Post, _: &mut Context<Self>) -> Self::Result {
        if msg.text.is_empty() {
            return Err(ChatError::Empty);
        }
        self.lines.push(format!("<{}> {}", msg.from, msg.text));
        Ok(self.lines.len() as u64)
    }
}

impl Handler<History> for ChatRoom {
    type Result = MessageResult<History>;
    fn handle(&mut self, _: History, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.lines.clone())
    }
}

impl Handler<React> for ChatRoom {
    type Result = ();
    fn handle(&mut self, msg: React, _: &mut Context<Self>) {
        self.lines.push(format!("* {}", msg.0));
    }
}

// ---- a client actor on node A that talks to the remote room -------------

struct ChatClient {
    me: String,
    room: ActorRef<Post>,
}

impl Actor for ChatClient {
    type Context = Context<Self>;
}

/// Local message: say something in the room.
#[derive(Message)]
#[rtype(result = "Result<u64, String>")]
struct Say(String);

impl Handler<Say> for ChatClient {
    type Result = ResponseFuture<Result<u64, String>>;
    fn handle(&mut self, msg: Say, _: &mut Context<Self>) -> Self::Result {
        let room = self.room.clone();
        let post = Post {
            from: self.me.clone(),
            text: msg.0,
        };
        Box::pin(async move {
            match room.ask(post).await {
                Ok(Ok(seq)) => Ok(seq),
                Ok(Err(e)) => Err(format!("room refused: {e:?}")),
                Err(e) => Err(format!("fabric: {e}")),
            }
        })
    }
}

// ---- wiring ----------------------------------------------------------------

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn node_config(dir: &std::path::Path, ca: &tls::CertFiles, name: &str) -> NodeConfig {
    let id = NodeId::new(name).expect("valid name");
    let files = tls::write_node_cert(dir, &ca.cert, &ca.key, &id).expect("node cert");
    let tls = TlsConfig::from_files(&ca.cert, &files.cert, &files.key).expect("tls");
    let mut config = NodeConfig::new(
        id,
        tls,
        EndpointSource::Bind("127.0.0.1:0".parse().unwrap()),
    );
    config.swim = SwimConfig::fast();
    config
}

async fn run() -> Result<(), String> {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "mafalda-example-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    let ca = tls::write_ca(&dir.0).map_err(|e| e.to_string())?;

    // Node B hosts the room.
    let node_b = Node::start(node_config(&dir.0, &ca, "chat-b"), std::future::pending())
        .await
        .map_err(|e| e.to_string())?;
    let room = ChatRoom::default().start();
    node_b
        .register_actor::<ChatRoom, Post>("room", &room)
        .and_then(|_| node_b.register_actor::<ChatRoom, History>("room", &room))
        .and_then(|_| node_b.register_actor::<ChatRoom, React>("room", &room))
        .map_err(|e| e.to_string())?;

    // Node A joins through B.
    let mut config_a = node_config(&dir.0, &ca, "chat-a");
    config_a.seeds = vec![node_b.addr()];
    let node_a = Node::start(config_a, std::future::pending())
        .await
        .map_err(|e| e.to_string())?;

    let mut events = node_a.events();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(MembershipEvent::Up(m)) = events.recv().await {
                if m.id == *node_b.id() {
                    break;
                }
            }
        }
    })
    .await
    .map_err(|_| "chat-b never showed up".to_string())?;
    println!("chat-a sees chat-b at {}", node_b.addr());

    // A custom actor on A asks the room on B.
    let room_ref = node_a
        .lookup::<Post>("chat-b/room")
        .map_err(|e| e.to_string())?;
    let client = ChatClient {
        me: "alice".into(),
        room: room_ref,
    }
    .start();
    let seq = client
        .send(Say("hello from node A".into()))
        .await
        .map_err(|e| e.to_string())??;
    println!("room accepted line #{seq}");
    let refused = client
        .send(Say(String::new()))
        .await
        .map_err(|e| e.to_string())?;
    println!("empty line: {refused:?}");

    // Tells are ordered; an ask afterwards sees them.
    let react = node_a
        .lookup::<React>("chat-b/room")
        .map_err(|e| e.to_string())?;
    react
        .tell(React("alice waves".into()))
        .map_err(|e| e.to_string())?;
    let history = node_a
        .lookup::<History>("chat-b/room")
        .map_err(|e| e.to_string())?;
    let lines = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match history.ask(History).await {
                Ok(lines) if lines.len() >= 2 => return Ok(lines),
                Ok(_) => tokio::task::yield_now().await,
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "history never complete".to_string())??;
    for line in &lines {
        println!("history: {line}");
    }

    node_a.shutdown().await;
    node_b.shutdown().await;
    Ok(())
}

fn main() {
    let system = actix::System::new();
    match system.block_on(run()) {
        Ok(()) => println!("done"),
        Err(e) => {
            eprintln!("custom_actor failed: {e}");
            std::process::exit(1);
        }
    }
}
