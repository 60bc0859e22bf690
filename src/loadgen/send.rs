//! The sending side: many publisher streams, each with its own UDP socket,
//! paced by a few OS threads.
//!
//! Each stream's socket is bound to the configured IP (port 0) and connected
//! to its destination (a mediasoup plain transport with comedia, which
//! learns our address from the first packet and sends RTCP back to it). A
//! pacing thread wakes when the next packet of its streams is due (at most
//! every [`SenderConfig::max_sleep`]), sends what is due and, every
//! [`SenderConfig::rtcp_poll_interval`], drains RTCP from the sockets: a PLI
//! or FIR for a stream's SSRC makes its next frame a keyframe.
//!
//! A stream can be [redirected](Sender::redirect) to a new destination (a
//! publisher that joined again elsewhere) from a new socket, keeping its
//! generator: SSRC, sequence numbers and timestamps continue. For a while
//! its packets also still go to the old destination, from the old socket
//! (make-before-break: the old producer keeps its subscribers fed until
//! they have moved).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::media::{
    is_rtcp, keyframe_requests, now_since_epoch, MediaGenerator, StreamKind, StreamSpec,
};
use super::LoadgenError;

/// Datagrams drained per socket per RTCP sweep, so one chatty socket
/// cannot starve the pacing.
const RTCP_READS_PER_SWEEP: usize = 32;

/// How to set up a [`Sender`].
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Address publisher sockets bind to (port 0).
    pub bind_ip: IpAddr,
    /// Pacing threads (at least 1); streams are spread over them.
    pub threads: usize,
    /// Requested `SO_SNDBUF` of each publisher socket (`None`: OS default).
    pub send_buffer: Option<usize>,
    /// Longest a pacing thread sleeps between sweeps.
    pub max_sleep: Duration,
    /// How often each socket is checked for RTCP.
    pub rtcp_poll_interval: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            threads: 1,
            send_buffer: None,
            max_sleep: Duration::from_millis(5),
            rtcp_poll_interval: Duration::from_millis(10),
        }
    }
}

/// Live counters of one publisher stream, updated by its pacing thread.
#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    frames: AtomicU64,
    keyframes: AtomicU64,
    skipped_frames: AtomicU64,
    keyframe_requests: AtomicU64,
    rtcp_packets: AtomicU64,
    send_errors: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    /// The pacing thread that owns the stream.
    thread: usize,
    label: String,
    kind: StreamKind,
    local: SocketAddr,
    dest: SocketAddr,
    counters: Arc<Counters>,
}

/// One stream as its pacing thread owns it.
#[derive(Debug)]
struct Publisher {
    generator: MediaGenerator,
    socket: UdpSocket,
    /// The socket of a former destination, still sent to until the time
    /// given (since the epoch); neither counted nor checked for errors.
    mirror: Option<(UdpSocket, Duration)>,
    counters: Arc<Counters>,
}

