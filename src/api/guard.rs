//! What a WebSocket connection must pass before and while it is served:
//! the `Origin` allow-list, connection counts (per source IP and in total),
//! and a token bucket on its requests. Pure bookkeeping, unit-tested; the
//! session (`ws`) applies it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Why a connection was refused at the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A browser page of another origin (not in `http.allowed_origins`).
    #[error("origin {0} is not allowed")]
    Origin(String),
    /// `limits.connections_per_ip` connections from this address are open.
    #[error("limit `limits.connections_per_ip` ({0}) reached for this address")]
    PerIp(usize),
    /// `limits.connections` connections are open.
    #[error("limit `limits.connections` ({0}) reached")]
    Total(usize),
}

/// Whether a WebSocket upgrade with `origin` (the header, if any) to `host`
/// (the `Host` header) is allowed: clients that send no `Origin` (servers,
/// tools) are; a browser page is when it comes from this node itself
/// (`http://host` or `https://host`) or from an origin in `allowed` (`*`
/// allows any).
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/') == origin)
    {
        return true;
    }
    host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"))
}

/// Open WebSocket connections, per source address and in total.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The node's connection counts; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<Mutex<Counts>>);

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    counts: Connections,
    ip: IpAddr,
}

impl Connections {
    /// Takes a place for a connection from `ip`, or says which limit is
    /// reached.
    pub fn admit(&self, ip: IpAddr, per_ip: usize, total: usize) -> Result<Slot, Refused> {
        let mut c = self.0.lock();
        if c.total >= total {
            return Err(Refused::Total(total));
        }
        let n = c.per_ip.entry(ip).or_default();
        if *n >= per_ip {
            return Err(Refused::PerIp(per_ip));
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            counts: self.clone(),
            ip,
        })
    }

    /// Open connections in total.
    pub fn open(&self) -> usize {
        self.0.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.0.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `rate` requests per second on average, bursts of up to
/// `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// Takes a token for a request at `now`; `false` when there is none.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn origins() {
        let none: &[String] = &[];
        assert!(origin_allowed(None, Some("n:3000"), none));
        assert!(origin_allowed(Some("http://n:3000"), Some("n:3000"), none));
        assert!(origin_allowed(
            Some("https://n:3000/"),
            Some("n:3000"),
            none
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("n:3000"),
            none
        ));
        assert!(!origin_allowed(Some("http://n:3000"), None, none));
        let listed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(
            Some("https://app.example"),
            Some("n:3000"),
            &listed
        ));
        assert!(!origin_allowed(
            Some("https://app.example.evil"),
            Some("n:3000"),
            &listed
        ));
        assert!(origin_allowed(
            Some("http://x"),
            Some("n"),
            &["*".to_owned()]
        ));
    }

    #[test]
    fn connection_counts_per_ip_and_total_are_freed_on_drop() {
        let c = Connections::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = c.admit(a, 2, 3).unwrap();
        let _s2 = c.admit(a, 2, 3).unwrap();
        assert_eq!(c.admit(a, 2, 3).unwrap_err(), Refused::PerIp(2));
        let _s3 = c.admit(b, 2, 3).unwrap();
        assert_eq!(c.admit(b, 2, 3).unwrap_err(), Refused::Total(3));
        drop(s1);
        assert_eq!(c.open(), 2);
        assert!(c.admit(a, 2, 3).is_ok());
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(110)));
        // It never holds more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }
}
