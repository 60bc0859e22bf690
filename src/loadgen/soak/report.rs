//! What a soak reports (the JSON of `--report`, described in the module
//! above) and its short human summary.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use super::super::stats::SeqCounts;
use super::participant::{Log, Role};
use super::Ctx;

/// One session of a participant.
#[derive(Debug, Clone, Serialize)]
pub struct JoinRecord {
    /// When it was ready (joined, and published or subscribed), ms since
    /// the soak's start.
    pub at_ms: f64,
    /// The signalling URL it joined through.
    pub url: String,
    /// The URL's index in the targets; `None` for a URL a node named.
    pub target: Option<usize>,
    /// Why: `start`, `reconnect (REASON)` or `socket closed`.
    pub cause: String,
    /// The node's end of each plain transport of the session (`IP:port`):
    /// a publisher's per track, a subscriber's receiving one.
    pub media: Vec<String>,
}

/// One participant.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantReport {
    /// `pub-N` or `sub-N`.
    pub name: String,
    /// `publisher` or `subscriber`.
    pub role: Role,
    /// Sessions after the first.
    pub rejoins: u32,
    /// Every session, in order.
    pub joins: Vec<JoinRecord>,
    /// Consumes that failed (each retried a few times).
    pub consume_errors: u64,
    /// A subscriber's longest time without any packet, after its first
    /// (the end of the soak counts); `None` for a publisher or a
    /// subscriber that received nothing.
    pub max_silence_ms: Option<f64>,
}

/// One stream as one subscriber received it, over every consumer that
/// carried it.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    /// The subscriber.
    pub subscriber: String,
    /// The stream, `{publisher}/{audio|video}`.
    pub stream: String,
    /// Packets received.
    pub received: u64,
    /// Lost over expected, from each consumer's sequence numbers, percent.
    pub loss_pct: f64,
    /// Longest time between two packets, or from the last one to the end
    /// of the soak; `None` if nothing arrived.
    pub max_gap_ms: Option<f64>,
    /// First arrival.
    pub first_ms: Option<f64>,
    /// Last arrival.
    pub last_ms: Option<f64>,
    /// Consumers that carried it (delivered at least a packet).
    pub consumers: usize,
}

/// A soak's report.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// The room.
    pub room: String,
    /// The signalling URLs, in order.
    pub targets: Vec<String>,
    /// From the first join to the end.
    pub duration_ms: f64,
    /// When every subscriber first had every stream; `None`: never.
    pub ready_ms: Option<f64>,
    /// `--max-gap-ms`, if given.
    pub max_gap_limit_ms: Option<f64>,
    /// Whether no pair failed the limit (always with no limit).
    pub passed: bool,
    /// The pairs that failed the limit, described.
    pub failures: Vec<String>,
    /// Publishers, then subscribers.
    pub participants: Vec<ParticipantReport>,
    /// Every (subscriber, stream) pair, by subscriber then stream.
    pub pairs: Vec<PairReport>,
}

/// Milliseconds, to a tenth.
pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

impl SoakReport {
    /// The figures as of `end` (since the loadgen epoch).
    pub(super) fn new(
        ctx: &Ctx,
        logs: &[Arc<Mutex<Log>>],
        end: Duration,
        ready_at: Option<Duration>,
        limit_ms: Option<f64>,
    ) -> Self {
        let per_ssrc: HashMap<u32, (u64, SeqCounts)> = ctx
            .receiver
            .snapshot()
            .streams
            .into_iter()
            .map(|s| (s.ssrc, (s.packets, s.total)))
            .collect();
        let pairs: Vec<PairReport> = ctx
            .pairs
            .lock()
            .iter()
            .map(|((subscriber, stream), pair)| {
                let mut received = 0;
                let mut consumers = 0;
                let mut counts = SeqCounts::default();
                for (packets, c) in pair.ssrcs.iter().filter_map(|s| per_ssrc.get(s)) {
                    received += packets;
                    consumers += usize::from(*packets > 0);
                    counts.expected += c.expected;
                    counts.lost += c.lost.max(0);
                }
                let gaps = pair.gaps.lock().summary(end);
                PairReport {
                    subscriber: subscriber.clone(),
                    stream: stream.clone(),
                    received,
                    loss_pct: (counts.loss_pct() * 1000.0).round() / 1000.0,
                    max_gap_ms: gaps.map(|g| ms(g.max_gap)),
                    first_ms: gaps.map(|g| ctx.ms(g.first)),
                    last_ms: gaps.map(|g| ctx.ms(g.last)),
                    consumers,
                }
            })
            .collect();
        let participants = logs
            .iter()
            .map(|log| {
                let log = log.lock();
                let silence = log.silence.as_ref().and_then(|s| s.lock().summary(end));
                ParticipantReport {
                    name: log.name.clone(),
                    role: log.role,
                    rejoins: log.rejoins,
                    joins: log.joins.clone(),
                    consume_errors: log.consume_errors,
                    max_silence_ms: silence.map(|s| ms(s.max_gap)),
                }
            })
            .collect();
        let failures = limit_ms.map_or_else(Vec::new, |limit| failures(&pairs, limit));
        Self {
            room: ctx.room.clone(),
            targets: ctx.targets.clone(),
            duration_ms: ctx.ms(end),
            ready_ms: ready_at.map(|t| ctx.ms(t)),
            max_gap_limit_ms: limit_ms,
            passed: failures.is_empty(),
            failures,
            participants,
            pairs,
        }
    }

    /// The pairs by decreasing gap, those that received nothing first.
    fn by_gap(&self) -> Vec<&PairReport> {
        let mut pairs: Vec<&PairReport> = self.pairs.iter().collect();
        let gap = |p: &PairReport| p.max_gap_ms.unwrap_or(f64::INFINITY);
        pairs.sort_by(|a, b| gap(b).total_cmp(&gap(a)));
        pairs
    }
}

