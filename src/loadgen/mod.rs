//! The packet engine of `mafalda loadgen`: real RTP over real UDP sockets,
//! to load an SFU the way browsers would, and measure what comes out.
//!
//! # How the parts fit
//!
//! - [`media`](crate::loadgen::media) — synthetic Opus and VP8 streams (pure logic): RTP
//!   packetisation with valid VP8 payload descriptors and keyframe headers,
//!   a send-time trailer in every payload, RTCP PLI/FIR parsing, and the
//!   mediasoup [`RtpParameters`](mediasoup::types::rtp_parameters::RtpParameters)
//!   a publisher produces with and the
//!   [`RtpCapabilities`](mediasoup::types::rtp_parameters::RtpCapabilities)
//!   a subscriber consumes with.
//! - [`send`](crate::loadgen::send) — a [`Sender`](crate::loadgen::Sender): many publisher streams, one UDP socket each,
//!   paced by a few threads, answering PLI/FIR with keyframes. Each socket
//!   sends to a mediasoup `PlainTransport` (comedia, rtcp-mux).
//! - [`recv`](crate::loadgen::recv) — a [`Receiver`](crate::loadgen::Receiver): a few UDP sockets that consumers'
//!   plain transports are connected to, demultiplexed by SSRC, measuring
//!   loss (from sequence numbers), reordering and one-way latency.
//! - [`stats`](crate::loadgen::stats) — the sequence tracker and latency histogram behind it.
//! - [`Report`](crate::loadgen::Report) — sender and receiver aggregates, human-readable or JSON.
//! - [`target`](crate::loadgen::target) — what is loaded: a room behind the
//!   [`sfu`](crate::sfu) facade in process, a node over the signalling API,
//!   or one plain mediasoup router (the baseline without Mafalda).
//! - [`scenario`](crate::loadgen::scenario) — room shapes (broadcast, mesh),
//!   measured windows (loss, latency, worker CPU) and the capacity ramp.
//! - [`tokens`](crate::loadgen::tokens) — access tokens for its signalling
//!   participants (minted with `--auth-key`, or a dev node's `/api/dev-token`).
//! - [`soak`](crate::loadgen::soak) — a room kept alive over several nodes
//!   while they die or drain: participants that follow their
//!   [`events`](crate::loadgen::events) and rejoin elsewhere, and the media
//!   gaps each subscriber saw.
//!
//! Sender and receiver live in one process and share the clock
//! [`now_since_epoch`](crate::loadgen::media::now_since_epoch), so the latency in the trailer is one-way.
//!
//! ```no_run
//! use mafalda::loadgen::{Receiver, ReceiverConfig, Report, Sender, SenderConfig, StreamSpec};
//! # fn main() -> Result<(), mafalda::loadgen::LoadgenError> {
//! let receiver = Receiver::start(ReceiverConfig::default())?;
//! let sender = Sender::start(SenderConfig::default())?;
//! // Normally: the SFU forwards, and consumers get their own SSRCs.
//! receiver.expect(1, "alice/video")?;
//! sender.add_stream(StreamSpec::vp8(1), "alice/video", receiver.local_addrs()[0])?;
//! receiver.reset_window();
//! println!("{}", Report::new(&sender.snapshot(), &receiver.snapshot()));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;

use serde::Serialize;

pub mod events;
pub mod media;
pub mod recv;
pub mod scenario;
pub mod send;
mod signalling_client;
pub mod soak;
pub mod stats;
pub mod target;
pub mod tokens;

pub use media::{
    now_since_epoch, parse_trailer, rtp_parameters, subscriber_rtp_capabilities, MediaGenerator,
    StreamKind, StreamSpec,
};
pub use recv::{Receiver, ReceiverConfig, ReceiverSnapshot, RecvStreamSnapshot, RecvTotals};
pub use send::{SendStreamSnapshot, SendTotals, Sender, SenderConfig, SenderSnapshot};
pub use stats::{LatencyHistogram, LatencySummary, SeqCounts, SeqTracker};

