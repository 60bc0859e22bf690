//! Asks over a link: sending one and waiting for its reply, and serving the peer's.
//!
//! Each ask is one bidirectional stream: a request frame, a reply frame.

use std::{sync::atomic::Ordering, sync::Arc, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use quinn::{ReadError, RecvStream, SendStream, WriteError};
use tracing::Instrument;

use super::{code, wire_trace, FrameReader, Link, ReadFrameError};
use crate::{
    codec,
    error::{AskError, FrameError},
    frame::FrameOrInner,
    id::NodeId,
    node::NodeInner,
    registry::Lookup,
    trace::TraceId,
    wire::{decode_with_body, encode_with_body, stream_code, stream_kind, Reply, Request},
};

impl NodeInner {
    pub(crate) async fn ask_remote(
        self: &Arc<Self>,
        target: &NodeId,
        actor: &str,
        tag: &str,
        body: &[u8],
        trace: TraceId,
        timeout: Duration,
    ) -> Result<Bytes, AskError> {
        // The caller may be outside the node span: name the node.
        tracing::debug!(node = %self.id(), "ask to {target} {actor}/{tag} trace={trace}");
        let request = Request::Ask {
            actor: actor.to_string(),
            tag: tag.to_string(),
            trace: trace.get(),
        };
        match self.request(target, &request, body, timeout).await? {
            (Reply::Ok, body) => Ok(body),
            (other, _) => Err(reply_error(target, actor, tag, other)),
        }
    }

    pub(crate) async fn lookup_remote(
        self: &Arc<Self>,
        target: &NodeId,
        actor: &str,
        tag: &str,
        timeout: Duration,
    ) -> Result<(), AskError> {
        let request = Request::Lookup {
            actor: actor.to_string(),
            tag: tag.to_string(),
        };
        match self.request(target, &request, &[], timeout).await? {
            (Reply::Found, _) => Ok(()),
            (other, _) => Err(reply_error(target, actor, tag, other)),
        }
    }

    /// One request/reply exchange on a fresh bidirectional stream, counted
    /// as pending until it completes, times out or is dropped.
    async fn request(
        self: &Arc<Self>,
        target: &NodeId,
        request: &Request,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(Reply, Bytes), AskError> {
        let id = self.next_ask.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().insert(id, target.clone());
        let _guard = PendingGuard { node: self, id };
        match tokio::time::timeout(timeout, self.exchange(target, request, body)).await {
            Ok(result) => result,
            Err(_) => Err(AskError::Timeout(timeout)),
        }
    }

    async fn exchange(
        self: &Arc<Self>,
        target: &NodeId,
        request: &Request,
        body: &[u8],
    ) -> Result<(Reply, Bytes), AskError> {
        let unreachable = |reason: String| AskError::Unreachable {
            node: target.clone(),
            reason,
        };
        let link = self
            .link_to(target, None, false)
            .await
            .map_err(unreachable)?;
        let max = self.settings.max_frame_bytes;
        let mut buf = BytesMut::with_capacity(body.len() + 64);
        buf.put_u8(stream_kind::ASK);
        encode_with_body(request, body, max, &mut buf).map_err(|e| match e {
            FrameOrInner::Frame(f) => AskError::Encode(f.to_string()),
            FrameOrInner::Inner(c) => AskError::Encode(c.to_string()),
        })?;
        let conn = link.conn.clone();
        let work = async {
            let (mut send, recv) = conn
                .open_bi()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            send.write_all(&buf)
                .await
                .map_err(|e| write_error(target, e))?;
            let _ = send.finish();
            link.traffic.asks_sent.fetch_add(1, Ordering::Relaxed);
            let mut reader = FrameReader::new(recv, max);
            let frame = match reader.next().await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err(unreachable("stream closed without a reply".into())),
                Err(ReadFrameError::Frame(e)) => {
                    reader.stop(stream_code::DECODE);
                    return Err(AskError::Decode(e.to_string()));
                }
                Err(ReadFrameError::Read(e)) => return Err(read_error(target, e)),
            };
            let (reply, used) = codec::decode_prefix::<Reply>(&frame)
                .map_err(|e| AskError::Decode(e.to_string()))?;
            Ok((reply, frame.slice(used..)))
        };
        tokio::select! {
            result = work => result,
            reason = link.conn.closed() => Err(unreachable(format!("link lost: {reason}"))),
        }
    }
}

struct PendingGuard<'a> {
    node: &'a NodeInner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.node.pending.lock().remove(&self.id);
    }
}

fn reply_error(target: &NodeId, actor: &str, tag: &str, reply: Reply) -> AskError {
    match reply {
        Reply::UnknownActor => AskError::UnknownActor {
            node: target.clone(),
            actor: actor.to_string(),
        },
        Reply::UnknownMessage => AskError::UnknownMessage {
            node: target.clone(),
            actor: actor.to_string(),
            tag: tag.to_string(),
        },
        Reply::Decode(reason) => AskError::Decode(format!("remote: {reason}")),
        Reply::Remote(reason) => AskError::RemoteError(reason),
        Reply::Ok | Reply::Found => AskError::Decode("unexpected reply".into()),
    }
}