/// The pairs that never received anything or whose longest gap is over
/// `limit` ms.
fn failures(pairs: &[PairReport], limit: f64) -> Vec<String> {
    pairs
        .iter()
        .filter_map(|p| match p.max_gap_ms {
            None => Some(format!("{} never received {}", p.subscriber, p.stream)),
            Some(gap) if gap > limit => Some(format!(
                "{} <- {}: a gap of {gap} ms (limit {limit} ms)",
                p.subscriber, p.stream
            )),
            Some(_) => None,
        })
        .collect()
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"))
}

/// Participants listed one by one in the summary when there are no more
/// (else only those that rejoined).
const LIST_ALL_UP_TO: usize = 12;
/// Pairs listed in the summary, the worst first.
const WORST_PAIRS: usize = 5;

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejoins: u32 = self.participants.iter().map(|p| p.rejoins).sum();
        writeln!(
            f,
            "soak of room `{}` over {} target(s) for {:.1} s: {} participants, {} rejoins; every stream at every subscriber after {}",
            self.room,
            self.targets.len(),
            self.duration_ms / 1e3,
            self.participants.len(),
            rejoins,
            opt(self.ready_ms)
        )?;
        let all = self.participants.len() <= LIST_ALL_UP_TO;
        for p in self.participants.iter().filter(|p| all || p.rejoins > 0) {
            let path: Vec<String> = p
                .joins
                .iter()
                .map(|j| format!("{} at {:.0} ms", j.url, j.at_ms))
                .collect();
            write!(f, "  {} ({}), {} rejoins", p.name, p.role, p.rejoins)?;
            if p.role == Role::Subscriber {
                write!(
                    f,
                    ", longest silence {}, {} failed consumes",
                    opt(p.max_silence_ms),
                    p.consume_errors
                )?;
            }
            writeln!(f, ": {}", path.join(" -> "))?;
        }
        let packets: u64 = self.pairs.iter().map(|p| p.received).sum();
        let loss = self.pairs.iter().map(|p| p.loss_pct).fold(0.0, f64::max);
        writeln!(
            f,
            "{} (subscriber, stream) pairs: {packets} packets, loss at most {loss:.3} %; the longest gaps:",
            self.pairs.len()
        )?;
        for p in self.by_gap().into_iter().take(WORST_PAIRS) {
            writeln!(
                f,
                "  {} <- {}: {}, {} packets, loss {:.3} %, {} consumer(s)",
                p.subscriber,
                p.stream,
                opt(p.max_gap_ms),
                p.received,
                p.loss_pct,
                p.consumers
            )?;
        }
        match self.max_gap_limit_ms {
            Some(limit) if self.passed => write!(f, "passed: every gap within {limit} ms"),
            Some(limit) => write!(f, "FAILED (limit {limit} ms): {}", self.failures.join("; ")),
            None => write!(f, "no gap limit set (--max-gap-ms)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(sub: &str, gap: Option<f64>) -> PairReport {
        PairReport {
            subscriber: sub.into(),
            stream: "pub-0/video".into(),
            received: u64::from(gap.is_some()) * 100,
            loss_pct: 0.0,
            max_gap_ms: gap,
            first_ms: gap.map(|_| 10.0),
            last_ms: gap.map(|_| 990.0),
            consumers: 1,
        }
    }

    #[test]
    fn a_limit_fails_long_gaps_and_missing_streams() {
        let pairs = vec![
            pair("sub-0", Some(150.0)),
            pair("sub-1", Some(2500.0)),
            pair("sub-2", None),
        ];
        let f = failures(&pairs, 2000.0);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].starts_with("sub-1"), "{f:?}");
        assert!(f[1].contains("never received"), "{f:?}");
        assert!(failures(&pairs[..1], 2000.0).is_empty());
        // At the limit is within it.
        assert!(failures(&[pair("sub-0", Some(2000.0))], 2000.0).is_empty());
    }

    #[test]
    fn summary_and_json_shape() {
        let report = SoakReport {
            room: "r".into(),
            targets: vec!["ws://a/ws".into()],
            duration_ms: 4000.0,
            ready_ms: Some(500.0),
            max_gap_limit_ms: Some(1000.0),
            passed: false,
            failures: failures(&[pair("sub-0", Some(1500.0))], 1000.0),
            participants: vec![ParticipantReport {
                name: "sub-0".into(),
                role: Role::Subscriber,
                rejoins: 1,
                joins: vec![JoinRecord {
                    at_ms: 0.0,
                    url: "ws://a/ws".into(),
                    target: Some(0),
                    cause: "start".into(),
                    media: vec!["127.0.0.1:40000".into()],
                }],
                consume_errors: 0,
                max_silence_ms: Some(1500.0),
            }],
            pairs: vec![pair("sub-0", Some(1500.0)), pair("sub-1", None)],
        };
        let text = report.to_string();
        // The pair that received nothing first, then the longest gap.
        let worst = text.find("sub-1 <- pub-0/video: -").expect("listed");
        let next = text.find("sub-0 <- pub-0/video: 1500 ms").expect("listed");
        assert!(worst < next, "{text}");
        assert!(text.contains("FAILED"), "{text}");
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["participants"][0]["role"], "subscriber");
        assert_eq!(json["participants"][0]["joins"][0]["target"], 0);
        assert_eq!(json["pairs"][1]["max_gap_ms"], serde_json::Value::Null);
        for key in ["received", "loss_pct", "max_gap_ms", "first_ms", "last_ms"] {
            assert!(json["pairs"][0].get(key).is_some(), "{key}");
        }
    }
}
