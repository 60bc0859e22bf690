//! The per-node registry of named actors and their accepted message tags.
//!
//! Registering a `Recipient<M>` stores type-erased closures that decode a
//! body into `M`, hand it the frame's trace id and deliver it, so the link
//! layer never needs the type.

use std::{any::Any, collections::HashMap, fmt, future::Future, pin::Pin, sync::Arc};

use actix::Recipient;
use parking_lot::RwLock;

use crate::{
    codec,
    error::{CodecError, RegisterError},
    id::validate_actor_name,
    message::RemoteMessage,
    trace::TraceId,
};

/// Outcome of serving one ask.
pub(crate) type ServeFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

type TellFn = Box<dyn Fn(&[u8], TraceId) -> Result<(), CodecError> + Send + Sync>;
type AskFn = Box<dyn Fn(&[u8], TraceId) -> Result<ServeFuture, CodecError> + Send + Sync>;

/// One (actor, tag) registration.
pub(crate) struct Entry {
    pub(crate) tell: TellFn,
    pub(crate) ask: AskFn,
    recipient: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entry")
    }
}

/// Result of a registry lookup.
#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    Found(Arc<Entry>),
    UnknownActor,
    UnknownMessage,
}

type Tags = HashMap<&'static str, Arc<Entry>>;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    actors: RwLock<HashMap<Arc<str>, Tags>>,
}

impl Registry {
    pub(crate) fn register<M: RemoteMessage>(
        &self,
        name: &str,
        recipient: Recipient<M>,
    ) -> Result<(), RegisterError> {
        validate_actor_name(name)?;
        let tell_to = recipient.clone();
        let ask_to = recipient.clone();
        let entry = Entry {
            tell: Box::new(move |body, trace| {
                let mut msg: M = codec::decode(body)?;
                msg.set_trace(trace);
                tell_to.do_send(msg);
                Ok(())
            }),
            ask: Box::new(move |body, trace| {
                let mut msg: M = codec::decode(body)?;
                msg.set_trace(trace);
                let request = ask_to.send(msg);
                Ok(Box::pin(async move {
                    let reply = request.await.map_err(|e| format!("actor mailbox: {e}"))?;
                    codec::encode(&reply).map_err(|e| e.to_string())
                }))
            }),
            recipient: Box::new(recipient),
        };
        let mut actors = self.actors.write();
        let tags = actors.entry(Arc::from(name)).or_default();
        if tags.contains_key(M::TAG) {
            return Err(RegisterError::Duplicate {
                actor: name.to_string(),
                tag: M::TAG,
            });
        }
        tags.insert(M::TAG, Arc::new(entry));
        Ok(())
    }

    pub(crate) fn unregister(&self, name: &str) -> bool {
        self.actors.write().remove(name).is_some()
    }

    pub(crate) fn lookup(&self, actor: &str, tag: &str) -> Lookup {
        let actors = self.actors.read();
        match actors.get(actor) {
            None => Lookup::UnknownActor,
            Some(tags) => match tags.get(tag) {
                Some(entry) => Lookup::Found(entry.clone()),
                None => Lookup::UnknownMessage,
            },
        }
    }

    pub(crate) fn recipient<M: RemoteMessage>(&self, actor: &str) -> Option<Recipient<M>> {
        let actors = self.actors.read();
        actors
            .get(actor)?
            .get(M::TAG)?
            .recipient
            .downcast_ref::<Recipient<M>>()
            .cloned()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.actors.read().keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }
}
