//! Watches the WebSocket frames of a signalling connection's request body
//! and refuses one whose header declares more than the message limit, as
//! soon as the header has arrived.
//!
//! actix-http's frame parser checks a frame's length against the limit
//! only once the whole frame is buffered, and `actix-ws` reads the body
//! until nothing is left before decoding: a header claiming 2^62 bytes
//! followed by a steady stream would be buffered without bound. This
//! stream sits between the connection and `actix-ws`, follows frame
//! boundaries (headers are parsed, payloads skipped, bytes passed on
//! untouched) and ends the body with an error at an oversized header; the
//! session then closes with 1009 ([`FrameGuard::tripped`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::dev;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures::Stream;

/// Where the scanner is in the frame sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scan {
    /// Reading a frame header (the bytes so far).
    Header(Vec<u8>),
    /// Skipping this many payload bytes.
    Payload(u64),
}

/// The frame scanner, pure: fed chunks, says when a header is oversized.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    state: Scan,
    max: u64,
}

/// How long a header is, from its first two bytes (client frames are
/// masked: 4 more).
fn header_len(first_two: &[u8]) -> usize {
    let ext = match first_two[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if first_two[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// A complete header's declared payload length.
fn declared_len(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    }
}

impl FrameScanner {
    /// A scanner refusing frames over `max` payload bytes.
    pub fn new(max: usize) -> Self {
        Self {
            state: Scan::Header(Vec::with_capacity(14)),
            max: max as u64,
        }
    }

    /// Follows `chunk`; `Err(declared)` at a header declaring more than
    /// the limit.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), u64> {
        while !chunk.is_empty() {
            match &mut self.state {
                Scan::Payload(left) => {
                    let skip = (*left).min(chunk.len() as u64);
                    *left -= skip;
                    chunk = &chunk[skip as usize..];
                    if *left == 0 {
                        self.state = Scan::Header(Vec::with_capacity(14));
                    }
                }
                Scan::Header(h) => {
                    let want = if h.len() < 2 { 2 } else { header_len(&h[..2]) };
                    let take = (want - h.len()).min(chunk.len());
                    h.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if h.len() < 2 || h.len() < header_len(&h[..2]) {
                        continue;
                    }
                    let len = declared_len(h);
                    if len > self.max {
                        return Err(len);
                    }
                    self.state = if len == 0 {
                        Scan::Header(Vec::with_capacity(14))
                    } else {
                        Scan::Payload(len)
                    };
                }
            }
        }
        Ok(())
    }
}

/// The guarded body of one connection.
pub struct FrameGuard {
    inner: dev::Payload,
    scanner: FrameScanner,
    tripped: Arc<AtomicBool>,
}

impl std::fmt::Debug for FrameGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameGuard")
            .field("scanner", &self.scanner)
            .field("tripped", &self.tripped)
            .finish_non_exhaustive()
    }
}

impl FrameGuard {
    /// Guards `inner` with a `max`-byte frame limit; the flag is set when
    /// a frame was refused.
    pub fn new(inner: dev::Payload, max: usize) -> (Self, Arc<AtomicBool>) {
        let tripped = Arc::new(AtomicBool::new(false));
        let guard = Self {
            inner,
            scanner: FrameScanner::new(max),
            tripped: Arc::clone(&tripped),
        };
        (guard, tripped)
    }

    /// As a request payload again.
    pub fn into_payload(self) -> dev::Payload {
        dev::Payload::Stream {
            payload: Box::pin(self),
        }
    }

    /// Whether `flag` says a frame was refused for its size.
    pub fn tripped(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }
}

impl Stream for FrameGuard {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.tripped.load(Ordering::SeqCst) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match this.scanner.feed(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(declared) => {
                    tracing::warn!(declared, "websocket frame header over the size limit");
                    this.tripped.store(true, Ordering::SeqCst);
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u64) -> Vec<u8> {
        let mut h = vec![0x81];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= u64::from(u16::MAX) {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_chunking() {
        let mut stream = Vec::new();
        for len in [0u64, 5, 125, 126, 1000, 4096] {
            stream.extend(header(len));
            stream.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for chunk in [1usize, 3, 7, 64, 10_000] {
            let mut s = FrameScanner::new(4096);
            for piece in stream.chunks(chunk) {
                assert_eq!(s.feed(piece), Ok(()), "chunks of {chunk}");
            }
            assert_eq!(s.state, Scan::Header(Vec::new()));
        }
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload() {
        for len in [4097u64, 70_000, 1 << 62] {
            let h = header(len);
            let mut s = FrameScanner::new(4096);
            // Byte by byte: refused exactly when the header is complete.
            for (i, b) in h.iter().enumerate() {
                let r = s.feed(std::slice::from_ref(b));
                if i + 1 < h.len() {
                    assert_eq!(r, Ok(()));
                } else {
                    assert_eq!(r, Err(len));
                }
            }
        }
        // After a good frame, in the same chunk.
        let mut stream = header(3);
        stream.extend([1, 2, 3]);
        stream.extend(header(1 << 40));
        assert_eq!(FrameScanner::new(4096).feed(&stream), Err(1 << 40));
    }
}
