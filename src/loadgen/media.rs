//! Synthetic media streams: RTP packetisation of fake Opus and VP8 frames.
//!
//! Pure logic, no I/O. A [`MediaGenerator`] is polled with "now" (time since
//! the process-wide [epoch](now_since_epoch)) and emits every RTP packet that
//! is due. Payloads are filler, but the framing is real enough for mediasoup:
//! VP8 packets carry an RFC 7741 payload descriptor and the first packet of a
//! frame a VP8 frame tag, so the worker's VP8 parser tells keyframes apart.
//!
//! Every packet ends with a 12-byte [trailer](parse_trailer): a magic and the
//! send time in nanoseconds since the epoch, for one-way latency.

use std::num::{NonZeroU32, NonZeroU8};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mediasoup::types::rtp_parameters::{
    MediaKind, MimeTypeAudio, MimeTypeVideo, RtcpFeedback, RtcpParameters, RtpCapabilities,
    RtpCodecCapability, RtpCodecParameters, RtpCodecParametersParameters, RtpEncodingParameters,
    RtpParameters,
};
use serde::Serialize;

/// Size of the fixed RTP header we emit (no CSRCs, no extensions).
pub const RTP_HEADER_LEN: usize = 12;
/// Largest RTP payload a VP8 frame is split into.
pub const MAX_PAYLOAD: usize = 1200;
/// Magic that opens the timestamp trailer.
pub const TRAILER_MAGIC: [u8; 4] = *b"MFLG";
/// Length of the timestamp trailer at the end of every payload.
pub const TRAILER_LEN: usize = 12;
/// Length of the VP8 payload descriptor we emit (X, I, 15-bit PictureID).
pub const VP8_DESCRIPTOR_LEN: usize = 4;
/// Width written into VP8 keyframe headers.
pub const VP8_WIDTH: u16 = 640;
/// Height written into VP8 keyframe headers.
pub const VP8_HEIGHT: u16 = 360;
/// When more frames than this are overdue (the sender stalled), the older
/// ones are skipped rather than burst out.
const MAX_CATCH_UP_FRAMES: u64 = 3;

/// The instant all loadgen timestamps count from (first use in the process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Time since the process-wide loadgen epoch. Senders stamp packets with it
/// and receivers compare against it, so latency is measured on one clock.
pub fn now_since_epoch() -> Duration {
    epoch().elapsed()
}

/// The codec a stream imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Opus audio, 48 kHz clock, constant-size frames.
    Opus,
    /// VP8 video, 90 kHz clock, periodic keyframes.
    Vp8,
}

impl StreamKind {
    /// RTP clock rate of the codec.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Opus => 48_000,
            Self::Vp8 => 90_000,
        }
    }

    /// The mediasoup media kind.
    pub fn media_kind(self) -> MediaKind {
        match self {
            Self::Opus => MediaKind::Audio,
            Self::Vp8 => MediaKind::Video,
        }
    }
}

/// What one synthetic stream looks like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// RTP SSRC of the stream.
    pub ssrc: u32,
    /// RTP payload type (must match the producer's [`rtp_parameters`]).
    pub payload_type: u8,
    /// Codec imitated.
    pub kind: StreamKind,
    /// Average bitrate of the RTP payloads, bits per second.
    pub bitrate_bps: u32,
    /// Frames per second (Opus: 50 means 20 ms frames).
    pub frame_rate: u32,
    /// Time between periodic keyframes (VP8 only).
    pub keyframe_interval: Duration,
}

impl StreamSpec {
    /// VP8 at 800 kbit/s, 30 fps, a keyframe every 5 s, payload type 96.
    pub fn vp8(ssrc: u32) -> Self {
        Self {
            ssrc,
            payload_type: 96,
            kind: StreamKind::Vp8,
            bitrate_bps: 800_000,
            frame_rate: 30,
            keyframe_interval: Duration::from_secs(5),
        }
    }

