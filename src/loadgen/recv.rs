//! The receiving side: a few UDP sockets that mediasoup consumers' plain
//! transports send to, demultiplexed by SSRC.
//!
//! Each socket gets a large `SO_RCVBUF` and a dedicated OS thread that reads
//! it with a timeout (so it notices [`Receiver::stop`]). Subscribers are
//! registered with [`Receiver::expect`]; for each SSRC the receiver keeps
//! packet and byte counts, RFC 3550 style loss from sequence numbers (total
//! and over a resettable window), duplicates, reordering and one-way latency
//! from the [trailer](super::media::parse_trailer) timestamp. RTCP (mediasoup
//! sends sender reports), unknown SSRCs and malformed datagrams are counted.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::media::{is_rtcp, now_since_epoch, parse_rtp, parse_trailer};
use super::stats::{
    LatencyHistogram, LatencySummary, SeqCounts, SeqOutcome, SeqTracker, SharedGaps,
};
use super::LoadgenError;

/// Largest datagram read (anything longer is truncated and counted as
/// malformed).
const MAX_DATAGRAM: usize = 65_536;

/// How to set up a [`Receiver`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Address the sockets bind to (port 0).
    pub ip: IpAddr,
    /// Number of sockets, each with its own thread (at least 1).
    pub sockets: usize,
    /// Requested `SO_RCVBUF` in bytes.
    pub recv_buffer: usize,
    /// Read timeout of the socket threads: how quickly they notice a stop.
    pub read_timeout: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sockets: 1,
            recv_buffer: 8 * 1024 * 1024,
            read_timeout: Duration::from_millis(100),
        }
    }
}

#[derive(Debug)]
struct RecvStream {
    label: String,
    seq: SeqTracker,
    packets: u64,
    bytes: u64,
    window_packets: u64,
    window_bytes: u64,
    without_timestamp: u64,
    latency: LatencyHistogram,
    window_latency: LatencyHistogram,
    first_arrival: Option<Duration>,
    last_arrival: Option<Duration>,
    /// Gap trackers every arrival also goes to (see
    /// [`Receiver::expect_observed`]).
    observers: Vec<SharedGaps>,
}

impl RecvStream {
    fn new(label: String) -> Self {
        Self {
            label,
            seq: SeqTracker::default(),
            packets: 0,
            bytes: 0,
            window_packets: 0,
            window_bytes: 0,
            without_timestamp: 0,
            latency: LatencyHistogram::default(),
            window_latency: LatencyHistogram::default(),
            first_arrival: None,
            last_arrival: None,
            observers: Vec::new(),
        }
    }

    fn on_packet(&mut self, seq: u16, len: usize, sent_at: Option<Duration>, now: Duration) {
        self.packets += 1;
        self.bytes += len as u64;
        self.window_packets += 1;
        self.window_bytes += len as u64;
        self.first_arrival.get_or_insert(now);
        self.last_arrival = Some(now);
        for o in &self.observers {
            o.lock().record(now);
        }
        let (_, outcome) = self.seq.record(seq);
        if outcome == SeqOutcome::Duplicate {
            return;
        }
        match sent_at {
            Some(sent) => {
                let latency = now.saturating_sub(sent);
                self.latency.record(latency);
                self.window_latency.record(latency);
            }
            None => self.without_timestamp += 1,
        }
    }

    fn reset_window(&mut self) {
        self.seq.reset_window();
        self.window_packets = 0;
        self.window_bytes = 0;
        self.window_latency = LatencyHistogram::default();
    }

