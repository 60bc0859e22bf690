//! The contract for messages that may cross the network.

use serde::{de::DeserializeOwned, Serialize};

/// An actix message that can be sent to an actor on another node.
///
/// `TAG` is the message's stable wire name. It must be unique among the
/// message types one actor accepts and must never change once deployed
/// (rename the Rust type freely, keep the tag). Convention:
/// `"app.Type/v1"`; tags starting with `mafalda.` are reserved for the
/// fabric, and `sfu.` for the Mafalda SFU's messages between nodes.
///
/// The message and its reply are encoded with the fabric codec (serde +
/// bincode 2): use plain structs and externally tagged enums, no
/// `#[serde(untagged)]` or `#[serde(flatten)]`.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(actix::Message, Serialize, Deserialize)]
/// #[rtype(result = "String")]
/// struct Echo(String);
///
/// impl mafalda_actors::RemoteMessage for Echo {
///     const TAG: &'static str = "example.Echo/v1";
/// }
/// ```
pub trait RemoteMessage:
    actix::Message<Result: Serialize + DeserializeOwned + Send + 'static>
    + Serialize
    + DeserializeOwned
    + Send
    + 'static
{
    /// Stable wire name of the message type.
    const TAG: &'static str;
}
