//! Peer links: dialing, accepting, the handshake and each link's lifecycle.
//!
//! A link is installed, retired or closed here, and its datagrams are
//! dispatched here.
//!
//! This is the I/O half of the link protocol; the decisions live in
//! [`crate::handshake`], the framing in [`crate::frame`], the wire types in
//! [`crate::wire`]. The streams of a link are served by [`ask`] (one ask
//! per bidirectional stream) and [`tell`] (the ordered tell stream).
//!
//! Per peer the node keeps a [`Peer`]: a watch slot holding the link state
//! (idle, dialing, up, failed) and the queue of the peer's tell writer. Each
//! live link has one driver task accepting streams and datagrams; when the
//! connection dies every stream on it fails at once, which is how pending
//! asks of a dead peer fail together with `Unreachable`.

mod ask;
mod tell;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use bytes::{BufMut, Bytes, BytesMut};
use quinn::{ReadError, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch};

use crate::{
    error::{DialError, FrameError, HandshakeError},
    frame::FrameDecoder,
    handshake::{decide_incoming, decide_outgoing, Decision, Existing},
    id::{Incarnation, NodeId},
    membership::SwimCmd,
    node::NodeInner,
    tls,
    trace::TraceId,
    traffic::PeerTraffic,
    wire::{
        close_code, datagram_kind, decode_handshake, encode_handshake, stream_kind, Hello,
        HelloReply, RejectReason,
    },
};
use tell::TellItem;

/// Bytes read from a stream at once.
const READ_CHUNK: usize = 64 * 1024;

fn code(c: u32) -> VarInt {
    VarInt::from_u32(c)
}

/// The trace of a received frame header; a peer's 0 (none) gets a fresh id.
fn wire_trace(raw: u64) -> TraceId {
    TraceId::from_u64(raw).unwrap_or_else(TraceId::random)
}

/// State of the link to one peer.
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    Idle,
    Dialing,
    Up(Link),
    Failed(Arc<str>),
}

/// One established, handshaken connection to a peer incarnation.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub(crate) conn: quinn::Connection,
    pub(crate) peer: Incarnation,
    pub(crate) dialed_by_us: bool,
    /// The peer's traffic counts, shared by every link to it.
    pub(crate) traffic: Arc<PeerTraffic>,
}

impl Link {
    fn id(&self) -> usize {
        self.conn.stable_id()
    }
}

/// Per-peer state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) slot: watch::Sender<Slot>,
    tells: mpsc::Sender<TellItem>,
    addr: Option<SocketAddr>,
}

/// Reads frames off a QUIC receive stream.
pub(crate) struct FrameReader {
    recv: RecvStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    eof: bool,
}

/// Failure to read a frame.
#[derive(Debug)]
pub(crate) enum ReadFrameError {
    Frame(FrameError),
    Read(ReadError),
}

impl FrameReader {
    pub(crate) fn new(recv: RecvStream, max: usize) -> Self {
        Self {
            recv,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(max),
            eof: false,
        }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ReadFrameError> {
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(ReadFrameError::Frame)?
            {
                return Ok(Some(frame));
            }
            if self.eof {
                self.decoder
                    .finish(&self.buf)
                    .map_err(ReadFrameError::Frame)?;
                return Ok(None);
            }
            match self
                .recv
                .read_chunk(READ_CHUNK, true)
                .await
                .map_err(ReadFrameError::Read)?
            {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None => self.eof = true,
            }
        }
    }

    pub(crate) fn stop(&mut self, c: u32) {
        let _ = self.recv.stop(code(c));
    }
}