    /// Opus at 64 kbit/s in 20 ms frames (160-byte payloads), payload type 100.
    pub fn opus(ssrc: u32) -> Self {
        Self {
            ssrc,
            payload_type: 100,
            kind: StreamKind::Opus,
            bitrate_bps: 64_000,
            frame_rate: 50,
            keyframe_interval: Duration::ZERO,
        }
    }

    /// RTP clock rate of the stream's codec.
    pub fn clock_rate(&self) -> u32 {
        self.kind.clock_rate()
    }

    /// Time between two frames.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.frame_rate.max(1)))
    }

    /// Frames from one keyframe to the next (VP8), at least 1.
    fn frames_per_keyframe(&self) -> u64 {
        let frames =
            self.keyframe_interval.as_nanos() * u128::from(self.frame_rate.max(1)) / 1_000_000_000;
        u64::try_from(frames).unwrap_or(u64::MAX).max(1)
    }

    /// Payload bytes of an Opus frame, or of a VP8 delta and key frame:
    /// `(delta, key)`. Keyframes are four times a delta frame and the mix
    /// averages to the spec's bitrate.
    fn frame_sizes(&self) -> (usize, usize) {
        let fps = u64::from(self.frame_rate.max(1));
        let avg = u64::from(self.bitrate_bps) / 8 / fps;
        match self.kind {
            StreamKind::Opus => {
                let s = usize::try_from(avg)
                    .unwrap_or(usize::MAX)
                    .max(TRAILER_LEN + 1);
                (s, s)
            }
            StreamKind::Vp8 => {
                let n = self.frames_per_keyframe();
                // n frames: one keyframe (4d) and n-1 deltas (d) average to avg.
                let delta = avg * n / (n + 3);
                let min = (VP8_DESCRIPTOR_LEN + 10 + TRAILER_LEN) as u64;
                let delta = usize::try_from(delta.max(min)).unwrap_or(usize::MAX);
                (delta, delta.saturating_mul(4))
            }
        }
    }
}

/// Produces the RTP packets of one stream as time passes.
#[derive(Debug, Clone)]
pub struct MediaGenerator {
    spec: StreamSpec,
    start: Duration,
    seq: u16,
    ts_base: u32,
    frame_index: u64,
    picture_id: u16,
    force_keyframe: bool,
    next_keyframe: u64,
    delta_size: usize,
    key_size: usize,
    frames: u64,
    keyframes: u64,
    skipped_frames: u64,
    buf: Vec<u8>,
}

impl MediaGenerator {
    /// A generator whose first frame is due at `start` (time since the
    /// epoch), with the given initial sequence number and RTP timestamp.
    /// A VP8 stream opens with a keyframe.
    pub fn new(spec: StreamSpec, start: Duration, initial_seq: u16, initial_ts: u32) -> Self {
        let (delta_size, key_size) = spec.frame_sizes();
        Self {
            spec,
            start,
            seq: initial_seq,
            ts_base: initial_ts,
            frame_index: 0,
            picture_id: initial_seq & 0x7fff,
            force_keyframe: false,
            next_keyframe: 0,
            delta_size,
            key_size,
            frames: 0,
            keyframes: 0,
            skipped_frames: 0,
            buf: Vec::with_capacity(RTP_HEADER_LEN + MAX_PAYLOAD + 64),
        }
    }

    /// Like [`new`](Self::new) with a random initial sequence number and
    /// timestamp, as a real sender would pick.
    pub fn with_random_start(spec: StreamSpec, start: Duration) -> Self {
        Self::new(spec, start, rand::random(), rand::random())
    }

    /// The stream's spec.
    pub fn spec(&self) -> &StreamSpec {
        &self.spec
    }

    /// Makes the next frame a keyframe (on PLI / FIR). No-op for audio.
    pub fn request_keyframe(&mut self) {
        if self.spec.kind == StreamKind::Vp8 {
            self.force_keyframe = true;
        }
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Keyframes produced so far (VP8).
    pub fn keyframes(&self) -> u64 {
        self.keyframes
    }

    /// Frames skipped because the generator was polled too late.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames
    }

