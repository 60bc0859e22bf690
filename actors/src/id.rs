//! Node identities and actor paths.

use std::{fmt, net::SocketAddr, str::FromStr, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::error::NameError;

/// Longest accepted node name, in bytes (a DNS label).
pub const MAX_NODE_NAME_LEN: usize = 63;
/// Longest accepted actor name, in bytes.
pub const MAX_ACTOR_NAME_LEN: usize = 255;

/// The stable name of a node, e.g. `sfu-eu-1`.
///
/// It is the node's identity in the cluster: it appears in the node's
/// certificate (SAN and CN), in actor paths (`node/actor`) and in
/// membership. A restarted node keeps its `NodeId` and gets a new
/// *generation*. Names are lowercase DNS names: `[a-z0-9-.]`, 1 to 63
/// bytes, starting and ending with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Validates `name` and makes a `NodeId` of it.
    pub fn new(name: impl AsRef<str>) -> Result<Self, NameError> {
        let name = name.as_ref();
        validate_node_name(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_node_name(name: &str) -> Result<(), NameError> {
    let bad = |reason: &'static str| NameError::InvalidNodeName {
        name: name.chars().take(80).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NODE_NAME_LEN {
        return Err(bad("longer than 63 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(bad("only a-z, 0-9, '-' and '.' are allowed"));
    }
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !edge_ok(bytes[0]) || !edge_ok(bytes[bytes.len() - 1]) {
        return Err(bad("must start and end with a letter or digit"));
    }
    if name.contains("..") {
        return Err(bad("empty DNS label"));
    }
    Ok(())
}

/// Validates an actor name: 1 to 255 bytes, no `/`, no control characters.
pub(crate) fn validate_actor_name(name: &str) -> Result<(), NameError> {
    let bad = |reason: &'static str| NameError::InvalidActorName {
        name: name.chars().take(80).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_ACTOR_NAME_LEN {
        return Err(bad("longer than 255 bytes"));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(bad("'/' and control characters are not allowed"));
    }
    Ok(())
}

impl TryFrom<String> for NodeId {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        validate_node_name(&value)?;
        Ok(Self(Arc::from(value)))
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0.to_string()
    }
}

impl FromStr for NodeId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A `node/actor` path naming a registered actor anywhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ActorPath {
    /// The node hosting the actor.
    pub node: NodeId,
    /// The name the actor was registered under on that node.
    pub actor: Arc<str>,
}

impl ActorPath {
    /// Builds a path from its parts, validating the actor name.
    pub fn new(node: NodeId, actor: &str) -> Result<Self, NameError> {
        validate_actor_name(actor)?;
        Ok(Self {
            node,
            actor: Arc::from(actor),
        })
    }
}

impl FromStr for ActorPath {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, actor) = s.split_once('/').ok_or_else(|| NameError::InvalidPath {
            path: s.chars().take(80).collect(),
        })?;
        Self::new(NodeId::new(node)?, actor)
    }
}

impl fmt::Display for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.actor)
    }
}

/// One incarnation of a node, as gossiped by SWIM and exchanged in the
/// link handshake.
///
/// `generation` is the node's start time (microseconds since the Unix
/// epoch), so a restarted node (same name) is a new incarnation that
/// supersedes the old one. `bump` is increased by
/// SWIM when this incarnation was wrongly declared down and rejoins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Incarnation {
    /// Node name.
    pub node: NodeId,
    /// Address peers dial to reach this node.
    pub addr: SocketAddr,
    /// The process's start time in µs since the Unix epoch: a restart
    /// makes it larger, and the higher one wins a name conflict.
    pub generation: u64,
    /// SWIM rejoin counter within one generation.
    pub bump: u16,
}

impl foca::Identity for Incarnation {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            bump: self.bump.checked_add(1)?,
            ..self.clone()
        })
    }

    fn addr(&self) -> NodeId {
        self.node.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, self.bump) > (adversary.generation, adversary.bump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in ["a", "node-1", "sfu.eu-1", "0"] {
            assert!(NodeId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a/b", "a..b", "a b", &"x".repeat(64)] {
            assert!(NodeId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        let p: ActorPath = "node-a/chat room".parse().unwrap();
        assert_eq!(p.node.as_str(), "node-a");
        assert_eq!(&*p.actor, "chat room");
        assert!("node-a".parse::<ActorPath>().is_err());
        assert!("node-a/".parse::<ActorPath>().is_err());
        assert!("node-a/x/y".parse::<ActorPath>().is_err());
    }

    #[test]
    fn node_id_decode_validates() {
        let bytes = crate::codec::encode(&"Bad Name".to_string()).unwrap();
        assert!(crate::codec::decode::<NodeId>(&bytes).is_err());
    }
}