impl Publisher {
    fn send_due(&mut self, now: Duration) {
        if self.mirror.as_ref().is_some_and(|(_, until)| now >= *until) {
            self.mirror = None;
        }
        let Self {
            generator,
            socket,
            mirror,
            counters,
        } = self;
        let (mut packets, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        generator.poll(now, |pkt| {
            if let Some((old, _)) = mirror {
                let _ = old.send(pkt);
            }
            match socket.send(pkt) {
                Ok(n) => {
                    packets += 1;
                    bytes += n as u64;
                }
                Err(_) => errors += 1,
            }
        });
        if packets + errors == 0 {
            return;
        }
        counters.packets.fetch_add(packets, Ordering::Relaxed);
        counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        counters.send_errors.fetch_add(errors, Ordering::Relaxed);
        counters.frames.store(generator.frames(), Ordering::Relaxed);
        counters
            .keyframes
            .store(generator.keyframes(), Ordering::Relaxed);
        counters
            .skipped_frames
            .store(generator.skipped_frames(), Ordering::Relaxed);
    }

    /// Reads RTCP from the socket and the mirror's: a keyframe request
    /// from the old destination's subscribers counts as well.
    fn read_rtcp(&mut self, buf: &mut [u8], ssrcs: &mut Vec<u32>) {
        let ssrc = self.generator.spec().ssrc;
        let hits: u64 = std::iter::once(&self.socket)
            .chain(self.mirror.as_ref().map(|(old, _)| old))
            .map(|s| read_keyframe_requests(s, &self.counters, buf, ssrcs, ssrc))
            .sum();
        if hits > 0 {
            self.generator.request_keyframe();
            self.counters
                .keyframe_requests
                .fetch_add(hits, Ordering::Relaxed);
        }
    }
}

/// Drains a publisher socket's RTCP; returns the PLI and FIR for `ssrc`.
fn read_keyframe_requests(
    socket: &UdpSocket,
    counters: &Counters,
    buf: &mut [u8],
    ssrcs: &mut Vec<u32>,
    ssrc: u32,
) -> u64 {
    let mut hits = 0;
    for _ in 0..RTCP_READS_PER_SWEEP {
        let n = match socket.recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // WouldBlock, or an ICMP error reported on the socket.
            Err(_) => break,
        };
        let Some(data) = buf.get(..n) else { break };
        if !is_rtcp(data) {
            continue;
        }
        counters.rtcp_packets.fetch_add(1, Ordering::Relaxed);
        ssrcs.clear();
        keyframe_requests(data, ssrcs);
        hits += ssrcs.iter().filter(|s| **s == ssrc).count() as u64;
    }
    hits
}

enum Command {
    Add(Box<Publisher>),
    Remove(u32),
    /// Send stream `ssrc` from `socket` from now on, and from its current
    /// socket too until `mirror_until` (since the epoch).
    Redirect {
        ssrc: u32,
        socket: UdpSocket,
        mirror_until: Duration,
    },
}

fn pace_loop(
    rx: mpsc::Receiver<Command>,
    stop: Arc<AtomicBool>,
    max_sleep: Duration,
    rtcp_every: Duration,
) {
    let mut publishers: Vec<Publisher> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut ssrcs = Vec::new();
    let mut next_rtcp = Duration::ZERO;
    let mut timeout = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        // Sleeping on the channel wakes up at once for new streams.
        let mut cmd = match rx.recv_timeout(timeout) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Some(c) = cmd {
            match c {
                Command::Add(p) => publishers.push(*p),
                Command::Remove(ssrc) => publishers.retain(|p| p.generator.spec().ssrc != ssrc),
                Command::Redirect {
                    ssrc,
                    socket,
                    mirror_until,
                } => {
                    if let Some(p) = publishers
                        .iter_mut()
                        .find(|p| p.generator.spec().ssrc == ssrc)
                    {
                        let old = std::mem::replace(&mut p.socket, socket);
                        p.mirror = Some((old, mirror_until));
                    }
                }
            }
            cmd = rx.try_recv().ok();
        }
        let mut now = now_since_epoch();
        if now >= next_rtcp {
            for p in &mut publishers {
                p.read_rtcp(&mut buf, &mut ssrcs);
            }
            next_rtcp = now + rtcp_every;
        }
        let mut next_due = now + max_sleep;
        for p in &mut publishers {
            if p.generator.next_due() <= now {
                // Stamp with the time of sending, not of the sweep's start.
                now = now_since_epoch();
                p.send_due(now);
            }
            next_due = next_due.min(p.generator.next_due());
        }
        next_due = next_due.min(next_rtcp);
        timeout = next_due.saturating_sub(now_since_epoch());
    }
}

struct PaceThread {
    tx: mpsc::Sender<Command>,
    handle: JoinHandle<()>,
}

impl std::fmt::Debug for PaceThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaceThread")
            .field("thread", &self.handle.thread().name())
            .finish()
    }
}

