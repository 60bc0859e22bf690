//! The contract for messages that may cross the network.

use serde::{de::DeserializeOwned, Serialize};

use crate::trace::TraceId;

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
/// A message that wants its handler to know the request's trace id keeps
/// it in a `#[serde(skip)]` field through [`trace`](Self::trace) and
/// [`set_trace`](Self::set_trace): the id travels in the frame header, not
/// in the body.
///
/// ```
/// use mafalda_actors::trace::TraceId;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(actix::Message, Serialize, Deserialize)]
/// #[rtype(result = "String")]
/// struct Echo(String);
///
/// impl mafalda_actors::RemoteMessage for Echo {
///     const TAG: &'static str = "example.Echo/v1";
/// }
///
/// /// The same, with its trace id for the handler.
/// #[derive(actix::Message, Serialize, Deserialize)]
/// #[rtype(result = "String")]
/// struct TracedEcho {
///     text: String,
///     #[serde(skip)]
///     trace: Option<TraceId>,
/// }
///
/// impl mafalda_actors::RemoteMessage for TracedEcho {
///     const TAG: &'static str = "example.TracedEcho/v1";
///     fn trace(&self) -> Option<TraceId> {
///         self.trace
///     }
///     fn set_trace(&mut self, trace: TraceId) {
///         self.trace = Some(trace);
///     }
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

    /// The trace this message travels under, if it carries one (see
    /// [`crate::trace`]). Sending it uses this trace, else the sender's
    /// current one, else a fresh one.
    fn trace(&self) -> Option<TraceId> {
        None
    }

    /// Records the trace the message is delivered under: called by the
    /// fabric before delivery (on the receiving node, with the trace from
    /// the frame header, and for local targets). The default forgets it.
    fn set_trace(&mut self, _trace: TraceId) {}
}