/// What can go wrong setting up or driving the load generator. Nothing a
/// peer sends produces an error: bad packets are counted instead.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// Binding a UDP socket failed.
    #[error("binding a UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Connecting a publisher socket to its destination failed.
    #[error("connecting a UDP socket to {addr}: {source}")]
    Connect {
        /// The destination.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Creating or configuring a socket failed.
    #[error("configuring a UDP socket: {0}")]
    Socket(#[source] io::Error),
    /// Spawning a thread failed.
    #[error("spawning a loadgen thread: {0}")]
    Spawn(#[source] io::Error),
    /// The SSRC is already registered.
    #[error("SSRC {0} is already in use")]
    DuplicateSsrc(u32),
    /// The worker threads are gone.
    #[error("the loadgen threads have stopped")]
    Stopped,
    /// The configuration cannot work.
    #[error("invalid loadgen configuration: {0}")]
    Config(&'static str),
}

/// Sender and receiver aggregates of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the publishers sent.
    pub sent: SendTotals,
    /// What the subscribers received.
    pub received: RecvTotals,
}

impl Report {
    /// Aggregates from the two snapshots.
    pub fn new(sender: &SenderSnapshot, receiver: &ReceiverSnapshot) -> Self {
        Self {
            sent: sender.totals.clone(),
            received: receiver.totals.clone(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sent;
        let r = &self.received;
        let mb = |b: u64| b as f64 / 1e6;
        writeln!(
            f,
            "sent:     {} packets, {:.1} MB from {} streams; {} send errors, {} skipped frames",
            s.packets,
            mb(s.bytes),
            s.streams,
            s.send_errors,
            s.skipped_frames
        )?;
        writeln!(
            f,
            "          {} keyframe requests (PLI/FIR), {} keyframes",
            s.keyframe_requests, s.keyframes
        )?;
        writeln!(
            f,
            "received: {} packets, {:.1} MB on {}/{} streams; {} RTCP, {} unknown SSRC, {} malformed",
            r.packets,
            mb(r.bytes),
            r.active_streams,
            r.streams,
            r.rtcp_packets,
            r.unknown_ssrc_packets,
            r.malformed_packets
        )?;
        writeln!(
            f,
            "loss:     {:.3} % overall ({} of {}), {:.3} % in the last {:.1} s ({} of {})",
            r.loss_pct,
            r.total.lost.max(0),
            r.total.expected,
            r.window_loss_pct,
            r.window_s,
            r.window.lost.max(0),
            r.window.expected
        )?;
        let l = &r.latency;
        let w = &r.window_latency;
        write!(
            f,
            "latency:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (window: p50 {:.2}, p99 {:.2}, max {:.2})",
            l.p50_ms, l.p99_ms, l.max_ms, w.p50_ms, w.p99_ms, w.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_displays_and_serialises() {
        let report = Report::new(&SenderSnapshot::default(), &ReceiverSnapshot::default());
        let text = report.to_string();
        assert!(text.contains("loss:"), "{text}");
        assert!(text.contains("p99"), "{text}");
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["received"]["loss_pct"], serde_json::json!(0.0));
        assert!(json["sent"]["keyframe_requests"].is_u64());
    }

    /// The whole path through a real mediasoup worker: a VP8 and an Opus
    /// publisher into comedia plain transports, consumers' plain transports
    /// connected to the receiver. mediasoup's keyframe request reaches the
    /// sender, video flows (so the worker saw our keyframe), nothing is lost.
    #[test]
    fn through_a_mediasoup_worker() {
        use mediasoup::prelude::*;
        use mediasoup::types::data_structures::{ListenInfo, Protocol};
        use std::net::{IpAddr, Ipv4Addr};
        use std::time::Duration;

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let manager = WorkerManager::new();
            let worker = manager
                .create_worker(WorkerSettings::default())
                .await
                .expect("worker");
            let router = worker
                .create_router(RouterOptions::new(crate::worker::media_codecs()))
                .await
                .expect("router");
            let plain = |comedia: bool| {
                let mut o = PlainTransportOptions::new(ListenInfo {
                    protocol: Protocol::Udp,
                    ip: localhost,
                    announced_address: None,
                    expose_internal_ip: false,
                    port: None,
                    port_range: None,
                    flags: None,
                    send_buffer_size: None,
                    recv_buffer_size: None,
                });
                o.rtcp_mux = true;
                o.comedia = comedia;
                o
            };

            let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
            let sender = Sender::start(SenderConfig {
                bind_ip: localhost,
                ..SenderConfig::default()
            })
            .expect("sender");
            let recv_addr = receiver.local_addrs()[0];
            let mut keep = Vec::new();
            for spec in [StreamSpec::vp8(1111), StreamSpec::opus(2222)] {
                let pt = router
                    .create_plain_transport(plain(true))
                    .await
                    .expect("producer transport");
                let dest = std::net::SocketAddr::new(localhost, pt.tuple().local_port());
                let producer = pt
                    .produce(ProducerOptions::new(
                        spec.kind.media_kind(),
                        rtp_parameters(&spec),
                    ))
                    .await
                    .expect("produce");
                sender
                    .add_stream(spec.clone(), format!("pub-{}", spec.ssrc), dest)
                    .expect("stream");
                let ct = router
                    .create_plain_transport(plain(false))
                    .await
                    .expect("consumer transport");
                ct.connect(PlainTransportRemoteParameters {
                    ip: Some(recv_addr.ip()),
                    port: Some(recv_addr.port()),
                    rtcp_port: None,
                    srtp_parameters: None,
                })
                .await
                .expect("connect");
                let consumer = ct
                    .consume(ConsumerOptions::new(
                        producer.id(),
                        subscriber_rtp_capabilities(),
                    ))
                    .await
                    .expect("consume");
                let ssrc = consumer.rtp_parameters().encodings[0]
                    .ssrc
                    .expect("consumer ssrc");
                receiver
                    .expect(ssrc, format!("sub-{}", spec.ssrc))
                    .expect("new ssrc");
                keep.push((pt, producer, ct, consumer));
            }

            let flowing = |s: &ReceiverSnapshot| {
                s.totals.active_streams == 2 && s.streams.iter().all(|st| st.packets > 20)
            };
            assert!(
                receiver.wait_until(Duration::from_secs(10), flowing),
                "{:#?}\n{:#?}",
                receiver.snapshot(),
                sender.snapshot()
            );
            receiver.reset_window();
            assert!(receiver.wait_until(Duration::from_secs(10), |s| s.totals.window_s >= 1.0));
            let report = Report::new(&sender.snapshot(), &receiver.snapshot());
            eprintln!("{report}");
            let r = &report.received;
            assert_eq!(r.window.lost, 0, "{report}");
            assert!(r.window.expected > 100, "{report}");
            assert!(
                r.rtcp_packets > 0,
                "mediasoup sends sender reports: {report}"
            );
            assert_eq!(r.unknown_ssrc_packets, 0);
            assert!(r.latency.p99_ms < 100.0, "{report}");
            assert!(report.sent.rtcp_packets > 0, "{report}");
            assert_eq!(report.sent.send_errors, 0, "{report}");

            // A consumer's keyframe request reaches the publisher as a PLI.
            let before = sender.snapshot().streams[0].keyframes;
            keep[0]
                .3
                .request_key_frame()
                .await
                .expect("request keyframe");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let v = sender.snapshot().streams[0].clone();
                if v.keyframe_requests >= 1 && v.keyframes > before {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "{v:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(keep);
        });
    }
}