fn read_error(target: &NodeId, e: ReadError) -> AskError {
    match e {
        ReadError::Reset(c) => AskError::RemoteError(format!("peer reset the stream (code {c})")),
        other => AskError::Unreachable {
            node: target.clone(),
            reason: other.to_string(),
        },
    }
}

fn write_error(target: &NodeId, e: WriteError) -> AskError {
    match e {
        WriteError::Stopped(c) => {
            AskError::RemoteError(format!("peer stopped the stream (code {c})"))
        }
        other => AskError::Unreachable {
            node: target.clone(),
            reason: other.to_string(),
        },
    }
}

/// Serves one bidirectional stream of `link`: reads its request, replies.
pub(super) async fn serve_bi(
    inner: Arc<NodeInner>,
    link: Link,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let peer = &link.peer.node;
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    if kind[0] != stream_kind::ASK {
        tracing::warn!(%peer, kind = kind[0], "unknown bidirectional stream kind; stream closed");
        let _ = recv.stop(code(stream_code::UNKNOWN_KIND));
        let _ = send.reset(code(stream_code::UNKNOWN_KIND));
        return;
    }
    let max = inner.settings.max_frame_bytes;
    let mut reader = FrameReader::new(recv, max);
    let frame = match reader.next().await {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            write_reply(
                &mut send,
                max,
                &Reply::Decode("empty ask stream".into()),
                &[],
            )
            .await;
            return;
        }
        Err(ReadFrameError::Frame(e)) => {
            inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, error = %e, "bad ask frame; stream closed");
            let c = match e {
                FrameError::TooLarge { .. } => stream_code::FRAME_TOO_LARGE,
                FrameError::Truncated { .. } => stream_code::DECODE,
            };
            reader.stop(c);
            write_reply(&mut send, max, &Reply::Decode(e.to_string()), &[]).await;
            return;
        }
        Err(ReadFrameError::Read(_)) => return,
    };
    let (request, body) = match decode_with_body::<Request>(&frame) {
        Ok(decoded) => decoded,
        Err(e) => {
            inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, error = %e, "undecodable ask header");
            write_reply(&mut send, max, &Reply::Decode(e.to_string()), &[]).await;
            return;
        }
    };
    link.traffic.asks_received.fetch_add(1, Ordering::Relaxed);
    match request {
        Request::Ask { actor, tag, trace } => {
            let trace = wire_trace(trace);
            let span = tracing::info_span!("ask", trace = %trace);
            let answered = async {
                tracing::debug!("ask from {peer} {actor}/{tag} trace={trace}");
                answer(&inner, peer, &mut send, &actor, &tag, Some((trace, body))).await;
            };
            answered.instrument(span).await;
        }
        Request::Lookup { actor, tag } => {
            answer(&inner, peer, &mut send, &actor, &tag, None).await;
        }
    }
}

/// Answers a decoded request to `actor` for `tag`: an ask (its trace and
/// body), or a lookup (`None`).
async fn answer(
    inner: &NodeInner,
    peer: &NodeId,
    send: &mut SendStream,
    actor: &str,
    tag: &str,
    ask: Option<(TraceId, &[u8])>,
) {
    let max = inner.settings.max_frame_bytes;
    let entry = match inner.registry.lookup(actor, tag) {
        Lookup::Found(entry) => entry,
        Lookup::UnknownActor => {
            inner
                .counters
                .unknown_messages
                .fetch_add(1, Ordering::Relaxed);
            write_reply(send, max, &Reply::UnknownActor, &[]).await;
            return;
        }
        Lookup::UnknownMessage => {
            inner
                .counters
                .unknown_messages
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, actor, tag, "ask with unknown message tag");
            write_reply(send, max, &Reply::UnknownMessage, &[]).await;
            return;
        }
    };
    let Some((trace, body)) = ask else {
        write_reply(send, max, &Reply::Found, &[]).await;
        return;
    };
    let serving = match (entry.ask)(body, trace) {
        Ok(fut) => fut,
        Err(e) => {
            inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, actor, tag, error = %e, "undecodable ask body");
            write_reply(send, max, &Reply::Decode(e.to_string()), &[]).await;
            return;
        }
    };
    let stopped = send.stopped();
    tokio::select! {
        result = serving => {
            inner.counters.asks_served.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(reply) => write_reply(send, max, &Reply::Ok, &reply).await,
                Err(e) => write_reply(send, max, &Reply::Remote(e), &[]).await,
            }
        }
        _ = stopped => tracing::trace!(%peer, actor, "ask cancelled by the asker"),
    }
}

async fn write_reply(send: &mut SendStream, max: usize, reply: &Reply, body: &[u8]) {
    let mut buf = BytesMut::with_capacity(body.len() + 16);
    if encode_with_body(reply, body, max, &mut buf).is_err() {
        buf.clear();
        let too_big = Reply::Remote(format!(
            "reply of {} bytes exceeds the frame limit",
            body.len()
        ));
        if encode_with_body(&too_big, &[], max, &mut buf).is_err() {
            return;
        }
    }
    let _ = send.write_all(&buf).await;
    let _ = send.finish();
}
