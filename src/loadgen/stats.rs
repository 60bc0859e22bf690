//! Receive-side bookkeeping, pure logic: RTP sequence tracking with loss,
//! duplicate and reorder counting (RFC 3550 appendix A.1 style), a
//! log-bucket latency histogram, and arrival gaps.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

/// Sub-buckets per power of two (2^3 = 8: about 12 % bucket width).
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets for every `u64` microsecond value.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

fn bucket_of(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = (us >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// `[low, high)` microsecond bounds of a bucket.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let sub_count = SUB as usize;
    if index < sub_count {
        return (index as u64, index as u64 + 1);
    }
    let exp = (index / sub_count) as u32 + SUB_BITS - 1;
    let sub = (index % sub_count) as u64;
    let shift = exp - SUB_BITS;
    let low = (SUB + sub) << shift;
    (low, low.saturating_add(1 << shift))
}

/// Latency histogram with logarithmic buckets (microsecond resolution at
/// the bottom, ~12 % relative width above 8 µs), plus exact min/max/mean.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one sample.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(b) = self.buckets.get_mut(bucket_of(us)) {
            *b += 1;
        }
        self.count += 1;
        self.sum_us += u128::from(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0.0..=1.0), `None` when empty. Reported as the
    /// middle of the bucket holding it, clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_bounds(i);
                let mid = low + (high - low) / 2;
                return Some(Duration::from_micros(mid.clamp(self.min_us, self.max_us)));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }

    /// Largest sample.
    pub fn max(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_micros(self.max_us))
    }

    /// Summary in milliseconds for reports.
    pub fn summary(&self) -> LatencySummary {
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        LatencySummary {
            samples: self.count,
            p50_ms: ms(self.quantile(0.50)),
            p90_ms: ms(self.quantile(0.90)),
            p99_ms: ms(self.quantile(0.99)),
            max_ms: ms(self.max()),
            mean_ms: if self.count == 0 {
                0.0
            } else {
                self.sum_us as f64 / self.count as f64 / 1e3
            },
        }
    }
}

/// Latency figures in milliseconds (zeros when there are no samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Sequence numbers remembered for duplicate detection.
const SEEN_WINDOW: i64 = 4096;

/// How one packet's sequence number relates to what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// In order (the highest so far), possibly after a gap.
    InOrder,
    /// New, but lower than the highest seen (reordered or late).
    OutOfOrder,
    /// Seen before.
    Duplicate,
}

/// Loss and ordering counters of one stream over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeqCounts {
    /// Packets expected from the sequence numbers (highest - first + 1).
    pub expected: u64,
    /// Distinct packets received.
    pub received: u64,
    /// `expected - received`; negative if more arrived than expected.
    pub lost: i64,
    /// Packets received more than once.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub out_of_order: u64,
}

impl SeqCounts {
    /// `lost` over `expected`, percent (negative loss counts as none).
    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost.max(0) as f64 * 100.0 / self.expected as f64
        }
    }
}

/// Tracks a 16-bit RTP sequence number as a wrap-free extended number and
/// counts expected, received, duplicates and reordering, overall and in a
/// resettable window.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    started: bool,
    base: i64,
    max: i64,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    seen: Vec<u64>,
    window_base: Option<i64>,
    window_received: u64,
    window_duplicates: u64,
    window_out_of_order: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self {
            started: false,
            base: 0,
            max: 0,
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            seen: vec![0; (SEEN_WINDOW / 64) as usize],
            window_base: None,
            window_received: 0,
            window_duplicates: 0,
            window_out_of_order: 0,
        }
    }
}

impl SeqTracker {
    fn bit(ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(SEEN_WINDOW) as usize;
        (i / 64, 1 << (i % 64))
    }

    fn seen(&self, ext: i64) -> bool {
        let (w, m) = Self::bit(ext);
        self.seen.get(w).is_some_and(|v| v & m != 0)
    }

    fn mark(&mut self, ext: i64, on: bool) {
        let (w, m) = Self::bit(ext);
        if let Some(v) = self.seen.get_mut(w) {
            if on {
                *v |= m;
            } else {
                *v &= !m;
            }
        }
    }

    /// Records a packet's sequence number and returns its extended number
    /// and how it relates to earlier ones.
    pub fn record(&mut self, seq: u16) -> (i64, SeqOutcome) {
        if !self.started {
            self.started = true;
            let ext = i64::from(seq);
            self.base = ext;
            self.max = ext;
            self.mark(ext, true);
            self.count_new(ext, false);
            return (ext, SeqOutcome::InOrder);
        }
        // The nearest extended number with these low 16 bits.
        let delta = i64::from(seq.wrapping_sub(self.max as u16) as i16);
        let ext = self.max + delta;
        if delta > 0 {
            if delta >= SEEN_WINDOW {
                self.seen.iter_mut().for_each(|v| *v = 0);
            } else {
                for e in self.max + 1..ext {
                    self.mark(e, false);
                }
            }
            self.max = ext;
            self.mark(ext, true);
            self.count_new(ext, false);
            return (ext, SeqOutcome::InOrder);
        }
        let remembered = self.max - ext < SEEN_WINDOW;
        if delta == 0 || (remembered && self.seen(ext)) {
            self.duplicates += 1;
            if self.window_base.is_some_and(|b| ext >= b) {
                self.window_duplicates += 1;
            }
            return (ext, SeqOutcome::Duplicate);
        }
        if remembered {
            self.mark(ext, true);
        }
        self.base = self.base.min(ext);
        self.count_new(ext, true);
        (ext, SeqOutcome::OutOfOrder)
    }

