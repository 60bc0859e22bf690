//! Location-transparent actor references.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use actix::{MailboxError, Recipient};

use crate::{
    codec,
    error::{AskError, TellError},
    id::{ActorPath, NodeId},
    message::RemoteMessage,
    node::NodeInner,
    trace::TraceId,
};

/// Default ask timeout of references made with [`ActorRef::local`].
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// A reference to an actor accepting `M`, wherever it runs.
///
/// The API is the same for a local actor (an actix [`Recipient`]) and for a
/// named actor on another node:
///
/// * [`tell`](Self::tell): fire and forget. Tells from one node to one
///   actor are delivered in the order they were sent (at most once).
/// * [`ask`](Self::ask): request/reply with a timeout. Dropping the returned
///   future cancels the ask and removes its pending entry.
///
/// Both send the message under one trace id ([`crate::trace`]), chosen
/// when `tell` or `ask` is called: the message's own
/// ([`RemoteMessage::trace`]), else the calling code's current one, else a
/// fresh one. The message is given it ([`RemoteMessage::set_trace`])
/// before a local delivery; a remote one carries it in the frame header.
///
/// Cloning is cheap.
pub struct ActorRef<M: RemoteMessage> {
    target: Target<M>,
    timeout: Duration,
}

enum Target<M: RemoteMessage> {
    Local(Recipient<M>),
    /// A named actor on this node, resolved on each use.
    Named {
        node: Arc<NodeInner>,
        actor: Arc<str>,
    },
    Remote {
        node: Arc<NodeInner>,
        target: NodeId,
        actor: Arc<str>,
    },
}

impl<M: RemoteMessage> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        let target = match &self.target {
            Target::Local(r) => Target::Local(r.clone()),
            Target::Named { node, actor } => Target::Named {
                node: node.clone(),
                actor: actor.clone(),
            },
            Target::Remote {
                node,
                target,
                actor,
            } => Target::Remote {
                node: node.clone(),
                target: target.clone(),
                actor: actor.clone(),
            },
        };
        Self {
            target,
            timeout: self.timeout,
        }
    }
}

impl<M: RemoteMessage> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ActorRef");
        d.field("message", &M::TAG);
        match &self.target {
            Target::Local(_) => d.field("target", &"local recipient"),
            Target::Named { node, actor } => d
                .field("node", &node.id().as_str())
                .field("actor", &&**actor),
            Target::Remote { target, actor, .. } => {
                d.field("node", &target.as_str()).field("actor", &&**actor)
            }
        };
        d.finish()
    }
}

impl<M: RemoteMessage> ActorRef<M> {
    /// Wraps a local actix recipient.
    pub fn local(recipient: Recipient<M>) -> Self {
        Self {
            target: Target::Local(recipient),
            timeout: DEFAULT_ASK_TIMEOUT,
        }
    }

    pub(crate) fn named(node: Arc<NodeInner>, actor: Arc<str>) -> Self {
        let timeout = node.settings.ask_timeout;
        Self {
            target: Target::Named { node, actor },
            timeout,
        }
    }

    pub(crate) fn remote(node: Arc<NodeInner>, target: NodeId, actor: Arc<str>) -> Self {
        let timeout = node.settings.ask_timeout;
        Self {
            target: Target::Remote {
                node,
                target,
                actor,
            },
            timeout,
        }
    }

    /// Returns a copy using `timeout` as the default for [`ask`](Self::ask).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The `node/actor` path, unless this wraps an anonymous recipient.
    pub fn path(&self) -> Option<ActorPath> {
        match &self.target {
            Target::Local(_) => None,
            Target::Named { node, actor } => Some(ActorPath {
                node: node.id().clone(),
                actor: actor.clone(),
            }),
            Target::Remote { target, actor, .. } => Some(ActorPath {
                node: target.clone(),
                actor: actor.clone(),
            }),
        }
    }

