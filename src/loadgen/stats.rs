//! Receive-side bookkeeping, pure logic: RTP sequence tracking with loss,
//! duplicate and reorder counting (RFC 3550 appendix A.1 style), and a
//! log-bucket latency histogram.

use std::time::Duration;

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
}