    fn snapshot(&self, ssrc: u32, now: Duration) -> RecvStreamSnapshot {
        RecvStreamSnapshot {
            ssrc,
            label: self.label.clone(),
            packets: self.packets,
            bytes: self.bytes,
            first_seq: self.seq.first(),
            highest_seq: self.seq.highest(),
            total: self.seq.total(),
            window: self.seq.window(),
            window_packets: self.window_packets,
            window_bytes: self.window_bytes,
            without_timestamp: self.without_timestamp,
            latency: self.latency.summary(),
            window_latency: self.window_latency.summary(),
            first_arrival_s: self.first_arrival.map(|d| d.as_secs_f64()),
            last_arrival_s: self.last_arrival.map(|d| d.as_secs_f64()),
            silent_ms: self
                .last_arrival
                .map(|d| now.saturating_sub(d).as_secs_f64() * 1e3),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    streams: RwLock<HashMap<u32, Arc<Mutex<RecvStream>>>>,
    rtcp_packets: AtomicU64,
    unknown_ssrc_packets: AtomicU64,
    malformed_packets: AtomicU64,
    recv_errors: AtomicU64,
    window_started: Mutex<Option<Duration>>,
}

impl Shared {
    fn on_datagram(&self, data: &[u8], now: Duration) {
        if is_rtcp(data) {
            self.rtcp_packets.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(rtp) = parse_rtp(data) else {
            self.malformed_packets.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stream = self.streams.read().get(&rtp.ssrc).cloned();
        let Some(stream) = stream else {
            self.unknown_ssrc_packets.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let sent_at = parse_trailer(rtp.payload);
        stream.lock().on_packet(rtp.seq, data.len(), sent_at, now);
    }
}

/// Figures of one subscribed stream.
#[derive(Debug, Clone, Serialize)]
pub struct RecvStreamSnapshot {
    /// SSRC the consumer sends with.
    pub ssrc: u32,
    /// Label given to [`Receiver::expect`].
    pub label: String,
    /// Datagrams received, duplicates included.
    pub packets: u64,
    /// Bytes received (whole RTP packets), duplicates included.
    pub bytes: u64,
    /// Lowest extended sequence number seen.
    pub first_seq: Option<i64>,
    /// Highest extended sequence number seen.
    pub highest_seq: Option<i64>,
    /// Loss and ordering since the first packet.
    pub total: SeqCounts,
    /// Loss and ordering since the last window reset.
    pub window: SeqCounts,
    /// Datagrams received since the last window reset.
    pub window_packets: u64,
    /// Bytes received since the last window reset.
    pub window_bytes: u64,
    /// Packets without a loadgen timestamp trailer (no latency sample).
    pub without_timestamp: u64,
    /// One-way latency since the first packet.
    pub latency: LatencySummary,
    /// One-way latency since the last window reset.
    pub window_latency: LatencySummary,
    /// First arrival, seconds since the loadgen epoch.
    pub first_arrival_s: Option<f64>,
    /// Last arrival, seconds since the loadgen epoch.
    pub last_arrival_s: Option<f64>,
    /// Milliseconds since the last arrival at snapshot time.
    pub silent_ms: Option<f64>,
}

/// Aggregate receive figures over all streams.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecvTotals {
    /// Registered streams.
    pub streams: usize,
    /// Registered streams that have received at least one packet.
    pub active_streams: usize,
    /// Datagrams received on registered streams.
    pub packets: u64,
    /// Bytes received on registered streams.
    pub bytes: u64,
    /// Loss and ordering since each stream's first packet.
    pub total: SeqCounts,
    /// Loss and ordering since the last window reset.
    pub window: SeqCounts,
    /// `total.lost / total.expected` in percent (negative loss counts as 0).
    pub loss_pct: f64,
    /// `window.lost / window.expected` in percent.
    pub window_loss_pct: f64,
    /// Seconds since the last window reset (or since start).
    pub window_s: f64,
    /// Datagrams received since the last window reset.
    pub window_packets: u64,
    /// One-way latency over all streams.
    pub latency: LatencySummary,
    /// One-way latency over all streams since the last window reset.
    pub window_latency: LatencySummary,
    /// RTCP packets received (and ignored).
    pub rtcp_packets: u64,
    /// RTP packets whose SSRC was not registered.
    pub unknown_ssrc_packets: u64,
    /// Datagrams that were neither RTP nor RTCP.
    pub malformed_packets: u64,
    /// Socket read errors other than timeouts.
    pub recv_errors: u64,
}

/// Per-stream and aggregate figures of a [`Receiver`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiverSnapshot {
    /// Aggregates.
    pub totals: RecvTotals,
    /// Every registered stream, by SSRC.
    pub streams: Vec<RecvStreamSnapshot>,
}

fn add_counts(a: &mut SeqCounts, b: &SeqCounts) {
    a.expected += b.expected;
    a.received += b.received;
    a.lost += b.lost;
    a.duplicates += b.duplicates;
    a.out_of_order += b.out_of_order;
}

/// A running receiver: its sockets, threads and per-SSRC statistics. The
/// threads stop on [`stop`](Self::stop) or drop.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    addrs: Vec<SocketAddr>,
    recv_buffer: usize,
    threads: Vec<JoinHandle<()>>,
}

/// A UDP socket on `config.ip` (port 0) with `config.recv_buffer` asked
/// for; returns it with the buffer size the kernel granted.
pub(super) fn bind_socket(config: &ReceiverConfig) -> Result<(UdpSocket, usize), LoadgenError> {
    let addr = SocketAddr::new(config.ip, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(LoadgenError::Socket)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(config.recv_buffer);
    let effective = socket.recv_buffer_size().map_err(LoadgenError::Socket)?;
    socket
        .bind(&SockAddr::from(addr))
        .map_err(|source| LoadgenError::Bind { addr, source })?;
    let socket: UdpSocket = socket.into();
    socket
        .set_read_timeout(Some(config.read_timeout.max(Duration::from_millis(1))))
        .map_err(LoadgenError::Socket)?;
    Ok((socket, effective))
}

fn read_loop(socket: UdpSocket, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let now = now_since_epoch();
                match buf.get(..n) {
                    Some(data) if n < MAX_DATAGRAM => shared.on_datagram(data, now),
                    _ => {
                        shared.malformed_packets.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                shared.recv_errors.fetch_add(1, Ordering::Relaxed);
                // Do not spin on a persistent error.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Receiver {
    /// Binds the sockets and starts one reading thread per socket.
    pub fn start(config: ReceiverConfig) -> Result<Self, LoadgenError> {
        if config.sockets == 0 {
            return Err(LoadgenError::Config("receiver needs at least one socket"));
        }
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut receiver = Self {
            shared,
            stop,
            addrs: Vec::new(),
            recv_buffer: usize::MAX,
            threads: Vec::new(),
        };
        for i in 0..config.sockets {
            // On error, `receiver` drops and stops the threads started so far.
            let (socket, effective) = bind_socket(&config)?;
            receiver
                .addrs
                .push(socket.local_addr().map_err(LoadgenError::Socket)?);
            receiver.recv_buffer = receiver.recv_buffer.min(effective);
            let (shared, stop) = (receiver.shared.clone(), receiver.stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-recv-{i}"))
                .spawn(move || read_loop(socket, shared, stop))
                .map_err(LoadgenError::Spawn)?;
            receiver.threads.push(handle);
        }
        *receiver.shared.window_started.lock() = Some(now_since_epoch());
        Ok(receiver)
    }

    /// The bound addresses, one per socket: where consumers' plain
    /// transports should `connect` to.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Effective `SO_RCVBUF` (the smallest over the sockets; Linux reports
    /// twice the usable size, capped by `net.core.rmem_max`).
    pub fn recv_buffer_size(&self) -> usize {
        self.recv_buffer
    }

    /// Registers a stream: packets with this SSRC are counted under `label`.
    pub fn expect(&self, ssrc: u32, label: impl Into<String>) -> Result<(), LoadgenError> {
        self.expect_observed(ssrc, label, Vec::new())
    }

    /// Like [`expect`](Self::expect), and every arrival on the stream is
    /// also recorded in each of `observers` (shared with other streams, to
    /// follow a media stream across the consumers that carry it).
    pub fn expect_observed(
        &self,
        ssrc: u32,
        label: impl Into<String>,
        observers: Vec<SharedGaps>,
    ) -> Result<(), LoadgenError> {
        let mut streams = self.shared.streams.write();
        if streams.contains_key(&ssrc) {
            return Err(LoadgenError::DuplicateSsrc(ssrc));
        }
        let mut stream = RecvStream::new(label.into());
        stream.observers = observers;
        streams.insert(ssrc, Arc::new(Mutex::new(stream)));
        Ok(())
    }

    /// Unregisters a stream; its packets count as unknown from now on.
    /// Returns whether it was registered.
    pub fn forget(&self, ssrc: u32) -> bool {
        self.shared.streams.write().remove(&ssrc).is_some()
    }

    /// Starts a new measurement window on every stream: window loss counts
    /// only sequence numbers above the highest seen now.
    pub fn reset_window(&self) {
        let streams: Vec<_> = self.shared.streams.read().values().cloned().collect();
        for s in streams {
            s.lock().reset_window();
        }
        *self.shared.window_started.lock() = Some(now_since_epoch());
    }

    /// Current per-stream and aggregate figures.
    pub fn snapshot(&self) -> ReceiverSnapshot {
        let now = now_since_epoch();
        let mut streams: Vec<(u32, Arc<Mutex<RecvStream>>)> = self
            .shared
            .streams
            .read()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        streams.sort_by_key(|(ssrc, _)| *ssrc);
        let mut totals = RecvTotals {
            streams: streams.len(),
            ..RecvTotals::default()
        };
        let mut latency = LatencyHistogram::default();
        let mut window_latency = LatencyHistogram::default();
        let mut out = Vec::with_capacity(streams.len());
        for (ssrc, stream) in streams {
            let s = stream.lock();
            latency.merge(&s.latency);
            window_latency.merge(&s.window_latency);
            let snap = s.snapshot(ssrc, now);
            drop(s);
            totals.active_streams += usize::from(snap.packets > 0);
            totals.packets += snap.packets;
            totals.bytes += snap.bytes;
            totals.window_packets += snap.window_packets;
            add_counts(&mut totals.total, &snap.total);
            add_counts(&mut totals.window, &snap.window);
            out.push(snap);
        }
        totals.loss_pct = totals.total.loss_pct();
        totals.window_loss_pct = totals.window.loss_pct();
        totals.window_s = self
            .shared
            .window_started
            .lock()
            .map_or(0.0, |t| now.saturating_sub(t).as_secs_f64());
        totals.latency = latency.summary();
        totals.window_latency = window_latency.summary();
        let sh = &self.shared;
        totals.rtcp_packets = sh.rtcp_packets.load(Ordering::Relaxed);
        totals.unknown_ssrc_packets = sh.unknown_ssrc_packets.load(Ordering::Relaxed);
        totals.malformed_packets = sh.malformed_packets.load(Ordering::Relaxed);
        totals.recv_errors = sh.recv_errors.load(Ordering::Relaxed);
        ReceiverSnapshot {
            totals,
            streams: out,
        }
    }

    /// Polls [`snapshot`](Self::snapshot) every few milliseconds until
    /// `done` holds (returns `true`) or `timeout` passes (returns `false`).
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&ReceiverSnapshot) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.snapshot()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops and joins the reading threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16, sent: Duration) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        let at = p.len() - 12;
        super::super::media::write_trailer(&mut p[at..], sent);
        p
    }

    #[test]
    fn demux_counts_unknown_rtcp_and_garbage() {
        let shared = Shared::default();
        shared
            .streams
            .write()
            .insert(7, Arc::new(Mutex::new(RecvStream::new("a".into()))));
        let t0 = Duration::from_secs(1);
        shared.on_datagram(&rtp(7, 1, t0), t0 + Duration::from_millis(3));
        shared.on_datagram(&rtp(7, 3, t0), t0 + Duration::from_millis(5));
        shared.on_datagram(&rtp(8, 1, t0), t0);
        shared.on_datagram(&[0x80, 200, 0, 6, 0, 0, 0, 1], t0);
        shared.on_datagram(&[1, 2, 3], t0);
        shared.on_datagram(&[], t0);
        assert_eq!(shared.unknown_ssrc_packets.load(Ordering::Relaxed), 1);
        assert_eq!(shared.rtcp_packets.load(Ordering::Relaxed), 1);
        assert_eq!(shared.malformed_packets.load(Ordering::Relaxed), 2);
        let s = shared.streams.read()[&7].lock().snapshot(7, t0);
        assert_eq!(s.packets, 2);
        assert_eq!(s.total.expected, 3);
        assert_eq!(s.total.lost, 1);
        assert_eq!(s.latency.samples, 2);
        assert!((s.latency.max_ms - 5.0).abs() < 0.01, "{:?}", s.latency);
    }

    #[test]
    fn observers_see_every_arrival_of_their_streams() {
        let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
        let both = SharedGaps::default();
        let one = SharedGaps::default();
        receiver
            .expect_observed(1, "a", vec![both.clone(), one.clone()])
            .expect("new");
        receiver
            .expect_observed(2, "b", vec![both.clone()])
            .expect("new");
        let sh = &receiver.shared;
        let t = Duration::from_millis;
        sh.on_datagram(&rtp(1, 1, t(0)), t(100));
        sh.on_datagram(&rtp(2, 1, t(0)), t(150));
        sh.on_datagram(&rtp(1, 2, t(0)), t(400));
        sh.on_datagram(&rtp(3, 1, t(0)), t(500));
        let b = both.lock().summary(t(400)).expect("arrivals");
        assert_eq!((b.arrivals, b.max_gap), (3, t(250)));
        let o = one.lock().summary(t(400)).expect("arrivals");
        assert_eq!((o.arrivals, o.max_gap), (2, t(300)));
        receiver.stop();
    }
}
