//! Trace ids: one id per request, kept across nodes so both ends log it.
//!
//! Every ask and tell the fabric sends carries a [`TraceId`] in its frame
//! header (see `docs/protocol.md`, section 2). The sender picks it: the
//! message's own trace ([`RemoteMessage::trace`]), else the calling code's
//! [`current`] trace, else a fresh random one. The receiver logs it and
//! hands it to the message ([`RemoteMessage::set_trace`]), so a handler
//! that forwards work under it ([`enter`], [`scope`]) keeps one id for the
//! whole request, on every node it crosses.
//!
//! The current trace is a thread-local: [`enter`] sets it for a synchronous
//! stretch (an actix handler's body), [`scope`] around every poll of a
//! future, on whatever executor runs it.
//!
//! ```
//! use mafalda_actors::trace::{self, TraceId};
//!
//! let id = TraceId::random();
//! assert_eq!(trace::current(), None);
//! {
//!     let _guard = trace::enter(id);
//!     assert_eq!(trace::current(), Some(id));
//! }
//! assert_eq!(trace::current(), None);
//! assert_eq!(id.to_string().len(), 16);
//! ```
//!
//! [`RemoteMessage::trace`]: crate::RemoteMessage::trace
//! [`RemoteMessage::set_trace`]: crate::RemoteMessage::set_trace

use std::{cell::Cell, fmt, future::Future, marker::PhantomData, num::NonZeroU64};

use serde::{Deserialize, Serialize};

/// The id of one request across the fabric: a non-zero `u64`, shown as 16
/// lowercase hex digits. Serialised as a plain `u64` (zero is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TraceId(NonZeroU64);

impl TraceId {
    /// A fresh random id.
    pub fn random() -> Self {
        loop {
            if let Some(n) = NonZeroU64::new(rand::random()) {
                return Self(n);
            }
        }
    }

    /// The id with this value; `None` for zero (no trace).
    pub fn from_u64(value: u64) -> Option<Self> {
        NonZeroU64::new(value).map(Self)
    }

    /// The id's value (never zero).
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The trace to send `own` under: `own`, else the [`current`] one,
    /// else a fresh one.
    pub fn resolve(own: Option<TraceId>) -> Self {
        own.or_else(current).unwrap_or_else(Self::random)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0.get())
    }
}

thread_local! {
    static CURRENT: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// The trace the code running on this thread works under, if any.
pub fn current() -> Option<TraceId> {
    CURRENT.with(Cell::get)
}

/// Makes `id` the [`current`] trace of this thread until the returned guard
/// is dropped, which restores the previous one. `None` clears it.
///
/// The guard cannot cross threads (it is not `Send`). Do not hold it across
/// an `.await` either (on a single-threaded executor other tasks polled
/// meanwhile would see the trace): across `.await`s use [`scope`]. An ask
/// takes its trace when it is called, so an actix handler can make it
/// under the guard and return the ask's future.
pub fn enter(id: impl Into<Option<TraceId>>) -> TraceGuard {
    TraceGuard {
        previous: CURRENT.with(|c| c.replace(id.into())),
        _not_send: PhantomData,
    }
}

/// Restores the previous [`current`] trace when dropped; see [`enter`].
#[must_use = "the trace is only current while the guard lives"]
#[derive(Debug)]
pub struct TraceGuard {
    previous: Option<TraceId>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Runs `future` with `id` as the [`current`] trace during each of its
/// polls (and the previous one restored between them), whichever thread
/// or executor polls it.
pub fn scope<F: Future>(
    id: impl Into<Option<TraceId>>,
    future: F,
) -> impl Future<Output = F::Output> {
    let id = id.into();
    async move {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(move |cx| {
            let _guard = enter(id);
            future.as_mut().poll(cx)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_non_zero_hex_and_serialise_as_u64() {
        let id = TraceId::from_u64(0xab).unwrap();
        assert_eq!(id.to_string(), "00000000000000ab");
        assert_eq!(TraceId::from_u64(0), None);
        assert_ne!(TraceId::random(), TraceId::random());
        let bytes = crate::codec::encode(&id).unwrap();
        assert_eq!(bytes, crate::codec::encode(&0xabu64).unwrap());
        assert_eq!(crate::codec::decode::<TraceId>(&bytes).unwrap(), id);
        let zero = crate::codec::encode(&0u64).unwrap();
        assert!(crate::codec::decode::<TraceId>(&zero).is_err());
    }

    #[test]
    fn guards_nest_and_restore() {
        let (a, b) = (TraceId::random(), TraceId::random());
        assert_eq!(current(), None);
        let outer = enter(a);
        {
            let _inner = enter(b);
            assert_eq!(current(), Some(b));
            let _cleared = enter(None);
            assert_eq!(current(), None);
        }
        assert_eq!(current(), Some(a));
        assert_eq!(TraceId::resolve(None), a);
        assert_eq!(TraceId::resolve(Some(b)), b);
        drop(outer);
        assert_eq!(current(), None);
    }

    #[tokio::test]
    async fn scope_holds_across_awaits_and_only_inside() {
        let id = TraceId::random();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let seen = tokio::spawn(scope(id, async move {
            let before = current();
            rx.await.unwrap();
            (before, current())
        }));
        // Between the scoped future's polls this thread has no trace.
        assert_eq!(current(), None);
        tx.send(()).unwrap();
        assert_eq!(seen.await.unwrap(), (Some(id), Some(id)));
        assert_eq!(current(), None);
    }
}
