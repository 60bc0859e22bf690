//! Mafalda's cluster fabric: location-transparent actix actors over QUIC,
//! with SWIM membership.
//!
//! A [`Node`] owns one `quinn` endpoint secured by mutual TLS (certificates
//! from a cluster CA, see [`tls`]). Named actix actors registered on a node
//! can be messaged from any node through an [`ActorRef`], with the same
//! `tell` / `ask` API for local and remote actors. Membership and failure
//! detection run SWIM (`foca`) over QUIC datagrams on the same connections,
//! and gossip each node's [`NodeMetadata`] (drain flag and opaque application bytes).
//!
//! ```no_run
//! use mafalda_actors::{EndpointSource, Node, NodeConfig, NodeId, RemoteMessage, TlsConfig};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(actix::Message, Serialize, Deserialize)]
//! #[rtype(result = "String")]
//! struct Echo(String);
//! impl RemoteMessage for Echo {
//!     const TAG: &'static str = "doc.Echo/v1";
//! }
//!
//! async fn demo(
//!     tls: TlsConfig,
//!     echo: actix::Recipient<Echo>,
//! ) -> Result<(), Box<dyn std::error::Error>> {
//!     let mut config = NodeConfig::new(
//!         NodeId::new("node-a")?,
//!         tls,
//!         EndpointSource::Bind("127.0.0.1:0".parse()?),
//!     );
//!     config.seeds = vec!["127.0.0.1:7000".parse()?];
//!     let node = Node::start(config, std::future::pending()).await?;
//!     node.register::<Echo>("echo", echo)?;
//!     let remote = node.lookup::<Echo>("node-b/echo")?;
//!     let reply: String = remote.ask(Echo("hi".into())).await?;
//!     println!("{reply}");
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//!
//! * [`id`]: `NodeId`, `ActorPath` and the SWIM identity (`Incarnation`).
//! * [`error`]: typed errors, one enum per operation.
//! * [`frame`]: length-delimited framing without I/O; the size limit is
//!   enforced on the length prefix, before allocating.
//! * [`codec`]: the payload codec (serde + bincode 2), the one module to
//!   swap for another format.
//! * [`wire`]: wire types and constants (versions, stream kinds, codes).
//! * [`handshake`]: link handshake decisions (tie-break, generations),
//!   without I/O.
//! * [`tls`]: cluster CA and node certificates (`rcgen`), mutual-TLS
//!   configuration (`rustls`).
//! * [`message`]: the [`RemoteMessage`] trait (stable `TAG`s).
//! * `registry`: named actors per node, type-erased handlers.
//! * [`actor_ref`]: [`ActorRef`], local or remote.
//! * `link`: I/O of peer links: dial, accept, handshake, link lifecycle;
//!   `link::ask` (asking and serving asks) and `link::tell` (the tell
//!   writer and the tell stream server).
//! * [`trace`]: [`trace::TraceId`], the id one request keeps across nodes,
//!   and the current trace of the running code.
//! * `traffic`: messages and bytes per peer ([`LinkStats`]).
//! * [`membership`]: SWIM task, metadata gossip, membership events.
//! * [`node`]: [`NodeConfig`], the [`Node`] handle, start-up and shutdown.
//! * [`testing`]: [`testing::eventually`], the one way tests (this crate's
//!   and its users') wait for a state, under a deadline.
#![warn(missing_docs)]

pub mod actor_ref;
pub mod codec;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod id;
mod link;
pub mod membership;
pub mod message;
pub mod node;
mod registry;
pub mod testing;
pub mod tls;
pub mod trace;
mod traffic;
pub mod wire;

pub use actor_ref::ActorRef;
pub use error::{
    AskError, CertError, CodecError, DialError, FrameError, HandshakeError, MetadataError,
    NameError, RegisterError, StartError, TellError,
};
pub use id::{ActorPath, NodeId};
pub use membership::{MemberInfo, MemberState, MembershipEvent, NodeMetadata};
pub use message::RemoteMessage;
pub use node::{EndpointSource, FabricStats, LinkInfo, Node, NodeConfig, SwimConfig};
pub use tls::TlsConfig;
pub use traffic::LinkStats;
pub use wire::PROTOCOL_VERSION;