    /// Next sequence number to be used.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// When the next frame is due (time since the epoch).
    pub fn next_due(&self) -> Duration {
        self.due(self.frame_index)
    }

    fn due(&self, index: u64) -> Duration {
        let offset_ns = u128::from(index) * 1_000_000_000 / u128::from(self.spec.frame_rate.max(1));
        self.start + Duration::from_nanos(u64::try_from(offset_ns).unwrap_or(u64::MAX))
    }

    fn rtp_timestamp(&self, index: u64) -> u32 {
        let ticks = u128::from(index) * u128::from(self.spec.clock_rate())
            / u128::from(self.spec.frame_rate.max(1));
        // RTP timestamps wrap modulo 2^32 by design.
        self.ts_base.wrapping_add((ticks % (1u128 << 32)) as u32)
    }

    /// Emits every packet due at `now` (time since the epoch) through `emit`
    /// and returns how many were emitted. Packets are stamped with `now`.
    /// If many frames are overdue, all but the last few are skipped (their
    /// timestamps are consumed, sequence numbers stay contiguous).
    pub fn poll(&mut self, now: Duration, mut emit: impl FnMut(&[u8])) -> usize {
        let mut emitted = 0;
        if now < self.next_due() {
            return 0;
        }
        // Number of frames due: index of the last due frame + 1.
        let elapsed = (now - self.start).as_nanos();
        let last_due = elapsed * u128::from(self.spec.frame_rate.max(1)) / 1_000_000_000;
        let last_due = u64::try_from(last_due).unwrap_or(u64::MAX);
        if last_due >= self.frame_index + MAX_CATCH_UP_FRAMES {
            let skip = last_due + 1 - MAX_CATCH_UP_FRAMES - self.frame_index;
            self.skipped_frames += skip;
            self.frame_index += skip;
        }
        while self.frame_index <= last_due {
            emitted += self.emit_frame(now, &mut emit);
            self.frame_index += 1;
        }
        emitted
    }

    fn emit_frame(&mut self, now: Duration, emit: &mut impl FnMut(&[u8])) -> usize {
        let ts = self.rtp_timestamp(self.frame_index);
        self.frames += 1;
        match self.spec.kind {
            StreamKind::Opus => {
                let size = self.delta_size;
                self.write_packet(now, ts, true, size, |payload| {
                    // TOC: config 31 (CELT FB 20 ms), mono, one frame.
                    payload[0] = 31 << 3;
                });
                emit(&self.buf);
                1
            }
            StreamKind::Vp8 => {
                let key = self.force_keyframe || self.frame_index >= self.next_keyframe;
                if key {
                    self.force_keyframe = false;
                    self.keyframes += 1;
                    self.next_keyframe = self.frame_index + self.spec.frames_per_keyframe();
                }
                let total = if key { self.key_size } else { self.delta_size };
                let packets = total.div_ceil(MAX_PAYLOAD).max(1);
                let picture_id = self.picture_id;
                self.picture_id = (self.picture_id + 1) & 0x7fff;
                for i in 0..packets {
                    // Split `total` evenly; the first packets take the remainder.
                    let size = total / packets + usize::from(i < total % packets);
                    let first = i == 0;
                    let last = i + 1 == packets;
                    self.write_packet(now, ts, last, size, |payload| {
                        write_vp8_descriptor(payload, first, picture_id);
                        if first {
                            write_vp8_frame_tag(&mut payload[VP8_DESCRIPTOR_LEN..], key, total);
                        }
                    });
                    emit(&self.buf);
                }
                packets
            }
        }
    }