/// Figures of one publisher stream.
#[derive(Debug, Clone, Serialize)]
pub struct SendStreamSnapshot {
    /// SSRC.
    pub ssrc: u32,
    /// Label given to [`Sender::add_stream`].
    pub label: String,
    /// Codec.
    pub kind: StreamKind,
    /// The stream's local socket address.
    pub local: SocketAddr,
    /// Where it sends to.
    pub dest: SocketAddr,
    /// RTP packets sent.
    pub packets: u64,
    /// RTP bytes sent (whole packets).
    pub bytes: u64,
    /// Frames produced.
    pub frames: u64,
    /// Keyframes produced (VP8), periodic and requested.
    pub keyframes: u64,
    /// Frames skipped because the pacing thread ran late.
    pub skipped_frames: u64,
    /// PLI and FIR requests received for this SSRC.
    pub keyframe_requests: u64,
    /// RTCP packets received on the socket.
    pub rtcp_packets: u64,
    /// Failed sends (packets dropped).
    pub send_errors: u64,
}

/// Aggregate send figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendTotals {
    /// Streams.
    pub streams: usize,
    /// RTP packets sent.
    pub packets: u64,
    /// RTP bytes sent.
    pub bytes: u64,
    /// Frames produced.
    pub frames: u64,
    /// Keyframes produced.
    pub keyframes: u64,
    /// Frames skipped because a pacing thread ran late.
    pub skipped_frames: u64,
    /// PLI and FIR requests received.
    pub keyframe_requests: u64,
    /// RTCP packets received.
    pub rtcp_packets: u64,
    /// Failed sends.
    pub send_errors: u64,
}

/// Per-stream and aggregate figures of a [`Sender`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct SenderSnapshot {
    /// Aggregates.
    pub totals: SendTotals,
    /// Every stream, by SSRC.
    pub streams: Vec<SendStreamSnapshot>,
}

/// A running sender: its pacing threads and streams. The threads stop (and
/// the sockets close) on [`stop`](Self::stop) or drop.
#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    stop: Arc<AtomicBool>,
    threads: Vec<PaceThread>,
    next_thread: AtomicUsize,
    streams: Mutex<HashMap<u32, Entry>>,
}

