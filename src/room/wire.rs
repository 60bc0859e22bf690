//! mediasoup values on the fabric. mediasoup's parameter types use untagged
//! enums that bincode cannot decode, so they cross nodes as their own JSON,
//! in one wrapper, [`AsJson`], decoded with a typed error and a size limit.
//! Everything else in the room's fabric messages is plain serde.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest JSON value accepted from a peer node.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Why a mediasoup value from another node was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WireError {
    /// Larger than [`MAX_JSON_BYTES`].
    #[error("a {what} of {len} bytes is over the {MAX_JSON_BYTES}-byte limit")]
    TooLarge {
        /// The type expected.
        what: String,
        /// Its size.
        len: usize,
    },
    /// Not a valid value of the expected type.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The type expected.
        what: String,
        /// The decoder's reason.
        reason: String,
    },
}

/// A mediasoup value (RTP parameters, SRTP parameters…) carried as JSON.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct AsJson<T> {
    json: Vec<u8>,
    #[serde(skip)]
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for AsJson<T> {
    fn clone(&self) -> Self {
        Self {
            json: self.json.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for AsJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AsJson<{}>({} bytes)",
            short_name::<T>(),
            self.json.len()
        )
    }
}

fn short_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

impl<T: Serialize + DeserializeOwned> AsJson<T> {
    /// Wraps `value`.
    pub fn new(value: &T) -> Self {
        Self {
            // mediasoup's parameter types always serialise to JSON.
            json: serde_json::to_vec(value).unwrap_or_default(),
            _type: PhantomData,
        }
    }

    /// Raw bytes as received (for tests of hostile input).
    pub fn from_raw(json: Vec<u8>) -> Self {
        Self {
            json,
            _type: PhantomData,
        }
    }

    /// The value, or why it is refused.
    pub fn get(&self) -> Result<T, WireError> {
        let what = short_name::<T>().to_owned();
        if self.json.len() > MAX_JSON_BYTES {
            return Err(WireError::TooLarge {
                what,
                len: self.json.len(),
            });
        }
        serde_json::from_slice(&self.json).map_err(|e| WireError::Invalid {
            what,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use mediasoup::types::rtp_parameters::RtpParameters;

    use super::*;

    fn vp8() -> RtpParameters {
        serde_json::from_value(serde_json::json!({
            "mid": "0",
            "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                        "parameters": {"x-google-start-bitrate": 1000}, "rtcpFeedback": []}],
            "headerExtensions": [],
            "encodings": [{"ssrc": 1111}],
            "rtcp": {"cname": "c", "reducedSize": true}
        }))
        .unwrap()
    }

    #[test]
    fn rtp_parameters_survive_bincode_inside_json() {
        let v = AsJson::new(&vp8());
        let bytes = mafalda_actors::codec::encode(&v).unwrap();
        let back: AsJson<RtpParameters> = mafalda_actors::codec::decode(&bytes).unwrap();
        assert_eq!(back.get().unwrap(), vp8());
    }

    #[test]
    fn garbage_and_oversized_values_are_typed_errors() {
        let bad: AsJson<RtpParameters> = AsJson::from_raw(b"{\"codecs\": 7}".to_vec());
        assert!(matches!(bad.get(), Err(WireError::Invalid { .. })));
        let bad: AsJson<RtpParameters> = AsJson::from_raw(vec![0xff; 16]);
        assert!(matches!(bad.get(), Err(WireError::Invalid { .. })));
        let big: AsJson<RtpParameters> = AsJson::from_raw(vec![b' '; MAX_JSON_BYTES + 1]);
        assert!(matches!(big.get(), Err(WireError::TooLarge { .. })));
    }
}
