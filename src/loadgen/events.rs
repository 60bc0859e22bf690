//! What a node tells a loadgen participant over signalling, typed: the
//! events it pushes, the parts of a `join` reply loadgen uses, and where a
//! refused `join` says to go instead. Pure parsing, no I/O.
//!
//! Anything a node sends that does not parse is never an error here: an
//! unknown or malformed event becomes [`ServerEvent::Other`], a reply
//! without the lists loadgen reads gives empty lists.

use serde::Deserialize;
use serde_json::Value;

/// An event of the signalling protocol (`{ "event": name, "data": {...} }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "camelCase")]
pub enum ServerEvent {
    /// A producer appeared in the room.
    #[serde(rename_all = "camelCase")]
    NewProducer {
        /// The producer.
        producer_id: String,
        /// Its peer.
        peer_id: String,
        /// `audio` or `video`.
        kind: String,
    },
    /// A producer of the room closed.
    #[serde(rename_all = "camelCase")]
    ProducerClosed {
        /// The producer.
        producer_id: String,
    },
    /// One of this participant's consumers closed.
    #[serde(rename_all = "camelCase")]
    ConsumerClosed {
        /// The consumer.
        consumer_id: String,
        /// Its producer.
        producer_id: String,
    },
    /// A peer joined the room.
    #[serde(rename_all = "camelCase")]
    PeerJoined {
        /// The peer.
        peer_id: String,
        /// Its display name.
        display_name: String,
    },
    /// A peer left the room.
    #[serde(rename_all = "camelCase")]
    PeerLeft {
        /// The peer.
        peer_id: String,
    },
    /// This participant must join again: the node lost its place (a dead
    /// worker: the socket closes next) or is draining (the socket may stay
    /// open a while).
    Reconnect {
        /// Why, for logs.
        reason: String,
        /// The signalling URL of the node to join through, when the node
        /// says (a drain).
        #[serde(default)]
        url: Option<String>,
    },
    /// Any other event (`producerPaused`, …), or a known one whose data
    /// did not parse: its name.
    #[serde(skip)]
    Other(String),
}

impl ServerEvent {
    /// Reads an event message; `None` if `message` is not an event (a
    /// response, or not an object with an `event` string). A `reconnect`
    /// is obeyed even when its data does not parse (no reason, no URL).
    pub fn parse(message: &Value) -> Option<Self> {
        let name = message.get("event")?.as_str()?;
        Some(Self::deserialize(message).unwrap_or_else(|_| match name {
            "reconnect" => Self::Reconnect {
                reason: String::new(),
                url: None,
            },
            other => Self::Other(other.to_owned()),
        }))
    }
}

/// A peer as a `join` reply lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerEntry {
    /// The peer.
    pub peer_id: String,
    /// Its display name.
    pub display_name: String,
}

/// A producer as a `join` reply lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerEntry {
    /// The producer.
    pub producer_id: String,
    /// Its peer.
    pub peer_id: String,
    /// `audio` or `video`.
    pub kind: String,
}

/// What loadgen reads of a `join` reply: the room as the node knew it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct JoinReply {
    /// The other peers.
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
    /// Their producers.
    #[serde(default)]
    pub producers: Vec<ProducerEntry>,
}

impl JoinReply {
    /// Reads a `join` reply's `data`; entries that do not parse make the
    /// lists empty rather than an error.
    pub fn parse(data: &Value) -> Self {
        Self::deserialize(data).unwrap_or_default()
    }
}

/// The error code of a `join` refused by a draining node.
pub const DRAINING: &str = "draining";

