//! Length-delimited framing, without I/O.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload.
//! [`FrameDecoder`] enforces the configured maximum on the length prefix,
//! before any memory is reserved for the payload. The async adapters in
//! [`crate::link`] feed it bytes read from QUIC streams.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FrameError;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Appends one frame holding `payload` to `dst`.
pub fn encode_frame(payload: &[u8], max: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
    let len = payload.len();
    if len > max || u32::try_from(len).is_err() {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    dst.reserve(LEN_PREFIX + len);
    dst.put_u32(len as u32);
    dst.put_slice(payload);
    Ok(())
}

/// Writes a frame whose payload is produced in place by `fill`, so the
/// payload never has to be copied. The length prefix is patched afterwards.
pub fn encode_frame_with<E>(
    dst: &mut BytesMut,
    max: usize,
    fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), FrameOrInner<E>> {
    let start = dst.len();
    dst.put_u32(0);
    if let Err(e) = fill(dst) {
        dst.truncate(start);
        return Err(FrameOrInner::Inner(e));
    }
    let len = dst.len() - start - LEN_PREFIX;
    if len > max || u32::try_from(len).is_err() {
        dst.truncate(start);
        return Err(FrameOrInner::Frame(FrameError::TooLarge {
            len: len as u64,
            max,
        }));
    }
    dst[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Error of [`encode_frame_with`]: framing, or the payload writer's own.
#[derive(Debug)]
pub enum FrameOrInner<E> {
    /// Framing error.
    Frame(FrameError),
    /// Payload writer error.
    Inner(E),
}

/// Splits a byte buffer into frames.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing payloads longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max }
    }

    /// The configured maximum payload size.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes the next complete frame's payload off the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed. Fails with
    /// [`FrameError::TooLarge`] as soon as the prefix is readable, without
    /// reserving memory for the payload.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        let total = LEN_PREFIX + len;
        if buf.len() < total {
            // Bounded by `max`: the prefix has been checked.
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(LEN_PREFIX);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// Called at end of stream: leftover bytes mean a truncated frame.
    pub fn finish(&self, buf: &BytesMut) -> Result<(), FrameError> {
        if buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_split() {
        let mut buf = BytesMut::new();
        encode_frame(b"hello", 16, &mut buf).unwrap();
        encode_frame(b"", 16, &mut buf).unwrap();
        let dec = FrameDecoder::new(16);
        let mut partial = buf.split_to(3);
        assert_eq!(dec.decode(&mut partial).unwrap(), None);
        partial.unsplit(buf);
        let mut buf = partial;
        assert_eq!(&dec.decode(&mut buf).unwrap().unwrap()[..], b"hello");
        assert_eq!(&dec.decode(&mut buf).unwrap().unwrap()[..], b"");
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        dec.finish(&buf).unwrap();
    }

    #[test]
    fn too_large_refused_before_allocation() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let cap = buf.capacity();
        let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
        assert_eq!(buf.capacity(), cap);
        assert!(encode_frame(&[0; 20], 10, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn encode_with_patches_length() {
        let mut buf = BytesMut::new();
        encode_frame_with::<()>(&mut buf, 16, |b| {
            b.put_slice(b"abc");
            Ok(())
        })
        .unwrap();
        assert_eq!(&buf[..], b"\0\0\0\x03abc");
        let err = encode_frame_with::<()>(&mut buf, 2, |b| {
            b.put_slice(b"abc");
            Ok(())
        });
        assert!(matches!(err, Err(FrameOrInner::Frame(_))));
        assert_eq!(buf.len(), 7);
    }
}
