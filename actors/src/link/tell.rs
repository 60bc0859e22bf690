//! Tells over a link: the per-peer ordered tell writer and the tell stream server.
//!
//! The writer coalesces a peer's queued tells into large writes on the
//! link's one tell stream; the server delivers the peer's tells in order.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
};

use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;

use super::{code, wait_stop, wire_trace, FrameReader, Link, ReadFrameError};
use crate::{
    error::{FrameError, TellError},
    id::NodeId,
    node::NodeInner,
    registry::Lookup,
    trace::TraceId,
    wire::{decode_with_body, encode_with_body, stream_code, stream_kind, TellHeader},
};

/// Most distinct (actor, tag) routes one tell stream may bind.
const MAX_ROUTES: usize = 65_536;
/// Tell bytes coalesced into one stream write.
const TELL_BATCH: usize = 256 * 1024;

/// One tell queued for a peer's writer.
#[derive(Debug)]
pub(super) struct TellItem {
    actor: Arc<str>,
    tag: &'static str,
    body: Bytes,
    trace: TraceId,
}

impl NodeInner {
    pub(crate) fn tell_remote(
        self: &Arc<Self>,
        target: &NodeId,
        actor: &Arc<str>,
        tag: &'static str,
        body: Bytes,
        trace: TraceId,
    ) -> Result<(), TellError> {
        if self.is_stopping() {
            return Err(TellError::Stopped);
        }
        let max = self.settings.max_frame_bytes;
        // Worst-case header: bind variant with both names, the route and
        // the trace.
        let len = body.len() + actor.len() + tag.len() + 25;
        if len > max {
            return Err(TellError::TooLarge { len, max });
        }
        let member = self.view.read().contains_key(target);
        let tx = {
            let mut peers = self.peers.lock();
            if !member && !peers.contains_key(target) {
                return Err(TellError::Unreachable {
                    node: target.clone(),
                    reason: "unknown node: not a member and never linked".into(),
                });
            }
            self.peer_entry(&mut peers, target).tells.clone()
        };
        // The caller may be outside the node span: name the node.
        tracing::debug!(node = %self.id(), "tell to {target} {actor}/{tag} trace={trace}");
        let item = TellItem {
            actor: actor.clone(),
            tag,
            body,
            trace,
        };
        tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TellError::QueueFull {
                node: target.clone(),
            },
            mpsc::error::TrySendError::Closed(_) => TellError::Stopped,
        })
    }
}

/// One bound route of a tell stream.
struct Route {
    actor: String,
    tag: String,
    target: Lookup,
    warned: bool,
}

/// Serves one unidirectional stream of `link`: delivers its tells in order.
pub(super) async fn serve_tells(inner: Arc<NodeInner>, link: Link, mut recv: RecvStream) {
    let peer = &link.peer.node;
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    if kind[0] != stream_kind::TELL {
        tracing::warn!(%peer, kind = kind[0], "unknown unidirectional stream kind; stream closed");
        let _ = recv.stop(code(stream_code::UNKNOWN_KIND));
        return;
    }
    let mut reader = FrameReader::new(recv, inner.settings.max_frame_bytes);
    let mut routes: HashMap<u32, Route> = HashMap::new();
    loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(ReadFrameError::Frame(e)) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "bad tell frame; tell stream closed");
                reader.stop(match e {
                    FrameError::TooLarge { .. } => stream_code::FRAME_TOO_LARGE,
                    FrameError::Truncated { .. } => stream_code::DECODE,
                });
                return;
            }
            Err(ReadFrameError::Read(_)) => return,
        };
        let (header, body) = match decode_with_body::<TellHeader>(&frame) {
            Ok(decoded) => decoded,
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, error = %e, "undecodable tell header; tell stream closed");
                reader.stop(stream_code::DECODE);
                return;
            }
        };
        let (route, trace) = match header {
            TellHeader::Bind {
                route,
                actor,
                tag,
                trace,
            } => {
                let trace = wire_trace(trace);
                if routes.len() >= MAX_ROUTES && !routes.contains_key(&route) {
                    tracing::warn!(%peer, %trace, "too many tell routes; tell stream closed");
                    reader.stop(stream_code::DECODE);
                    return;
                }
                let target = inner.registry.lookup(&actor, &tag);
                routes.insert(
                    route,
                    Route {
                        actor,
                        tag,
                        target,
                        warned: false,
                    },
                );
                (route, trace)
            }
            TellHeader::Msg { route, trace } => (route, wire_trace(trace)),
        };
        let Some(route) = routes.get_mut(&route) else {
            inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, route, %trace, "tell for an unbound route; tell stream closed");
            reader.stop(stream_code::DECODE);
            return;
        };
        link.traffic.tells_received.fetch_add(1, Ordering::Relaxed);
        deliver_tell(&inner, peer, route, body, trace);
    }
}

