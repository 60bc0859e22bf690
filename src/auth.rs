//! Client access tokens: JWTs (HS256) that admit a participant to one
//! room, with grants for what it may do there.
//!
//! A token is signed with one of the node's `[auth] keys` and names it in
//! its header's `kid` (several keys allow rotation: sign with the new one,
//! keep the old one until its tokens expire). Its claims:
//!
//! - `room`: the only room it opens;
//! - `sub`: the participant's identity, its display name unless the
//!   `rename` grant lets the client choose one;
//! - `exp`, `nbf` (and `iat`): seconds since the epoch;
//! - `grants`: `publish` (`true`, or a list of `"audio"`, `"video"`,
//!   `"data"`), `subscribe`, `plain` (plain RTP transports, for server-side
//!   tools) and `rename`.
//!
//! Pure logic: issuing, verifying and checking a request against the
//! grants; the signalling session applies it ([`crate::api::ws`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::signalling::Request;
use mediasoup::prelude::MediaKind;

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthKey {
    /// Its id, the token header's `kid`.
    pub kid: String,
    /// The HS256 secret (at least 32 bytes).
    pub secret: String,
}

impl AuthKey {
    /// A key with a fresh random secret (for a node nobody joins through
    /// signalling: an embedded node, a load generator's own node).
    pub fn random(kid: &str) -> Self {
        use rand::Rng;
        let bytes: [u8; 32] = rand::thread_rng().gen();
        Self {
            kid: kid.to_owned(),
            secret: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// What a token lets a participant publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Publish {
    /// Everything (`true`) or nothing (`false`).
    All(bool),
    /// These kinds only: `"audio"`, `"video"`, `"data"`.
    Kinds(Vec<String>),
}

impl Default for Publish {
    fn default() -> Self {
        Publish::All(false)
    }
}

impl Publish {
    /// Whether `kind` (`audio`, `video` or `data`) may be published.
    pub fn allows(&self, kind: &str) -> bool {
        match self {
            Publish::All(all) => *all,
            Publish::Kinds(kinds) => kinds.iter().any(|k| k == kind),
        }
    }
}

/// What a participant may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Produce media (and DataChannels).
    pub publish: Publish,
    /// Consume others' media and DataChannels.
    pub subscribe: bool,
    /// Create and connect plain RTP transports.
    pub plain: bool,
    /// Choose its display name (otherwise it is the identity).
    pub rename: bool,
}

impl Grants {
    /// Publish and subscribe: what an ordinary participant gets.
    pub fn participant() -> Self {
        Self {
            publish: Publish::All(true),
            subscribe: true,
            plain: false,
            rename: false,
        }
    }

    /// Refuses `request` when it is outside the grants (a `forbidden`
    /// reason), before it reaches a room.
    pub fn check(&self, request: &Request) -> Result<(), String> {
        let kind = |k: MediaKind| match k {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        };
        let missing = |grant: &str| Err(format!("the token does not grant `{grant}`"));
        match request {
            Request::Produce(r) if !self.publish.allows(kind(r.kind)) => {
                missing(&format!("publish {}", kind(r.kind)))
            }
            Request::ProduceData(_) if !self.publish.allows("data") => missing("publish data"),
            Request::Consume(_) | Request::ConsumeData(_) if !self.subscribe => {
                missing("subscribe")
            }
            Request::CreatePlainTransport(_) | Request::ConnectPlainTransport(_) if !self.plain => {
                missing("plain")
            }
            _ => Ok(()),
        }
    }
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room it opens.
    pub room: String,
    /// The participant's identity.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not valid before (seconds since the epoch).
    pub nbf: u64,
    /// Issued at (seconds since the epoch).
    #[serde(default)]
    pub iat: u64,
    /// What it grants.
    #[serde(default)]
    pub grants: Grants,
}

/// Why a token was refused (`unauthorized`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `join` came without a token.
    #[error("a token is required to join (the `token` of `join`, or `?token=` on the URL)")]
    Missing,
    /// Its header names a key this node does not have.
    #[error("the token's key `{0}` is unknown to this node")]
    UnknownKey(String),
    /// It names no key and the node has several.
    #[error("the token names no key (`kid`) and this node has several")]
    NoKeyId,
    /// It has expired.
    #[error("the token has expired")]
    Expired,
    /// It is not valid yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Its signature does not verify, or it is not a token at all.
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// It opens another room.
    #[error("the token is for room `{token}`, not `{asked}`")]
    WrongRoom {
        /// Its room.
        token: String,
        /// The room asked for.
        asked: String,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The node's keys, ready to verify and sign.
#[derive(Clone)]
pub struct Keys {
    keys: Vec<AuthKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Keys").field("kids", &kids).finish()
    }
}

impl Keys {
    /// From the configured keys.
    pub fn new(keys: Vec<AuthKey>) -> Self {
        Self { keys }
    }