    fn count_new(&mut self, ext: i64, late: bool) {
        self.received += 1;
        self.out_of_order += u64::from(late);
        let base = *self.window_base.get_or_insert(ext);
        if ext >= base {
            self.window_received += 1;
            self.window_out_of_order += u64::from(late);
        }
    }

    /// Highest extended sequence number seen, if any.
    pub fn highest(&self) -> Option<i64> {
        self.started.then_some(self.max)
    }

    /// First (lowest) extended sequence number seen, if any.
    pub fn first(&self) -> Option<i64> {
        self.started.then_some(self.base)
    }

    /// Counters since the first packet.
    pub fn total(&self) -> SeqCounts {
        if !self.started {
            return SeqCounts::default();
        }
        let expected = (self.max - self.base + 1) as u64;
        SeqCounts {
            expected,
            received: self.received,
            lost: expected as i64 - self.received as i64,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
        }
    }

    /// Counters since the last [`reset_window`](Self::reset_window) (or
    /// the first packet): packets numbered after the highest one at reset.
    pub fn window(&self) -> SeqCounts {
        let Some(base) = self.window_base else {
            return SeqCounts::default();
        };
        let expected = (self.max - base + 1).max(0) as u64;
        SeqCounts {
            expected,
            received: self.window_received,
            lost: expected as i64 - self.window_received as i64,
            duplicates: self.window_duplicates,
            out_of_order: self.window_out_of_order,
        }
    }

    /// Starts a new window after the highest sequence number seen so far.
    pub fn reset_window(&mut self) {
        self.window_base = self.started.then_some(self.max + 1);
        self.window_received = 0;
        self.window_duplicates = 0;
        self.window_out_of_order = 0;
    }
}

/// Arrival times of packets that belong together (one stream whatever
/// SSRCs carried it, or everything a subscriber receives): the first and
/// last arrival and the longest wait between two consecutive ones. Times
/// are since the loadgen epoch, as the receiver stamps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GapTracker {
    first: Option<Duration>,
    last: Option<Duration>,
    max_gap: Duration,
    arrivals: u64,
}

/// A [`GapTracker`] that several receive streams (and threads) feed.
pub type SharedGaps = Arc<Mutex<GapTracker>>;

/// What a [`GapTracker`] saw, up to some end time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapSummary {
    /// First arrival.
    pub first: Duration,
    /// Last arrival.
    pub last: Duration,
    /// Longest wait between two consecutive arrivals, or from the last
    /// arrival to the end, whichever is longer (the wait before the first
    /// arrival does not count).
    pub max_gap: Duration,
    /// Arrivals.
    pub arrivals: u64,
}

impl GapTracker {
    /// Records an arrival at `at`. An arrival earlier than the last one
    /// (stamped by another receive thread a moment before) shortens no gap.
    pub fn record(&mut self, at: Duration) {
        self.arrivals += 1;
        match self.last {
            None => {
                self.first = Some(at);
                self.last = Some(at);
            }
            Some(last) if at > last => {
                self.max_gap = self.max_gap.max(at - last);
                self.last = Some(at);
            }
            Some(_) => {}
        }
        if self.first.is_some_and(|f| at < f) {
            self.first = Some(at);
        }
    }

    /// The first arrival, if any.
    pub fn first(&self) -> Option<Duration> {
        self.first
    }

