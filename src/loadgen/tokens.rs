//! Access tokens for loadgen's signalling participants: minted with a key
//! given to loadgen (`--auth-key kid:secret`, or [`use_keys`] in process),
//! or else asked of the node's `GET /api/dev-token` (a node in dev mode).

use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::target::TargetError;
use crate::auth::{AuthKey, Grants, Keys, Publish};

/// How long a minted token lasts (a soak may run for hours).
const TTL: Duration = Duration::from_secs(24 * 3600);

static KEYS: OnceLock<Keys> = OnceLock::new();

/// Mint tokens with `key` from now on (first call wins).
pub fn use_keys(key: AuthKey) {
    let _ = KEYS.set(Keys::new(vec![key]));
}

/// Parses `kid:secret`.
pub fn parse_key(spec: &str) -> Result<AuthKey, String> {
    match spec.split_once(':') {
        Some((kid, secret)) if !kid.is_empty() && secret.len() >= 32 => Ok(AuthKey {
            kid: kid.to_owned(),
            secret: secret.to_owned(),
        }),
        _ => Err("--auth-key is `kid:secret`, the secret at least 32 bytes".into()),
    }
}

/// What loadgen's participants do: publish, subscribe, plain RTP.
fn grants() -> Grants {
    Grants {
        publish: Publish::All(true),
        subscribe: true,
        plain: true,
        rename: true,
    }
}

/// A token for `name` in `room` at the node of WebSocket URL `ws_url`.
pub async fn token_for(ws_url: &str, room: &str, name: &str) -> Result<String, TargetError> {
    if let Some(keys) = KEYS.get() {
        return keys
            .issue(room, name, TTL, grants())
            .map_err(|e| TargetError::Signalling(e.to_string()));
    }
    dev_token(ws_url, room, name).await
}

/// `GET /api/dev-token` of the node behind `ws_url` (plain HTTP/1.1).
async fn dev_token(ws_url: &str, room: &str, name: &str) -> Result<String, TargetError> {
    let fail = |m: String| TargetError::Signalling(format!("dev token from {ws_url}: {m}"));
    let rest = ws_url
        .strip_prefix("ws://")
        .ok_or_else(|| fail("only ws:// URLs (or give loadgen --auth-key)".into()))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("room", room)
        .append_pair("identity", name)
        .append_pair("grant", "publish")
        .append_pair("grant", "subscribe")
        .append_pair("grant", "plain")
        .append_pair("grant", "rename")
        .finish();
    let request =
        format!("GET /api/dev-token?{query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        let mut tcp = TcpStream::connect(host).await?;
        tcp.write_all(request.as_bytes()).await?;
        let mut body = Vec::new();
        tcp.take(64 * 1024).read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no HTTP response".into()))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(fail(format!(
            "{status} (a node not in dev mode needs loadgen --auth-key)"
        )));
    }
    // The body may be chunked: take the JSON object in it.
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .ok_or_else(|| fail("no JSON body".into()))?;
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| fail(e.to_string()))?;
    v.get("token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| fail("no token in the reply".into()))
}