/// Where a refused request's error object says to go instead: its `url`,
/// when it has one (a draining node names the node to join through).
pub fn redirect_url(error: &Value) -> Option<String> {
    error
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reconnect_with_and_without_url() {
        let with = json!({"event": "reconnect", "data": {"reason": "drain", "url": "ws://b/ws"}});
        assert_eq!(
            ServerEvent::parse(&with),
            Some(ServerEvent::Reconnect {
                reason: "drain".into(),
                url: Some("ws://b/ws".into())
            })
        );
        let without = json!({"event": "reconnect", "data": {"reason": "worker died"}});
        assert_eq!(
            ServerEvent::parse(&without),
            Some(ServerEvent::Reconnect {
                reason: "worker died".into(),
                url: None
            })
        );
    }

    #[test]
    fn room_events() {
        let e = json!({"event": "newProducer",
            "data": {"producerId": "p1", "peerId": "a", "kind": "video", "paused": false}});
        assert_eq!(
            ServerEvent::parse(&e),
            Some(ServerEvent::NewProducer {
                producer_id: "p1".into(),
                peer_id: "a".into(),
                kind: "video".into()
            })
        );
        let e = json!({"event": "consumerClosed", "data": {"consumerId": "c", "producerId": "p"}});
        assert_eq!(
            ServerEvent::parse(&e),
            Some(ServerEvent::ConsumerClosed {
                consumer_id: "c".into(),
                producer_id: "p".into()
            })
        );
        let e = json!({"event": "producerClosed", "data": {"producerId": "p"}});
        assert!(matches!(
            ServerEvent::parse(&e),
            Some(ServerEvent::ProducerClosed { .. })
        ));
        let e = json!({"event": "peerJoined", "data": {"peerId": "a", "displayName": "pub-0"}});
        assert!(matches!(
            ServerEvent::parse(&e),
            Some(ServerEvent::PeerJoined { display_name, .. }) if display_name == "pub-0"
        ));
        let e = json!({"event": "peerLeft", "data": {"peerId": "a"}});
        assert!(matches!(
            ServerEvent::parse(&e),
            Some(ServerEvent::PeerLeft { .. })
        ));
    }

    #[test]
    fn unknown_malformed_and_non_events() {
        let paused = json!({"event": "producerPaused", "data": {"producerId": "p"}});
        assert_eq!(
            ServerEvent::parse(&paused),
            Some(ServerEvent::Other("producerPaused".into()))
        );
        let bad = json!({"event": "newProducer", "data": {"producerId": 7}});
        assert_eq!(
            ServerEvent::parse(&bad),
            Some(ServerEvent::Other("newProducer".into()))
        );
        assert_eq!(
            ServerEvent::parse(&json!({"event": "reconnect", "data": {"url": 1}})),
            Some(ServerEvent::Reconnect {
                reason: String::new(),
                url: None
            })
        );
        assert_eq!(
            ServerEvent::parse(&json!({"response": true, "id": 1})),
            None
        );
        assert_eq!(ServerEvent::parse(&json!({"event": 3})), None);
        assert_eq!(ServerEvent::parse(&json!([1, 2])), None);
    }

    #[test]
    fn draining_error_with_and_without_url() {
        let reply = json!({"response": true, "id": 1, "ok": false,
            "error": {"code": "draining", "message": "node drains", "url": "ws://c/ws"}});
        let error = &reply["error"];
        assert_eq!(error["code"], json!(DRAINING));
        assert_eq!(redirect_url(error), Some("ws://c/ws".into()));
        assert_eq!(
            redirect_url(&json!({"code": "draining", "message": ""})),
            None
        );
        assert_eq!(redirect_url(&json!({"code": "draining", "url": 5})), None);
        assert_eq!(redirect_url(&json!({"code": "draining", "url": ""})), None);
    }

    #[test]
    fn join_reply_lists() {
        let data = json!({"peerId": "me", "roomId": "r", "routerRtpCapabilities": {},
            "peers": [{"peerId": "a", "displayName": "pub-0"}],
            "producers": [{"producerId": "p", "peerId": "a", "kind": "audio", "paused": false}]});
        let r = JoinReply::parse(&data);
        assert_eq!(r.peers[0].display_name, "pub-0");
        assert_eq!(r.producers[0].kind, "audio");
        assert_eq!(
            JoinReply::parse(&json!({"peers": "x"})),
            JoinReply::default()
        );
        assert_eq!(JoinReply::parse(&Value::Null), JoinReply::default());
    }
}