    /// The figures as of `end` (the wait from the last arrival to `end`
    /// counts as a gap); `None` before the first arrival.
    pub fn summary(&self, end: Duration) -> Option<GapSummary> {
        let (first, last) = (self.first?, self.last?);
        Some(GapSummary {
            first,
            last,
            max_gap: self.max_gap.max(end.saturating_sub(last)),
            arrivals: self.arrivals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous() {
        let mut prev_high = 0;
        for i in 0..BUCKETS - 1 {
            let (low, high) = bucket_bounds(i);
            assert_eq!(low, prev_high, "bucket {i}");
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(high - 1), i);
            prev_high = high;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).expect("samples").as_secs_f64() * 1e3;
        let p99 = h.quantile(0.99).expect("samples").as_secs_f64() * 1e3;
        assert!((45.0..=56.0).contains(&p50), "{p50}");
        assert!((90.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(h.max(), Some(Duration::from_millis(100)));
        let mut m = LatencyHistogram::default();
        m.record(Duration::from_secs(1));
        m.merge(&h);
        assert_eq!(m.count(), 101);
        assert_eq!(m.max(), Some(Duration::from_secs(1)));
        let s = m.summary();
        assert_eq!(s.samples, 101);
        assert!((s.max_ms - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn wraps_without_loss() {
        let mut t = SeqTracker::default();
        let mut seq = 65_000u16;
        for _ in 0..2000 {
            t.record(seq);
            seq = seq.wrapping_add(1);
        }
        let c = t.total();
        assert_eq!(c.expected, 2000);
        assert_eq!(c.received, 2000);
        assert_eq!(c.lost, 0);
        assert_eq!(t.highest(), Some(65_000 + 1999));
    }

    #[test]
    fn gaps_reordering_and_duplicates() {
        let mut t = SeqTracker::default();
        // 10, 11, [12 lost], 14, 13 (reordered), 13 (dup), 15, [16..=19 lost], 20
        for (s, want) in [
            (10, SeqOutcome::InOrder),
            (11, SeqOutcome::InOrder),
            (14, SeqOutcome::InOrder),
            (13, SeqOutcome::OutOfOrder),
            (13, SeqOutcome::Duplicate),
            (15, SeqOutcome::InOrder),
            (20, SeqOutcome::InOrder),
            (20, SeqOutcome::Duplicate),
        ] {
            assert_eq!(t.record(s).1, want, "seq {s}");
        }
        let c = t.total();
        assert_eq!(c.expected, 11);
        assert_eq!(c.received, 6);
        assert_eq!(c.lost, 5);
        assert_eq!(c.duplicates, 2);
        assert_eq!(c.out_of_order, 1);
        // A late packet before the first one extends the range.
        assert_eq!(t.record(9).1, SeqOutcome::OutOfOrder);
        assert_eq!(t.total().expected, 12);
        assert_eq!(t.total().lost, 5);
        // The late 12 fills its gap.
        t.record(12);
        assert_eq!(t.total().lost, 4);
    }

    #[test]
    fn loss_across_wrap() {
        let mut t = SeqTracker::default();
        for s in [65_533u16, 65_534, 1, 2] {
            t.record(s);
        }
        let c = t.total();
        assert_eq!(c.expected, 6);
        assert_eq!(c.lost, 2);
    }

    #[test]
    fn window_counts_only_after_reset() {
        let mut t = SeqTracker::default();
        for s in 0..100u16 {
            if s % 10 != 5 {
                t.record(s);
            }
        }
        assert_eq!(t.total().lost, 10);
        assert_eq!(t.window(), t.total(), "no reset: window is everything");
        t.reset_window();
        assert_eq!(t.window().expected, 0);
        // A straggler from before the window does not count in it.
        assert_eq!(t.record(95).1, SeqOutcome::OutOfOrder);
        for s in 100..200u16 {
            if s != 150 {
                t.record(s);
            }
        }
        let w = t.window();
        assert_eq!(w.expected, 100);
        assert_eq!(w.received, 99);
        assert_eq!(w.lost, 1);
        assert_eq!(t.total().lost, 10);
    }

    #[test]
    fn window_before_first_packet() {
        let mut t = SeqTracker::default();
        t.reset_window();
        t.record(500);
        t.record(502);
        assert_eq!(t.window().expected, 3);
        assert_eq!(t.window().lost, 1);
    }

    #[test]
    fn gaps_between_arrivals_and_to_the_end() {
        let ms = Duration::from_millis;
        let mut g = GapTracker::default();
        assert_eq!(g.summary(ms(1000)), None);
        assert_eq!(g.first(), None);
        // The 500 ms before the first arrival are start-up, not a gap.
        for t in [500, 520, 540, 900, 910] {
            g.record(ms(t));
        }
        let s = g.summary(ms(1000)).expect("arrivals");
        assert_eq!((s.first, s.last, s.arrivals), (ms(500), ms(910), 5));
        assert_eq!(s.max_gap, ms(360));
        // A silence until the end is a gap too.
        assert_eq!(g.summary(ms(2000)).expect("arrivals").max_gap, ms(1090));
        // An end before the last arrival (a late snapshot) adds nothing.
        assert_eq!(g.summary(ms(0)).expect("arrivals").max_gap, ms(360));
    }

    #[test]
    fn gaps_ignore_arrivals_out_of_order() {
        let ms = Duration::from_millis;
        let mut g = GapTracker::default();
        g.record(ms(100));
        g.record(ms(300));
        // Stamped by another thread just before the 300 ms one.
        g.record(ms(290));
        g.record(ms(350));
        // Earlier than anything: moves the first arrival only.
        g.record(ms(50));
        let s = g.summary(ms(350)).expect("arrivals");
        assert_eq!(s.max_gap, ms(200));
        assert_eq!((s.first, s.last, s.arrivals), (ms(50), ms(350), 5));
    }

    #[test]
    fn several_streams_feed_one_tracker() {
        // Two consumers of one stream overlap during a rejoin, then the old
        // one stops: the stream never paused, whatever each SSRC saw.
        let ms = Duration::from_millis;
        let shared: SharedGaps = SharedGaps::default();
        for t in (0..=1000).step_by(20) {
            shared.lock().record(ms(t)); // old consumer
        }
        for t in (900..=2000).step_by(20) {
            shared.lock().record(ms(t + 5)); // new consumer
        }
        let s = shared.lock().summary(ms(2005)).expect("arrivals");
        assert!(s.max_gap <= ms(20), "{s:?}");
    }
}