    /// Whether the actor runs on this node.
    pub fn is_local(&self) -> bool {
        !matches!(self.target, Target::Remote { .. })
    }

    fn resolve_named(node: &NodeInner, actor: &str) -> Option<Recipient<M>> {
        node.registry.recipient::<M>(actor)
    }

    /// Sends `msg` without waiting for a reply.
    ///
    /// Errors are only those detectable immediately (encoding, unknown
    /// node, full queue); delivery itself is at most once.
    pub fn tell(&self, mut msg: M) -> Result<(), TellError> {
        let trace = TraceId::resolve(msg.trace());
        msg.set_trace(trace);
        match &self.target {
            Target::Local(r) => {
                r.do_send(msg);
                Ok(())
            }
            Target::Named { node, actor } => match Self::resolve_named(node, actor) {
                Some(r) => {
                    r.do_send(msg);
                    Ok(())
                }
                None => Err(TellError::UnknownActor {
                    actor: actor.to_string(),
                    tag: M::TAG.to_string(),
                }),
            },
            Target::Remote {
                node,
                target,
                actor,
            } => {
                let body = codec::encode(&msg).map_err(|e| TellError::Encode(e.to_string()))?;
                node.tell_remote(target, actor, M::TAG, body.into(), trace)
            }
        }
    }

    /// Sends `msg` and waits for the reply, at most this reference's
    /// default timeout (the node's `ask_timeout` unless changed). See
    /// [`ask_timeout`](Self::ask_timeout).
    pub fn ask(&self, msg: M) -> impl Future<Output = Result<M::Result, AskError>> {
        self.ask_timeout(msg, self.timeout)
    }

    /// Sends `msg` and waits for the reply at most `timeout`.
    ///
    /// The trace is chosen at the call, not when the returned future is
    /// first polled, and the future does not borrow the reference: an
    /// actix handler can ask under [`crate::trace::enter`] and return the
    /// future as its response.
    pub fn ask_timeout(
        &self,
        mut msg: M,
        timeout: Duration,
    ) -> impl Future<Output = Result<M::Result, AskError>> {
        let trace = TraceId::resolve(msg.trace());
        msg.set_trace(trace);
        let this = self.clone();
        async move { this.send_ask(msg, trace, timeout).await }
    }

    async fn send_ask(
        &self,
        msg: M,
        trace: TraceId,
        timeout: Duration,
    ) -> Result<M::Result, AskError> {
        match &self.target {
            Target::Local(r) => ask_local(r, msg, timeout, None).await,
            Target::Named { node, actor } => match Self::resolve_named(node, actor) {
                Some(r) => ask_local(&r, msg, timeout, Some(node.id())).await,
                None => Err(AskError::UnknownActor {
                    node: node.id().clone(),
                    actor: actor.to_string(),
                }),
            },
            Target::Remote {
                node,
                target,
                actor,
            } => {
                let body = codec::encode(&msg).map_err(|e| AskError::Encode(e.to_string()))?;
                let reply = node
                    .ask_remote(target, actor, M::TAG, &body, trace, timeout)
                    .await?;
                codec::decode(&reply).map_err(|e| AskError::Decode(e.to_string()))
            }
        }
    }
}

async fn ask_local<M: RemoteMessage>(
    recipient: &Recipient<M>,
    msg: M,
    timeout: Duration,
    node: Option<&NodeId>,
) -> Result<M::Result, AskError> {
    match tokio::time::timeout(timeout, recipient.send(msg)).await {
        Err(_) => Err(AskError::Timeout(timeout)),
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(MailboxError::Timeout)) => Err(AskError::Timeout(timeout)),
        Ok(Err(MailboxError::Closed)) => Err(match node {
            Some(node) => AskError::Unreachable {
                node: node.clone(),
                reason: "local actor stopped".into(),
            },
            None => AskError::RemoteError("local actor stopped".into()),
        }),
    }
}