pub(crate) async fn wait_stop(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl NodeInner {
    fn peer_entry<'a>(
        self: &Arc<Self>,
        peers: &'a mut HashMap<NodeId, Peer>,
        id: &NodeId,
    ) -> &'a mut Peer {
        peers.entry(id.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.settings.tell_queue);
            self.spawn(tell::tell_writer(self.clone(), id.clone(), rx));
            Peer {
                slot: watch::channel(Slot::Idle).0,
                tells: tx,
                addr: None,
            }
        })
    }

    pub(crate) fn current_link(&self, id: &NodeId) -> Option<Link> {
        let peers = self.peers.lock();
        let state = peers.get(id)?.slot.borrow().clone();
        match state {
            Slot::Up(link) => Some(link),
            _ => None,
        }
    }

    pub(crate) fn linked_peers(&self) -> Vec<NodeId> {
        let peers = self.peers.lock();
        let mut ids: Vec<NodeId> = peers
            .iter()
            .filter(|(_, p)| matches!(&*p.slot.borrow(), Slot::Up(_)))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Returns the live link to `id`, dialing it if needed.
    ///
    /// `hint` is a fresher address (from SWIM); `allow_down` lets SWIM reach
    /// members it considers down, while user traffic fails fast.
    pub(crate) async fn link_to(
        self: &Arc<Self>,
        id: &NodeId,
        hint: Option<SocketAddr>,
        allow_down: bool,
    ) -> Result<Link, String> {
        if self.is_stopping() {
            return Err("local node is stopping".into());
        }
        if id == self.id() {
            return Err("the local node has no link to itself".into());
        }
        let (view_addr, is_down) = match self.view.read().get(id) {
            Some(m) => (
                Some(m.addr),
                m.state == crate::membership::MemberState::Down,
            ),
            None => (None, false),
        };
        let mut rx = {
            let mut peers = self.peers.lock();
            let peer = self.peer_entry(&mut peers, id);
            let state = peer.slot.borrow().clone();
            match state {
                Slot::Up(link) => return Ok(link),
                Slot::Dialing => {}
                Slot::Idle | Slot::Failed(_) => {
                    if is_down && !allow_down {
                        return Err("node is down (membership)".into());
                    }
                    let addr = hint
                        .or(view_addr)
                        .or(peer.addr)
                        .ok_or("unknown node: not a member and never linked")?;
                    peer.slot.send_replace(Slot::Dialing);
                    self.spawn(dial_task(self.clone(), id.clone(), addr));
                }
            }
            peer.slot.subscribe()
        };
        let waited = tokio::time::timeout(
            self.settings.connect_timeout * 2,
            rx.wait_for(|s| !matches!(s, Slot::Dialing)),
        )
        .await;
        match waited {
            Err(_) => Err("dial timed out".into()),
            Ok(Err(_)) => Err("local node is stopping".into()),
            Ok(Ok(state)) => match &*state {
                Slot::Up(link) => Ok(link.clone()),
                Slot::Failed(reason) => Err(reason.to_string()),
                Slot::Idle | Slot::Dialing => Err("link closed".into()),
            },
        }
    }

    fn set_failed_if_dialing(&self, id: &NodeId, reason: &str) {
        let peers = self.peers.lock();
        if let Some(peer) = peers.get(id) {
            peer.slot.send_if_modified(|s| {
                if matches!(s, Slot::Dialing) {
                    *s = Slot::Failed(Arc::from(reason));
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Dials `addr`; `expected` is the node we believe lives there (none for
    /// seeds). On success the link is installed.
    pub(crate) async fn dial(
        self: &Arc<Self>,
        addr: SocketAddr,
        expected: Option<&NodeId>,
    ) -> Result<Link, DialError> {
        if self.is_stopping() {
            return Err(DialError::Stopped);
        }
        let timeout = self.settings.connect_timeout;
        let sni = expected.map_or("seed.mafalda", |n| n.as_str());
        let connecting =
            self.endpoint
                .connect_with(self.client_config.read().clone(), addr, sni)?;
        let conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        match tokio::time::timeout(timeout, self.handshake_out(&conn, expected)).await {
            Ok(Ok(link)) => Ok(link),
            Ok(Err(e)) => {
                conn.close(code(close_code::REFUSED), b"handshake failed");
                Err(e)
            }
            Err(_) => {
                conn.close(code(close_code::REFUSED), b"handshake timeout");
                Err(HandshakeError::Timeout.into())
            }
        }
    }

    async fn handshake_out(
        self: &Arc<Self>,
        conn: &quinn::Connection,
        expected: Option<&NodeId>,
    ) -> Result<Link, DialError> {
        let max = self.settings.max_frame_bytes;
        let (mut send, recv) = conn.open_bi().await?;
        let mut buf = BytesMut::new();
        buf.put_u8(stream_kind::HANDSHAKE);
        let hello = Hello {
            incarnation: self.me.clone(),
            max_frame_bytes: max as u32,
        };
        encode_handshake(&hello, max, &mut buf)
            .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
        send.write_all(&buf)
            .await
            .map_err(|e| DialError::Stream(e.to_string()))?;
        let _ = send.finish();
        let mut reader = FrameReader::new(recv, max);
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err(HandshakeError::Malformed("no reply".into()).into()),
            Err(ReadFrameError::Frame(e)) => {
                return Err(HandshakeError::Malformed(e.to_string()).into())
            }
            Err(ReadFrameError::Read(e)) => return Err(DialError::Stream(e.to_string())),
        };
        match decode_handshake::<HelloReply>(&frame)? {
            HelloReply::Reject(reason) => Err(HandshakeError::Rejected(reason).into()),
            HelloReply::Accept { incarnation } => {
                if incarnation.node == *self.id() {
                    return Err(HandshakeError::SelfConnect.into());
                }
                if let Some(expected) = expected {
                    if *expected != incarnation.node {
                        return Err(HandshakeError::NameMismatch {
                            claimed: incarnation.node,
                            reason: format!("dialed {expected}"),
                        }
                        .into());
                    }
                }
                tls::verify_peer_name(conn, &incarnation.node)?;
                match self.install(conn.clone(), incarnation, true, None) {
                    Ok(link) => Ok(link),
                    Err(existing) => {
                        // The peer's own connection wins the tie-break.
                        let c = conn.clone();
                        let grace = self.settings.link_grace;
                        self.spawn(async move {
                            let _ = tokio::time::timeout(grace, c.closed()).await;
                            c.close(code(close_code::DUPLICATE), b"duplicate link");
                        });
                        Ok(existing)
                    }
                }
            }
        }
    }

    /// Installs a handshaken connection as the link to its peer. For
    /// outgoing links the acceptor's decision is adopted; for incoming ones
    /// `decision` was computed under the same lock by the caller.
    fn install(
        self: &Arc<Self>,
        conn: quinn::Connection,
        peer: Incarnation,
        dialed_by_us: bool,
        decided: Option<(Decision, Option<Link>)>,
    ) -> Result<Link, Link> {
        let link = Link {
            traffic: self.traffic_of(&peer.node),
            conn,
            peer,
            dialed_by_us,
        };
        let (decision, old) = match decided {
            Some(d) => d,
            None => {
                let mut peers = self.peers.lock();
                let entry = self.peer_entry(&mut peers, &link.peer.node);
                let current = entry.slot.borrow().clone();
                let decision = decide_outgoing(
                    self.id(),
                    &link.peer.node,
                    link.peer.generation,
                    existing_of(&current),
                );
                if matches!(decision, Decision::Reject(_)) {
                    if let Slot::Up(existing) = current {
                        return Err(existing);
                    }
                }
                let old = entry.slot.send_replace(Slot::Up(link.clone()));
                entry.addr = Some(link.peer.addr);
                (decision, up_link(old))
            }
        };
        tracing::info!(
            peer = %link.peer.node,
            remote = %link.conn.remote_address(),
            dialed_by_us,
            "link up"
        );
        link.traffic.link_up(&link.conn);
        self.spawn(drive_link(self.clone(), link.clone()));
        if let Some(old) = old.filter(|o| o.id() != link.id()) {
            let graceful = matches!(
                decision,
                Decision::Accept {
                    retire_gracefully: true
                }
            );
            self.retire(old, graceful);
        }
        Ok(link)
    }

    fn retire(self: &Arc<Self>, old: Link, graceful: bool) {
        if graceful {
            let grace = self.settings.link_grace;
            self.spawn(async move {
                tokio::select! {
                    _ = old.conn.closed() => {}
                    () = tokio::time::sleep(grace) => {
                        old.conn.close(code(close_code::DUPLICATE), b"replaced by another link");
                    }
                }
            });
        } else {
            old.conn
                .close(code(close_code::SUPERSEDED), b"peer incarnation replaced");
        }
    }

    fn on_link_closed(&self, link: &Link, reason: &quinn::ConnectionError) {
        let mut current = false;
        if let Some(peer) = self.peers.lock().get(&link.peer.node) {
            peer.slot.send_if_modified(|s| {
                if matches!(s, Slot::Up(l) if l.id() == link.id()) {
                    *s = Slot::Failed(Arc::from(format!("link closed: {reason}")));
                    current = true;
                    true
                } else {
                    false
                }
            });
        }
        if current {
            tracing::info!(peer = %link.peer.node, %reason, "link down");
        } else {
            tracing::debug!(peer = %link.peer.node, %reason, "retired link closed");
        }
    }

    /// Closes the link to `node` if it belongs to `generation` or older
    /// (membership declared it down or it restarted).
    pub(crate) fn peer_down(&self, node: &NodeId, generation: u64, why: &str) {
        let link = {
            let peers = self.peers.lock();
            let Some(peer) = peers.get(node) else { return };
            let mut closed = None;
            peer.slot.send_if_modified(|s| match s {
                Slot::Up(l) if l.peer.generation <= generation => {
                    closed = Some(l.clone());
                    *s = Slot::Failed(Arc::from(why));
                    true
                }
                _ => false,
            });
            closed
        };
        if let Some(link) = link {
            tracing::info!(peer = %node, why, "closing link");
            link.conn.close(code(close_code::PEER_DOWN), why.as_bytes());
        }
    }

    /// Sends a SWIM packet to `to` as a QUIC datagram, dialing if needed.
    pub(crate) fn send_swim(self: &Arc<Self>, to: Incarnation, data: &[u8]) {
        let mut d = BytesMut::with_capacity(1 + data.len());
        d.put_u8(datagram_kind::SWIM);
        d.put_slice(data);
        let d = d.freeze();
        match self.current_link(&to.node) {
            Some(link) if link.peer.generation >= to.generation => send_datagram(&link, d),
            stale => {
                if let Some(old) = stale {
                    self.peer_down(&to.node, old.peer.generation, "peer restarted");
                }
                let inner = self.clone();
                self.spawn(async move {
                    match inner.link_to(&to.node, Some(to.addr), true).await {
                        Ok(link) => send_datagram(&link, d),
                        Err(e) => tracing::trace!(peer = %to.node, error = %e, "SWIM send failed"),
                    }
                });
            }
        }
    }

    fn on_datagram(&self, data: Bytes) {
        match data.first() {
            Some(&datagram_kind::SWIM) => {
                let _ = self.swim_tx.send(SwimCmd::Data(data.slice(1..)));
            }
            other => tracing::debug!(kind = ?other, "ignoring datagram of unknown kind"),
        }
    }
}

fn existing_of(slot: &Slot) -> Existing {
    match slot {
        Slot::Up(l) => Existing::Up {
            generation: l.peer.generation,
            dialed_by_us: l.dialed_by_us,
        },
        Slot::Dialing => Existing::Dialing,
        Slot::Idle | Slot::Failed(_) => Existing::None,
    }
}

fn up_link(slot: Slot) -> Option<Link> {
    match slot {
        Slot::Up(l) => Some(l),
        _ => None,
    }
}

fn send_datagram(link: &Link, data: Bytes) {
    if let Err(e) = link.conn.send_datagram(data) {
        tracing::debug!(peer = %link.peer.node, error = %e, "datagram not sent");
    }
}

async fn dial_task(inner: Arc<NodeInner>, id: NodeId, addr: SocketAddr) {
    match inner.dial(addr, Some(&id)).await {
        Ok(_) => {}
        Err(DialError::Handshake(HandshakeError::Rejected(RejectReason::DuplicateLink))) => {
            // The peer's own dial wins the tie-break: wait for it to arrive.
            let rx = inner.peers.lock().get(&id).map(|p| p.slot.subscribe());
            if let Some(mut rx) = rx {
                let arrived = tokio::time::timeout(
                    inner.settings.connect_timeout,
                    rx.wait_for(|s| !matches!(s, Slot::Dialing)),
                )
                .await;
                if arrived.is_err() {
                    inner.set_failed_if_dialing(&id, "duplicate link refused and none arrived");
                }
            }
        }
        Err(e) => {
            log_dial_error(&id.to_string(), addr, &e);
            inner.set_failed_if_dialing(&id, &format!("dial {addr}: {e}"));
        }
    }
}

pub(crate) fn log_dial_error(peer: &str, addr: SocketAddr, e: &DialError) {
    match e {
        DialError::Handshake(HandshakeError::VersionMismatch { local, remote }) => tracing::error!(
            peer,
            %addr,
            local_version = local,
            remote_version = remote,
            "link refused: protocol version mismatch (local {local}, remote {remote})"
        ),
        DialError::Handshake(
            HandshakeError::NameMismatch { .. } | HandshakeError::NoCertificate,
        )
        | DialError::Handshake(HandshakeError::Rejected(RejectReason::NameMismatch)) => {
            tracing::warn!(peer, %addr, error = %e, "link refused: certificate/name check failed")
        }
        DialError::Connection(quinn::ConnectionError::TransportError(_))
        | DialError::Connection(quinn::ConnectionError::ConnectionClosed(_)) => tracing::warn!(
            peer,
            %addr,
            error = %e,
            "link refused at the TLS handshake (certificate not signed by the cluster CA?)"
        ),
        _ => tracing::debug!(peer, %addr, error = %e, "dial failed"),
    }
}

/// Accepts incoming connections until the node stops.
pub(crate) async fn accept_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        let incoming = tokio::select! {
            incoming = inner.endpoint.accept() => incoming,
            () = wait_stop(&mut stop) => break,
        };
        let Some(incoming) = incoming else { break };
        if inner.is_stopping() {
            incoming.refuse();
            continue;
        }
        inner.spawn(handle_incoming(inner.clone(), incoming));
    }
}

async fn handle_incoming(inner: Arc<NodeInner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let timeout = inner.settings.connect_timeout;
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "incoming connection failed");
            return;
        }
    };
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            inner.counters.refused_links.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %remote,
                error = %e,
                "refused connection at the TLS handshake: peer certificate missing or not signed by the cluster CA"
            );
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "refused connection: TLS handshake timed out");
            return;
        }
    };
    if tokio::time::timeout(timeout, inner.handshake_in(&conn, remote))
        .await
        .is_err()
    {
        tracing::warn!(%remote, "refused link: fabric handshake timed out");
        conn.close(code(close_code::REFUSED), b"handshake timeout");
    }
}

