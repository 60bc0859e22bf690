//! The payload codec: serde + bincode 2.
//!
//! Everything the fabric puts inside a frame goes through this module, so
//! swapping the serialisation format means replacing only this file. The
//! configuration is bincode's `standard()` (little-endian, varint integers)
//! with a hard decode limit, so a hostile length field inside a payload can
//! never make the decoder reserve more than [`DECODE_LIMIT`] bytes.

use bincode::{
    config::{Configuration, Limit, LittleEndian, Varint},
    enc::write::Writer,
    error::EncodeError,
};
use bytes::{BufMut, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::CodecError;

/// Upper bound on what a single decode may claim, whatever the frame limit.
pub const DECODE_LIMIT: usize = 64 << 20;

type Config = Configuration<LittleEndian, Varint, Limit<DECODE_LIMIT>>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `value` into a fresh vector.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

struct BytesWriter<'a>(&'a mut BytesMut);

impl Writer for BytesWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.put_slice(bytes);
        Ok(())
    }
}

/// Appends the encoding of `value` to `dst`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
    bincode::serde::encode_into_writer(value, BytesWriter(dst), config())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a value that must span all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes a value at the start of `bytes`; returns it and its length.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing() {
        let v = (7u32, "x".to_string(), vec![1u8, 2, 3]);
        let mut bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u32, String, Vec<u8>)>(&bytes).unwrap(), v);
        bytes.push(0);
        assert_eq!(
            decode::<(u32, String, Vec<u8>)>(&bytes),
            Err(CodecError::TrailingBytes(1))
        );
        let mut b = BytesMut::new();
        encode_into(&v, &mut b).unwrap();
        assert_eq!(&b[..], &bytes[..bytes.len() - 1]);
    }

    #[test]
    fn hostile_length_is_refused() {
        // A Vec<u8> claiming u64::MAX elements.
        let bytes = [253u8, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode::<String>(&bytes).is_err());
    }
}