impl Sender {
    /// Starts the pacing threads (with no streams yet).
    pub fn start(config: SenderConfig) -> Result<Self, LoadgenError> {
        if config.threads == 0 {
            return Err(LoadgenError::Config("sender needs at least one thread"));
        }
        let mut sender = Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            next_thread: AtomicUsize::new(0),
            streams: Mutex::new(HashMap::new()),
            config,
        };
        for i in 0..sender.config.threads {
            let (tx, rx) = mpsc::channel();
            let stop = sender.stop.clone();
            let (max_sleep, rtcp) = (
                sender.config.max_sleep.max(Duration::from_micros(100)),
                sender.config.rtcp_poll_interval,
            );
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-send-{i}"))
                .spawn(move || pace_loop(rx, stop, max_sleep, rtcp))
                .map_err(LoadgenError::Spawn)?;
            sender.threads.push(PaceThread { tx, handle });
        }
        Ok(sender)
    }

    fn socket(&self, dest: SocketAddr) -> Result<UdpSocket, LoadgenError> {
        let addr = SocketAddr::new(self.config.bind_ip, 0);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(LoadgenError::Socket)?;
        if let Some(size) = self.config.send_buffer {
            socket
                .set_send_buffer_size(size)
                .map_err(LoadgenError::Socket)?;
        }
        socket
            .bind(&SockAddr::from(addr))
            .map_err(|source| LoadgenError::Bind { addr, source })?;
        socket
            .connect(&SockAddr::from(dest))
            .map_err(|source| LoadgenError::Connect { addr: dest, source })?;
        socket.set_nonblocking(true).map_err(LoadgenError::Socket)?;
        Ok(socket.into())
    }

    /// Adds a stream sending to `dest` from a new socket; returns the
    /// socket's local address. Its first frame goes out within one frame
    /// interval (streams are spread randomly over it).
    pub fn add_stream(
        &self,
        spec: StreamSpec,
        label: impl Into<String>,
        dest: SocketAddr,
    ) -> Result<SocketAddr, LoadgenError> {
        let ssrc = spec.ssrc;
        let mut streams = self.streams.lock();
        if streams.contains_key(&ssrc) {
            return Err(LoadgenError::DuplicateSsrc(ssrc));
        }
        let socket = self.socket(dest)?;
        let local = socket.local_addr().map_err(LoadgenError::Socket)?;
        let interval = spec.frame_interval().as_nanos().max(1);
        let jitter = u64::try_from(u128::from(rand::random::<u64>()) % interval).unwrap_or(0);
        let start = now_since_epoch() + Duration::from_nanos(jitter);
        let counters = Arc::new(Counters::default());
        let kind = spec.kind;
        let publisher = Publisher {
            generator: MediaGenerator::with_random_start(spec, start),
            socket,
            mirror: None,
            counters: counters.clone(),
        };
        let i = self.next_thread.fetch_add(1, Ordering::Relaxed) % self.threads.len();
        self.threads
            .get(i)
            .ok_or(LoadgenError::Stopped)?
            .tx
            .send(Command::Add(Box::new(publisher)))
            .map_err(|_| LoadgenError::Stopped)?;
        streams.insert(
            ssrc,
            Entry {
                thread: i,
                label: label.into(),
                kind,
                local,
                dest,
                counters,
            },
        );
        Ok(local)
    }

    /// Sends stream `ssrc` to `dest` from a new socket from now on, with
    /// the same generator (SSRC, sequence numbers and timestamps go on);
    /// returns the new socket's address. The old socket keeps getting every
    /// packet too for `mirror_for` (zero: not at all), then closes.
    pub fn redirect(
        &self,
        ssrc: u32,
        dest: SocketAddr,
        mirror_for: Duration,
    ) -> Result<SocketAddr, LoadgenError> {
        let mut streams = self.streams.lock();
        let entry = streams
            .get_mut(&ssrc)
            .ok_or(LoadgenError::Config("redirect of an unknown stream"))?;
        let socket = self.socket(dest)?;
        let local = socket.local_addr().map_err(LoadgenError::Socket)?;
        self.threads
            .get(entry.thread)
            .ok_or(LoadgenError::Stopped)?
            .tx
            .send(Command::Redirect {
                ssrc,
                socket,
                mirror_until: now_since_epoch() + mirror_for,
            })
            .map_err(|_| LoadgenError::Stopped)?;
        entry.local = local;
        entry.dest = dest;
        Ok(local)
    }

    /// Stops a stream and closes its socket; its figures are dropped.
    /// Returns whether it existed.
    pub fn remove_stream(&self, ssrc: u32) -> bool {
        if self.streams.lock().remove(&ssrc).is_none() {
            return false;
        }
        for t in &self.threads {
            let _ = t.tx.send(Command::Remove(ssrc));
        }
        true
    }

    /// Current per-stream and aggregate figures.
    pub fn snapshot(&self) -> SenderSnapshot {
        let streams = self.streams.lock();
        let mut out: Vec<SendStreamSnapshot> = streams
            .iter()
            .map(|(ssrc, e)| {
                let c = &e.counters;
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                SendStreamSnapshot {
                    ssrc: *ssrc,
                    label: e.label.clone(),
                    kind: e.kind,
                    local: e.local,
                    dest: e.dest,
                    packets: get(&c.packets),
                    bytes: get(&c.bytes),
                    frames: get(&c.frames),
                    keyframes: get(&c.keyframes),
                    skipped_frames: get(&c.skipped_frames),
                    keyframe_requests: get(&c.keyframe_requests),
                    rtcp_packets: get(&c.rtcp_packets),
                    send_errors: get(&c.send_errors),
                }
            })
            .collect();
        drop(streams);
        out.sort_by_key(|s| s.ssrc);
        let mut t = SendTotals {
            streams: out.len(),
            ..SendTotals::default()
        };
        for s in &out {
            t.packets += s.packets;
            t.bytes += s.bytes;
            t.frames += s.frames;
            t.keyframes += s.keyframes;
            t.skipped_frames += s.skipped_frames;
            t.keyframe_requests += s.keyframe_requests;
            t.rtcp_packets += s.rtcp_packets;
            t.send_errors += s.send_errors;
        }
        SenderSnapshot {
            totals: t,
            streams: out,
        }
    }

    /// Stops and joins the pacing threads; every socket closes.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            // Dropping the channel wakes the thread at once.
            drop(t.tx);
            let _ = t.handle.join();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::recv::{Receiver, ReceiverConfig};
    use std::time::Instant;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn sender() -> Sender {
        Sender::start(SenderConfig {
            bind_ip: LOCALHOST,
            threads: 2,
            ..SenderConfig::default()
        })
        .expect("sender starts")
    }

    fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !f() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn loopback_send_and_receive() {
        let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver starts");
        assert!(receiver.recv_buffer_size() > 0);
        let dest = receiver.local_addrs()[0];
        let sender = sender();
        let specs = [
            StreamSpec::vp8(1001),
            StreamSpec::vp8(1002),
            StreamSpec::opus(2001),
            StreamSpec::opus(2002),
        ];
        for spec in &specs {
            receiver
                .expect(spec.ssrc, format!("s{}", spec.ssrc))
                .expect("new ssrc");
        }
        assert!(matches!(
            receiver.expect(1001, "again"),
            Err(LoadgenError::DuplicateSsrc(1001))
        ));
        for spec in specs {
            let label = format!("p{}", spec.ssrc);
            sender.add_stream(spec, label, dest).expect("stream added");
        }
        // Unknown SSRC traffic is counted, not fatal.
        sender
            .add_stream(StreamSpec::opus(9999), "stranger", dest)
            .expect("stream added");

        // Every stream flowing; then measure a ~1 s steady-state window.
        assert!(receiver.wait_until(Duration::from_secs(5), |s| s.totals.active_streams == 4));
        receiver.reset_window();
        let started = Instant::now();
        assert!(receiver.wait_until(Duration::from_secs(10), |s| {
            s.totals.window_s >= 1.0 && s.streams.iter().all(|st| st.window.expected >= 40)
        }));
        let r = receiver.snapshot();
        let s = sender.snapshot();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(s.totals.streams, 5);
        assert_eq!(s.totals.send_errors, 0);
        assert!(r.totals.unknown_ssrc_packets > 0);
        assert_eq!(r.totals.malformed_packets, 0);
        assert_eq!(r.totals.window.lost, 0, "{:?}", r.totals);
        assert_eq!(r.totals.window.duplicates, 0);
        assert!(r.totals.latency.samples > 0);
        assert!(r.totals.latency.p50_ms < 50.0, "{:?}", r.totals.latency);
        assert!(r.totals.latency.max_ms < 1000.0, "{:?}", r.totals.latency);
        // 30 VP8 frames of 3 packets (keyframes 11) and 50 Opus packets a second.
        for st in &r.streams {
            let per_s = st.window.received as f64 / r.totals.window_s;
            let want = if st.ssrc < 2000 { 80.0 } else { 45.0 };
            assert!(per_s > want, "{}: {per_s} packets/s", st.label);
        }

        sender.stop();
        receiver.stop();
    }

    #[test]
    fn pli_and_fir_trigger_keyframes() {
        // A fake SFU socket: receives the RTP, answers with RTCP.
        let sfu = UdpSocket::bind((LOCALHOST, 0)).expect("bind");
        sfu.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let sender = sender();
        let local = sender
            .add_stream(StreamSpec::vp8(0xabc), "v", sfu.local_addr().expect("addr"))
            .expect("stream");
        let mut buf = [0u8; 2048];
        let (n, from) = sfu.recv_from(&mut buf).expect("first packet");
        assert_eq!(from, local);
        assert!(n > 12);
        let keyframes = |s: &Sender| s.snapshot().streams[0].keyframes;
        assert!(wait(Duration::from_secs(5), || keyframes(&sender) == 1));

        // PLI for another SSRC: ignored. PLI for ours: a keyframe.
        let pli = |ssrc: u32| {
            let mut p = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p
        };
        sfu.send_to(&pli(0xdef), from).expect("send");
        sfu.send_to(&pli(0xabc), from).expect("send");
        assert!(wait(Duration::from_secs(5), || {
            let s = sender.snapshot().streams[0].clone();
            s.keyframe_requests == 1 && s.keyframes == 2 && s.rtcp_packets == 2
        }));
        // FIR in a compound packet with a receiver report.
        let mut fir = vec![0x80, 201, 0, 1, 0, 0, 0, 1];
        fir.extend_from_slice(&[0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]);
        fir.extend_from_slice(&[0, 0, 0x0a, 0xbc, 1, 0, 0, 0]);
        sfu.send_to(&fir, from).expect("send");
        assert!(wait(Duration::from_secs(5), || {
            let s = sender.snapshot().streams[0].clone();
            s.keyframe_requests == 2 && s.keyframes == 3
        }));
        // Garbage does not hurt.
        sfu.send_to(&[0xff; 3], from).expect("send");
        sfu.send_to(&[0x80, 206, 0xff, 0xff], from).expect("send");

        assert!(sender.remove_stream(0xabc));
        assert!(!sender.remove_stream(0xabc));
        assert_eq!(sender.snapshot().totals.streams, 0);
    }

    #[test]
    fn redirect_keeps_the_stream_and_mirrors_for_a_while() {
        use crate::loadgen::media::parse_rtp;
        let old = UdpSocket::bind((LOCALHOST, 0)).expect("bind");
        let new = UdpSocket::bind((LOCALHOST, 0)).expect("bind");
        for s in [&old, &new] {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
        }
        let seq_of = |s: &UdpSocket| {
            let mut buf = [0u8; 2048];
            let n = s.recv(&mut buf).ok()?;
            parse_rtp(&buf[..n]).map(|v| (v.ssrc, v.seq))
        };
        let sender = sender();
        let first = sender
            .add_stream(StreamSpec::opus(77), "a", old.local_addr().expect("addr"))
            .expect("stream");
        let (_, before) = seq_of(&old).expect("a packet at the old place");
        assert!(matches!(
            sender.redirect(78, new.local_addr().expect("addr"), Duration::ZERO),
            Err(LoadgenError::Config(_))
        ));
        let moved = sender
            .redirect(
                77,
                new.local_addr().expect("addr"),
                Duration::from_millis(300),
            )
            .expect("redirect");
        assert_ne!(moved, first, "a new socket");
        let (ssrc, after) = seq_of(&new).expect("a packet at the new place");
        assert_eq!(ssrc, 77);
        // The same generator: sequence numbers go on (within a few packets).
        assert!(after.wrapping_sub(before) < 50, "{before} -> {after}");
        // The old place still gets packets for a while, then none.
        assert!(seq_of(&old).is_some());
        let deadline = Instant::now() + Duration::from_secs(5);
        while seq_of(&old).is_some() {
            assert!(Instant::now() < deadline, "the mirror stops");
        }
        assert!(seq_of(&new).is_some(), "the new place keeps getting them");
        let s = sender.snapshot().streams[0].clone();
        assert_eq!((s.dest, s.local), (new.local_addr().expect("addr"), moved));
        assert_eq!(s.send_errors, 0);
    }
}