    /// Builds one packet in `self.buf` with a payload of `payload_len` bytes
    /// (filler, then `fill` applied to the start, then the trailer).
    fn write_packet(
        &mut self,
        now: Duration,
        ts: u32,
        marker: bool,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let payload_len = payload_len.max(TRAILER_LEN + VP8_DESCRIPTOR_LEN + 10);
        self.buf.clear();
        self.buf.push(0x80);
        self.buf
            .push((u8::from(marker) << 7) | (self.spec.payload_type & 0x7f));
        self.buf.extend_from_slice(&self.seq.to_be_bytes());
        self.buf.extend_from_slice(&ts.to_be_bytes());
        self.buf.extend_from_slice(&self.spec.ssrc.to_be_bytes());
        self.buf.resize(RTP_HEADER_LEN + payload_len, 0x5a);
        fill(&mut self.buf[RTP_HEADER_LEN..]);
        let at = self.buf.len() - TRAILER_LEN;
        write_trailer(&mut self.buf[at..], now);
        self.seq = self.seq.wrapping_add(1);
    }
}

/// RFC 7741 descriptor: X=1, S on the first packet, PID 0; I=1 with a 15-bit
/// PictureID.
fn write_vp8_descriptor(payload: &mut [u8], start: bool, picture_id: u16) {
    payload[0] = 0x80 | (u8::from(start) << 4);
    payload[1] = 0x80;
    let [hi, lo] = (picture_id & 0x7fff).to_be_bytes();
    payload[2] = 0x80 | hi;
    payload[3] = lo;
}

/// VP8 frame tag (RFC 6386 9.1): P bit (0 = keyframe), version 0, show
/// frame, first partition size; keyframes add the start code and size.
fn write_vp8_frame_tag(out: &mut [u8], key: bool, frame_len: usize) {
    let partition = u32::try_from(frame_len / 2).unwrap_or(0) & 0x7_ffff;
    let tag: u32 = u32::from(!key) | (1 << 4) | (partition << 5);
    out[..3].copy_from_slice(&tag.to_le_bytes()[..3]);
    if key {
        out[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        out[6..8].copy_from_slice(&VP8_WIDTH.to_le_bytes());
        out[8..10].copy_from_slice(&VP8_HEIGHT.to_le_bytes());
    }
}

/// Writes the 12-byte trailer (magic + big-endian nanoseconds) into `out`.
pub fn write_trailer(out: &mut [u8], sent_at: Duration) {
    let ns = u64::try_from(sent_at.as_nanos()).unwrap_or(u64::MAX);
    out[..4].copy_from_slice(&TRAILER_MAGIC);
    out[4..12].copy_from_slice(&ns.to_be_bytes());
}

/// The send time in the last 12 bytes of an RTP payload, if the trailer is
/// there.
pub fn parse_trailer(payload: &[u8]) -> Option<Duration> {
    let at = payload.len().checked_sub(TRAILER_LEN)?;
    let t = payload.get(at..)?;
    if t[..4] != TRAILER_MAGIC {
        return None;
    }
    let ns = u64::from_be_bytes(t[4..12].try_into().ok()?);
    Some(Duration::from_nanos(ns))
}

/// The fields of an RTP header a receiver needs, plus the payload bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload without header, extensions and padding.
    pub payload: &'a [u8],
}

/// Parses an RTP packet (version 2, CSRCs, header extension and padding
/// handled). `None` for anything malformed.
pub fn parse_rtp(packet: &[u8]) -> Option<RtpView<'_>> {
    if packet.len() < RTP_HEADER_LEN || packet[0] >> 6 != 2 {
        return None;
    }
    let padding = packet[0] & 0x20 != 0;
    let extension = packet[0] & 0x10 != 0;
    let csrc_count = usize::from(packet[0] & 0x0f);
    let mut offset = RTP_HEADER_LEN + 4 * csrc_count;
    if extension {
        let ext = packet.get(offset..offset + 4)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        offset += 4 + 4 * words;
    }
    let mut end = packet.len();
    if padding {
        let pad = usize::from(*packet.last()?);
        end = end.checked_sub(pad)?;
    }
    let payload = packet.get(offset..end)?;
    Some(RtpView {
        marker: packet[1] & 0x80 != 0,
        payload_type: packet[1] & 0x7f,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload,
    })
}