impl NodeInner {
    async fn handshake_in(self: &Arc<Self>, conn: &quinn::Connection, remote: SocketAddr) {
        let max = self.settings.max_frame_bytes;
        let Ok((send, mut recv)) = conn.accept_bi().await else {
            return;
        };
        let mut kind = [0u8; 1];
        if recv.read_exact(&mut kind).await.is_err() {
            conn.close(code(close_code::PROTOCOL), b"no handshake");
            return;
        }
        if kind[0] != stream_kind::HANDSHAKE {
            tracing::warn!(%remote, kind = kind[0], "refused link: first stream is not a handshake");
            conn.close(code(close_code::PROTOCOL), b"expected handshake");
            return;
        }
        let mut reader = FrameReader::new(recv, max);
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            other => {
                tracing::warn!(%remote, result = ?other.err(), "refused link: malformed handshake frame");
                self.refuse(conn, send, RejectReason::Malformed).await;
                return;
            }
        };
        let hello: Hello = match decode_handshake(&frame) {
            Ok(hello) => hello,
            Err(HandshakeError::VersionMismatch {
                local,
                remote: theirs,
            }) => {
                tracing::error!(
                    %remote,
                    local_version = local,
                    remote_version = theirs,
                    "refused link: protocol version mismatch (local {local}, remote {theirs})"
                );
                self.refuse(
                    conn,
                    send,
                    RejectReason::VersionMismatch { supported: local },
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::warn!(%remote, error = %e, "refused link: malformed handshake");
                self.refuse(conn, send, RejectReason::Malformed).await;
                return;
            }
        };
        let peer = hello.incarnation;
        if let Err(e) = tls::verify_peer_name(conn, &peer.node) {
            tracing::warn!(%remote, error = %e, "refused link: certificate does not name the claimed node");
            self.refuse(conn, send, RejectReason::NameMismatch).await;
            return;
        }
        if self.is_stopping() {
            self.refuse(conn, send, RejectReason::ShuttingDown).await;
            return;
        }
        let link = Link {
            conn: conn.clone(),
            peer: peer.clone(),
            dialed_by_us: false,
            traffic: self.traffic_of(&peer.node),
        };
        let (decision, old) = {
            let mut peers = self.peers.lock();
            let entry = self.peer_entry(&mut peers, &peer.node);
            let existing = existing_of(&entry.slot.borrow());
            let decision = decide_incoming(self.id(), &peer.node, peer.generation, existing);
            let old = if matches!(decision, Decision::Accept { .. }) {
                entry.addr = Some(peer.addr);
                up_link(entry.slot.send_replace(Slot::Up(link.clone())))
            } else {
                None
            };
            (decision, old)
        };
        if let Decision::Reject(reason) = decision {
            tracing::debug!(peer = %peer.node, ?reason, "refused link (tie-break)");
            self.refuse(conn, send, reason).await;
            return;
        }
        let _ = self.install(conn.clone(), peer, false, Some((decision, old)));
        let mut buf = BytesMut::new();
        let reply = HelloReply::Accept {
            incarnation: self.me.clone(),
        };
        if encode_handshake(&reply, max, &mut buf).is_ok() {
            let mut send = send;
            let _ = send.write_all(&buf).await;
            let _ = send.finish();
        }
    }