/// Delivers one received tell to its route's actor; `trace` comes with it
/// in every log line (a span per tell would cost more than the tell).
fn deliver_tell(inner: &NodeInner, peer: &NodeId, route: &mut Route, body: &[u8], trace: TraceId) {
    tracing::debug!(
        "tell from {peer} {}/{} trace={trace}",
        route.actor,
        route.tag
    );
    if !matches!(route.target, Lookup::Found(_)) {
        // The actor may have been registered since the route was bound.
        route.target = inner.registry.lookup(&route.actor, &route.tag);
    }
    match &route.target {
        Lookup::Found(entry) => match (entry.tell)(body, trace) {
            Ok(()) => {
                inner
                    .counters
                    .tells_received
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, actor = %route.actor, tag = %route.tag, %trace, error = %e, "undecodable tell dropped");
            }
        },
        Lookup::UnknownActor | Lookup::UnknownMessage => {
            inner
                .counters
                .unknown_messages
                .fetch_add(1, Ordering::Relaxed);
            if !route.warned {
                route.warned = true;
                tracing::warn!(%peer, actor = %route.actor, tag = %route.tag, %trace, "tell for an unknown actor or message dropped");
            }
        }
    }
}

/// Writes the tells queued for one peer, in order, coalescing them into
/// large stream writes. One unidirectional stream per link.
pub(super) async fn tell_writer(
    inner: Arc<NodeInner>,
    peer: NodeId,
    mut rx: mpsc::Receiver<TellItem>,
) {
    let max = inner.settings.max_frame_bytes;
    let mut stop = inner.stop.subscribe();
    let mut stream: Option<(usize, SendStream)> = None;
    let mut routes: HashMap<(Arc<str>, &'static str), u32> = HashMap::new();
    let mut buf = BytesMut::with_capacity(TELL_BATCH + 1024);
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            () = wait_stop(&mut stop) => break,
        };
        let link = match inner.link_to(&peer, None, false).await {
            Ok(link) => link,
            Err(reason) => {
                let mut dropped = 1;
                while rx.try_recv().is_ok() {
                    dropped += 1;
                }
                inner
                    .counters
                    .tells_dropped
                    .fetch_add(dropped, Ordering::Relaxed);
                tracing::warn!(%peer, dropped, %reason, "tells dropped: peer unreachable");
                continue;
            }
        };
        if stream.as_ref().map(|(id, _)| *id) != Some(link.id()) {
            if let Some((_, mut old)) = stream.take() {
                let _ = old.finish();
            }
            match link.conn.open_uni().await {
                Ok(mut s) => {
                    if s.write_all(&[stream_kind::TELL]).await.is_err() {
                        inner.counters.tells_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    routes.clear();
                    stream = Some((link.id(), s));
                }
                Err(e) => {
                    inner.counters.tells_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "cannot open tell stream");
                    continue;
                }
            }
        }
        buf.clear();
        let mut count = 0u64;
        let mut item = Some(first);
        while let Some(next) = item.take() {
            if encode_tell(&mut routes, &next, max, &mut buf) {
                count += 1;
            } else {
                inner.counters.tells_dropped.fetch_add(1, Ordering::Relaxed);
            }
            if buf.len() < TELL_BATCH {
                item = rx.try_recv().ok();
            }
        }
        let Some((_, send)) = stream.as_mut() else {
            continue;
        };
        match send.write_all(&buf).await {
            Ok(()) => {
                inner
                    .counters
                    .tells_sent
                    .fetch_add(count, Ordering::Relaxed);
                link.traffic.tells_sent.fetch_add(count, Ordering::Relaxed);
            }
            Err(e) => {
                inner
                    .counters
                    .tells_dropped
                    .fetch_add(count, Ordering::Relaxed);
                tracing::debug!(%peer, error = %e, dropped = count, "tell stream write failed");
                stream = None;
            }
        }
    }
    if let Some((_, mut s)) = stream {
        let _ = s.finish();
    }
}

fn encode_tell(
    routes: &mut HashMap<(Arc<str>, &'static str), u32>,
    item: &TellItem,
    max: usize,
    buf: &mut BytesMut,
) -> bool {
    let key = (item.actor.clone(), item.tag);
    let trace = item.trace.get();
    let (header, new_route) = match routes.get(&key) {
        Some(&route) => (TellHeader::Msg { route, trace }, None),
        None => {
            let route = routes.len() as u32;
            (
                TellHeader::Bind {
                    route,
                    actor: item.actor.to_string(),
                    tag: item.tag.to_string(),
                    trace,
                },
                Some(route),
            )
        }
    };
    match encode_with_body(&header, &item.body, max, buf) {
        Ok(()) => {
            if let Some(route) = new_route {
                routes.insert(key, route);
            }
            true
        }
        Err(_) => false,
    }
}