/// Whether a packet on an rtcp-mux socket is RTCP (RFC 5761 section 4:
/// second byte in 192..=223).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}

/// Appends to `out` the media SSRC of every PLI (PT 206 FMT 1) and FIR
/// (PT 206 FMT 4) in a (compound) RTCP packet. Malformed trailing data is
/// ignored.
pub fn keyframe_requests(packet: &[u8], out: &mut Vec<u32>) {
    let mut rest = packet;
    while rest.len() >= 4 {
        if rest[0] >> 6 != 2 {
            return;
        }
        let fmt = rest[0] & 0x1f;
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        let Some(body) = rest.get(..len) else {
            return;
        };
        if pt == 206 && fmt == 1 {
            if let Some(ssrc) = body.get(8..12) {
                out.push(u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]));
            }
        } else if pt == 206 && fmt == 4 {
            // FCI entries: SSRC (4), seq nr (1), reserved (3).
            for entry in body.get(12..).unwrap_or_default().chunks_exact(8) {
                out.push(u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]));
            }
        }
        rest = &rest[len..];
    }
}

fn feedback_vp8() -> Vec<RtcpFeedback> {
    vec![
        RtcpFeedback::Nack,
        RtcpFeedback::NackPli,
        RtcpFeedback::CcmFir,
        RtcpFeedback::GoogRemb,
    ]
}

fn clock(rate: u32) -> NonZeroU32 {
    NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN)
}

fn stereo() -> NonZeroU8 {
    NonZeroU8::new(2).unwrap_or(NonZeroU8::MIN)
}

/// The producer `RtpParameters` for a stream: one codec (VP8 with
/// nack/pli/fir/remb feedback, or stereo Opus with in-band FEC), one encoding
/// with the spec's SSRC, no MID, no header extensions, CNAME "loadgen".
pub fn rtp_parameters(spec: &StreamSpec) -> RtpParameters {
    let codec = match spec.kind {
        StreamKind::Vp8 => RtpCodecParameters::Video {
            mime_type: MimeTypeVideo::Vp8,
            payload_type: spec.payload_type,
            clock_rate: clock(90_000),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: feedback_vp8(),
        },
        StreamKind::Opus => RtpCodecParameters::Audio {
            mime_type: MimeTypeAudio::Opus,
            payload_type: spec.payload_type,
            clock_rate: clock(48_000),
            channels: stereo(),
            parameters: RtpCodecParametersParameters::from([("useinbandfec", 1_u32.into())]),
            rtcp_feedback: Vec::new(),
        },
    };
    RtpParameters {
        mid: None,
        codecs: vec![codec],
        header_extensions: Vec::new(),
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(spec.ssrc),
            ..RtpEncodingParameters::default()
        }],
        rtcp: RtcpParameters {
            cname: Some("loadgen".to_owned()),
            reduced_size: true,
        },
        msid: None,
    }
}