    async fn refuse(&self, conn: &quinn::Connection, mut send: SendStream, reason: RejectReason) {
        if !matches!(reason, RejectReason::DuplicateLink) {
            self.counters.refused_links.fetch_add(1, Ordering::Relaxed);
        }
        let mut buf = BytesMut::new();
        if encode_handshake(
            &HelloReply::Reject(reason),
            self.settings.max_frame_bytes,
            &mut buf,
        )
        .is_ok()
        {
            let _ = send.write_all(&buf).await;
            let _ = send.finish();
        }
        // Give the dialer the time to read the answer and close first.
        let conn = conn.clone();
        let timeout = self.settings.connect_timeout;
        self.spawn(async move {
            let _ = tokio::time::timeout(timeout, conn.closed()).await;
            conn.close(code(close_code::REFUSED), b"link refused");
        });
    }
}

/// Drives one link: accepts its streams and datagrams until it dies.
async fn drive_link(inner: Arc<NodeInner>, link: Link) {
    let conn = link.conn.clone();
    let reason = loop {
        tokio::select! {
            r = conn.accept_bi() => match r {
                Ok((send, recv)) => inner.spawn(ask::serve_bi(inner.clone(), link.clone(), send, recv)),
                Err(e) => break e,
            },
            r = conn.accept_uni() => match r {
                Ok(recv) => inner.spawn(tell::serve_tells(inner.clone(), link.clone(), recv)),
                Err(e) => break e,
            },
            r = conn.read_datagram() => match r {
                Ok(data) => inner.on_datagram(data),
                Err(e) => break e,
            },
        }
    };
    link.traffic.link_closed(&conn);
    inner.on_link_closed(&link, &reason);
}
