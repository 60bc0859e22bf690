//! `GET /api/status/stream`: the node's status pushed as Server-Sent
//! Events, one `data:` line of the same JSON as `GET /api/status` every
//! second (built by [`super::http::status_json`]).
//!
//! Bounded: at most [`MAX_STREAMS`] at once per node (more get `503`);
//! an event is built only when the connection has taken the previous one
//! (the body is polled for the next event only then), so a client that
//! does not read costs a socket's buffers, not a queue; a stream whose
//! client has not taken an event for [`STALL_LIMIT`] ends when next
//! polled, every stream ends after [`MAX_AGE`] (`EventSource` reconnects
//! by itself, after the `retry` the first event names), and all of them
//! end when the node stops.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ApiState;

/// Time between two events of a stream.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Streams a node serves at once.
pub const MAX_STREAMS: usize = 32;
/// A stream ends this long after it started; the client reconnects.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// A stream whose client is this late taking an event ends.
pub const STALL_LIMIT: Duration = Duration::from_secs(15);
/// The reconnection delay the first event asks of `EventSource`, ms.
const RETRY_MS: u64 = 2000;

/// The node's open status streams: their count, and the signal that ends
/// them when the node stops. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusStreams {
    open: Arc<AtomicUsize>,
    stop: Arc<watch::Sender<bool>>,
}

impl Default for StatusStreams {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            stop: Arc::new(watch::channel(false).0),
        }
    }
}

impl StatusStreams {
    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Ends every stream (at once, not at its next event) and refuses new
    /// ones: the node is stopping.
    pub fn close(&self) {
        self.stop.send_replace(true);
    }

    /// A place for one more stream, unless [`MAX_STREAMS`] are open.
    fn admit(&self) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(&self.open)))
    }
}

/// One open stream, counted until dropped (the client went away, or the
/// stream ended).
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one stream carries from one event to the next.
struct Cursor {
    state: web::Data<ApiState>,
    stop: watch::Receiver<bool>,
    started: Instant,
    /// When the next event is due; `None` before the first (sent at once).
    next: Option<Instant>,
    /// The reader is an operator: it gets the detail.
    operator: bool,
    _slot: Slot,
}

impl Cursor {
    /// The next event, or `None` when the stream ends.
    async fn next_event(&mut self) -> Option<Bytes> {
        let mut text = String::new();
        match self.next {
            None => text.push_str(&format!("retry: {RETRY_MS}\n")),
            Some(due) => {
                let now = Instant::now();
                if now.duration_since(self.started) >= MAX_AGE
                    || now.saturating_duration_since(due) >= STALL_LIMIT
                {
                    return None;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.stop.wait_for(|stopped| *stopped) => return None,
                }
            }
        }
        if *self.stop.borrow() {
            return None;
        }
        let body = super::http::status_json(&self.state).await.ok()?;
        let body = if self.operator {
            body
        } else {
            super::http::public_status(body)
        };
        // No catching up: after a late event, the next one is due at once
        // at the earliest, never several in a burst.
        let now = Instant::now();
        self.next = Some(match self.next {
            None => now + PERIOD,
            Some(due) => (due + PERIOD).max(now),
        });
        text.push_str("data: ");
        text.push_str(&serde_json::to_string(&body).ok()?);
        text.push_str("\n\n");
        Some(Bytes::from(text))
    }
}

/// `GET /api/status/stream`: `text/event-stream` of the node's status.
pub async fn status_stream(
    req: actix_web::HttpRequest,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let operator = super::http::is_operator(&req, &state);
    let streams = state.streams.clone();
    let stop = streams.stop.subscribe();
    let refused = |why: &str| {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .content_type("text/plain")
            .body(format!("{why}\n"))
    };
    if *stop.borrow() {
        return refused("the node is stopping");
    }
    let Some(slot) = streams.admit() else {
        return refused("too many status streams on this node; try again later");
    };
    let cursor = Cursor {
        state,
        stop,
        started: Instant::now(),
        next: None,
        operator,
        _slot: slot,
    };
    let body = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next_event().await?;
        Some((Ok::<_, Infallible>(event), cursor))
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header(("X-Accel-Buffering", "no"))
        // The connection closes with the stream: an idle keep-alive
        // connection left behind would hold up the node's graceful stop.
        .force_close()
        .streaming(body)
}