/// The `RtpCapabilities` a loadgen subscriber offers: Opus and VP8 (with
/// nack, pli and fir feedback), no RTX, no header extensions.
pub fn subscriber_rtp_capabilities() -> RtpCapabilities {
    RtpCapabilities {
        codecs: vec![
            RtpCodecCapability::Audio {
                mime_type: MimeTypeAudio::Opus,
                preferred_payload_type: Some(100),
                clock_rate: clock(48_000),
                channels: stereo(),
                parameters: RtpCodecParametersParameters::from([("useinbandfec", 1_u32.into())]),
                rtcp_feedback: Vec::new(),
            },
            RtpCodecCapability::Video {
                mime_type: MimeTypeVideo::Vp8,
                preferred_payload_type: Some(96),
                clock_rate: clock(90_000),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![
                    RtcpFeedback::Nack,
                    RtcpFeedback::NackPli,
                    RtcpFeedback::CcmFir,
                ],
            },
        ],
        header_extensions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gen: &mut MediaGenerator, until: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        while now < until {
            gen.poll(now, |p| out.push(p.to_vec()));
            now += Duration::from_millis(1);
        }
        out
    }

    #[test]
    fn vp8_keyframe_layout() {
        let mut g = MediaGenerator::new(StreamSpec::vp8(0x1234), Duration::ZERO, 100, 7);
        let mut pkts = Vec::new();
        let n = g.poll(Duration::ZERO, |p| pkts.push(p.to_vec()));
        assert_eq!(n, pkts.len());
        assert!(pkts.len() > 1, "a keyframe spans several packets");
        for (i, p) in pkts.iter().enumerate() {
            let v = parse_rtp(p).expect("valid RTP");
            assert!(p.len() - RTP_HEADER_LEN <= MAX_PAYLOAD);
            assert_eq!(v.ssrc, 0x1234);
            assert_eq!(v.payload_type, 96);
            assert_eq!(v.seq, 100 + i as u16);
            assert_eq!(v.timestamp, 7);
            assert_eq!(v.marker, i + 1 == pkts.len(), "marker on last only");
            let d = v.payload;
            assert_eq!(d[0] & 0x80, 0x80, "X");
            assert_eq!(d[0] & 0x10 != 0, i == 0, "S on first only");
            assert_eq!(d[0] & 0x07, 0, "PID 0");
            assert_eq!(d[1], 0x80, "I only");
            assert_eq!(d[2] & 0x80, 0x80, "15-bit PictureID");
            assert_eq!(u16::from_be_bytes([d[2] & 0x7f, d[3]]), 100);
            assert_eq!(parse_trailer(d), Some(Duration::ZERO));
        }
        let first = parse_rtp(&pkts[0]).expect("rtp").payload;
        let tag = &first[VP8_DESCRIPTOR_LEN..];
        assert_eq!(tag[0] & 0x01, 0, "P=0: keyframe");
        assert_eq!(&tag[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([tag[6], tag[7]]), VP8_WIDTH);
        assert_eq!(u16::from_le_bytes([tag[8], tag[9]]), VP8_HEIGHT);
        assert_eq!(g.keyframes(), 1);

        // The next frame is a delta frame, one picture id later, 3000 ticks on.
        pkts.clear();
        g.poll(Duration::from_millis(34), |p| pkts.push(p.to_vec()));
        let v = parse_rtp(&pkts[0]).expect("rtp");
        assert_eq!(v.timestamp, 3007);
        assert_eq!(v.payload[VP8_DESCRIPTOR_LEN] & 0x01, 1, "P=1: delta");
        assert_eq!(u16::from_be_bytes([v.payload[2] & 0x7f, v.payload[3]]), 101);
        assert!(parse_rtp(pkts.last().expect("one")).expect("rtp").marker);

        // A keyframe request turns the next frame into a keyframe.
        g.request_keyframe();
        pkts.clear();
        g.poll(Duration::from_millis(67), |p| pkts.push(p.to_vec()));
        let v = parse_rtp(&pkts[0]).expect("rtp");
        assert_eq!(v.payload[VP8_DESCRIPTOR_LEN] & 0x01, 0);
        assert_eq!(g.keyframes(), 2);
    }

    #[test]
    fn bitrates_match_spec_over_ten_seconds() {
        for spec in [StreamSpec::vp8(1), StreamSpec::opus(2)] {
            let bitrate = f64::from(spec.bitrate_bps);
            let mut g = MediaGenerator::new(spec.clone(), Duration::ZERO, 0, 0);
            let pkts = run(&mut g, Duration::from_secs(10));
            let bytes: usize = pkts.iter().map(|p| p.len() - RTP_HEADER_LEN).sum();
            let measured = bytes as f64 * 8.0 / 10.0;
            assert!(
                (measured - bitrate).abs() / bitrate < 0.10,
                "{:?}: {measured} vs {bitrate}",
                spec.kind
            );
            assert_eq!(g.skipped_frames(), 0);
            if spec.kind == StreamKind::Vp8 {
                assert_eq!(g.frames(), 300);
                assert_eq!(g.keyframes(), 2, "at 0 s and 5 s");
            } else {
                assert_eq!(g.frames(), 500);
                assert!(pkts.iter().all(|p| p.len() - RTP_HEADER_LEN == 160));
            }
        }
    }

    #[test]
    fn sequence_numbers_and_timestamps_wrap() {
        let mut g = MediaGenerator::new(StreamSpec::opus(9), Duration::ZERO, 65534, u32::MAX - 959);
        let pkts = run(&mut g, Duration::from_millis(60));
        let seqs: Vec<u16> = pkts
            .iter()
            .map(|p| parse_rtp(p).expect("rtp").seq)
            .collect();
        assert_eq!(seqs, vec![65534, 65535, 0]);
        let ts: Vec<u32> = pkts
            .iter()
            .map(|p| parse_rtp(p).expect("rtp").timestamp)
            .collect();
        assert_eq!(ts, vec![u32::MAX - 959, 0, 960]);
    }

    #[test]
    fn late_poll_skips_old_frames() {
        let mut g = MediaGenerator::new(StreamSpec::opus(9), Duration::ZERO, 0, 0);
        let n = g.poll(Duration::from_secs(1), |_| {});
        assert_eq!(n as u64, MAX_CATCH_UP_FRAMES);
        assert_eq!(g.skipped_frames(), 51 - MAX_CATCH_UP_FRAMES);
        assert_eq!(g.next_due(), Duration::from_millis(1020));
    }

    #[test]
    fn trailer_round_trip() {
        let mut buf = [0u8; 20];
        let t = Duration::from_nanos(123_456_789_012);
        write_trailer(&mut buf[8..], t);
        assert_eq!(parse_trailer(&buf), Some(t));
        assert_eq!(parse_trailer(&buf[..11]), None);
        buf[8] ^= 1;
        assert_eq!(parse_trailer(&buf), None);
    }

    #[test]
    fn rtp_parser_rejects_garbage_and_handles_padding() {
        assert!(parse_rtp(&[]).is_none());
        assert!(parse_rtp(&[0x80; 11]).is_none());
        assert!(parse_rtp(&[0x40; 40]).is_none());
        // Padding larger than the packet.
        let mut p = vec![0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 200];
        assert!(parse_rtp(&p).is_none());
        *p.last_mut().expect("byte") = 2;
        assert_eq!(parse_rtp(&p).expect("rtp").payload, &[1]);
        // Extension longer than the packet.
        let p = [0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 9];
        assert!(parse_rtp(&p).is_none());
    }

    #[test]
    fn rtcp_pli_and_fir_parsing() {
        // Compound: RR (empty), PLI for 0xaabbccdd, FIR for 0x01020304.
        let mut p = vec![0x80, 201, 0, 1, 0, 0, 0, 1];
        p.extend_from_slice(&[0x81, 206, 0, 2, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd]);
        p.extend_from_slice(&[0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]);
        p.extend_from_slice(&[1, 2, 3, 4, 7, 0, 0, 0]);
        assert!(is_rtcp(&p));
        let mut out = Vec::new();
        keyframe_requests(&p, &mut out);
        assert_eq!(out, vec![0xaabbccdd, 0x01020304]);

        // Truncated packet: stops without panicking.
        out.clear();
        keyframe_requests(&p[..14], &mut out);
        assert!(out.is_empty());
        // RTP with marker and PT 96 is not RTCP.
        assert!(!is_rtcp(&[0x80, 0x80 | 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn parameters_and_capabilities() {
        let p = rtp_parameters(&StreamSpec::vp8(5));
        assert_eq!(p.encodings[0].ssrc, Some(5));
        assert_eq!(p.codecs[0].payload_type(), 96);
        assert!(p.mid.is_none());
        let o = rtp_parameters(&StreamSpec::opus(6));
        assert_eq!(o.codecs[0].payload_type(), 100);
        assert_eq!(subscriber_rtp_capabilities().codecs.len(), 2);
    }
}