    /// A fresh random key (dev mode without configured keys).
    pub fn ephemeral() -> Self {
        Self::new(vec![AuthKey::random("dev")])
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A token for `identity` in `room`, valid from now for `ttl`, signed
    /// with the first key.
    pub fn issue(
        &self,
        room: &str,
        identity: &str,
        ttl: Duration,
        grants: Grants,
    ) -> Result<String, TokenError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| TokenError::Invalid("this node has no signing key".into()))?;
        let at = now();
        let claims = Claims {
            room: room.to_owned(),
            sub: identity.to_owned(),
            exp: at + ttl.as_secs().max(1),
            nbf: at,
            iat: at,
            grants,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(key.secret.as_bytes()),
        )
        .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The claims of `token` if it verifies and opens `room`.
    pub fn verify(&self, token: &str, room: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} (HS256 only)",
                header.alg
            )));
        }
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or_else(|| TokenError::UnknownKey(kid.chars().take(64).collect()))?,
            None if self.keys.len() == 1 => &self.keys[0],
            None => return Err(TokenError::NoKeyId),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.required_spec_claims = ["exp", "nbf", "sub"]
            .into_iter()
            .map(String::from)
            .collect();
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(key.secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            _ => TokenError::Invalid(e.to_string()),
        })?;
        if data.claims.room != room {
            return Err(TokenError::WrongRoom {
                token: data.claims.room.chars().take(128).collect(),
                asked: room.chars().take(128).collect(),
            });
        }
        Ok(data.claims)
    }
}

/// Parses a `--grant` value: `publish`, `publish:audio` (also `video`,
/// `data`), `subscribe`, `plain`, `rename`.
pub fn add_grant(grants: &mut Grants, spec: &str) -> Result<(), String> {
    match spec.split_once(':') {
        Some(("publish", kind)) if ["audio", "video", "data"].contains(&kind) => {
            let mut kinds = match &grants.publish {
                Publish::Kinds(k) => k.clone(),
                Publish::All(_) => Vec::new(),
            };
            if !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_owned());
            }
            grants.publish = Publish::Kinds(kinds);
        }
        None if spec == "publish" => grants.publish = Publish::All(true),
        None if spec == "subscribe" => grants.subscribe = true,
        None if spec == "plain" => grants.plain = true,
        None if spec == "rename" => grants.rename = true,
        _ => {
            return Err(format!(
            "unknown grant `{spec}` (publish, publish:audio|video|data, subscribe, plain, rename)"
        ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(vec![
            AuthKey {
                kid: "old".into(),
                secret: "an old secret of at least thirty-two bytes".into(),
            },
            AuthKey {
                kid: "new".into(),
                secret: "a new secret of at least thirty-two bytes!".into(),
            },
        ])
    }

    #[test]
    fn a_token_opens_its_room_only() {
        let k = keys();
        let t = k
            .issue(
                "r1",
                "alice",
                Duration::from_secs(60),
                Grants::participant(),
            )
            .unwrap();
        let c = k.verify(&t, "r1").unwrap();
        assert_eq!((c.sub.as_str(), c.grants), ("alice", Grants::participant()));
        assert!(matches!(
            k.verify(&t, "r2"),
            Err(TokenError::WrongRoom { .. })
        ));
    }

    #[test]
    fn forged_unknown_and_garbage_tokens_are_refused() {
        let k = keys();
        let t = k
            .issue("r", "a", Duration::from_secs(60), Grants::participant())
            .unwrap();
        // Another signature over the same claims.
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = Keys::new(vec![AuthKey {
            kid: "old".into(),
            secret: "not the node's secret, but also long enough".into(),
        }])
        .issue("r", "a", Duration::from_secs(60), Grants::participant())
        .unwrap();
        let forged_sig = other.rsplit('.').next().unwrap();
        parts[2] = forged_sig;
        assert!(matches!(
            k.verify(&parts.join("."), "r"),
            Err(TokenError::Invalid(_))
        ));
        let stranger = Keys::new(vec![AuthKey {
            kid: "who".into(),
            secret: "x".repeat(40),
        }])
        .issue("r", "a", Duration::from_secs(60), Grants::participant())
        .unwrap();
        assert_eq!(
            k.verify(&stranger, "r"),
            Err(TokenError::UnknownKey("who".into()))
        );
        assert!(matches!(
            k.verify("not a token", "r"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let k = keys();
        let key = &k.keys[0];
        let sign = |exp: u64, nbf: u64| {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(key.kid.clone());
            let claims = Claims {
                room: "r".into(),
                sub: "a".into(),
                exp,
                nbf,
                iat: nbf,
                grants: Grants::participant(),
            };
            jsonwebtoken::encode(
                &h,
                &claims,
                &EncodingKey::from_secret(key.secret.as_bytes()),
            )
            .unwrap()
        };
        let t = now();
        assert_eq!(
            k.verify(&sign(t - 100, t - 200), "r"),
            Err(TokenError::Expired)
        );
        assert_eq!(
            k.verify(&sign(t + 7200, t + 3600), "r"),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn grants_parse_and_check() {
        let mut g = Grants::default();
        for spec in ["publish:audio", "subscribe", "plain"] {
            add_grant(&mut g, spec).unwrap();
        }
        assert!(g.publish.allows("audio") && !g.publish.allows("video"));
        assert!(add_grant(&mut g, "admin").is_err());
        let produce = |kind: &str| {
            crate::signalling::parse_request(&format!(
                r#"{{"id":1,"method":"produce","data":{{"transportId":"5f2c1a10-0c1e-4a39-9d0a-3f7e8c1b2a44","kind":"{kind}","rtpParameters":{{"codecs":[],"encodings":[],"headerExtensions":[],"rtcp":{{"reducedSize":true}}}}}}}}"#
            ))
            .map(|(_, r)| r)
            .expect("parses")
        };
        assert!(g.check(&produce("audio")).is_ok());
        assert!(g
            .check(&produce("video"))
            .unwrap_err()
            .contains("publish video"));
    }
}
