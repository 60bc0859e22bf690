//! Access tokens (JWT) and their grants against a real node: every bad
//! token gets `unauthorized` before anything is made for it, every
//! request outside the grants `forbidden`, and the honest path works.

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mafalda::auth::{AuthKey, Claims, Grants, Keys, Publish};
use mafalda::config::AuthMode;
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token of the test key with the given times and room.
fn signed(room: &str, exp: u64, nbf: u64, key: &AuthKey) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(key.kid.clone());
    let claims = Claims {
        room: room.into(),
        sub: "mallory".into(),
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
}

/// Nothing was made on the node for refused joins.
async fn nothing_made(node: &mafalda::node::RunningNode) {
    let s = status(node).await;
    assert_eq!(
        (s.rooms, s.peers, s.transports, s.producers),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

#[actix_rt::test]
async fn bad_tokens_are_unauthorized_before_anything_is_made() {
    let node = start_node(test_config(1)).await;
    let mut c = Client::connect(node.http_addr).await;
    let t = now();
    let stranger = AuthKey {
        kid: "test".into(),
        secret: "not the node's secret but long enough anyway".into(),
    };
    let unknown_kid = AuthKey {
        kid: "other".into(),
        secret: test_key().secret,
    };
    let cases = [
        ("no token", json!({"room": "r", "displayName": "m"})),
        (
            "forged signature",
            json!({"room": "r", "displayName": "m", "token": signed("r", t + 600, t, &stranger)}),
        ),
        (
            "expired",
            json!({"room": "r", "displayName": "m", "token": signed("r", t - 60, t - 600, &test_key())}),
        ),
        (
            "not yet valid",
            json!({"room": "r", "displayName": "m", "token": signed("r", t + 7200, t + 3600, &test_key())}),
        ),
        (
            "wrong room",
            json!({"room": "r", "displayName": "m", "token": token("another-room", "m")}),
        ),
        (
            "unknown key",
            json!({"room": "r", "displayName": "m", "token": signed("r", t + 600, t, &unknown_kid)}),
        ),
        (
            "garbage",
            json!({"room": "r", "displayName": "m", "token": "a.b.c"}),
        ),
    ];
    for (what, join) in cases {
        let r = c.fails("join", join, "unauthorized").await;
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {r}"
        );
    }
    nothing_made(&node).await;
    let refused: u64 = node
        .server
        .env()
        .tallies
        .joins_refused()
        .iter()
        .filter(|(code, _)| code == "unauthorized")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(refused, 7, "each refusal is counted");
    // The socket survives: a good token joins.
    c.join("r", "alice").await;
    node.stop().await;
}

#[actix_rt::test]
async fn requests_outside_the_grants_are_forbidden() {
    let node = start_node(test_config(1)).await;
    // Subscribe only, on the URL: no publishing, no plain transports.
    let viewer = Grants {
        publish: Publish::All(false),
        subscribe: true,
        plain: false,
        rename: false,
    };
    let url = format!(
        "ws://{}/ws?token={}",
        node.http_addr,
        token_with("g", "viewer-1", viewer)
    );
    let mut c = Client::connect_url(&url).await;
    let joined = c
        .ok("join", json!({"room": "g", "displayName": "someone else"}))
        .await;
    assert!(joined["peerId"].is_string());
    let t = c
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    c.fails(
        "produce",
        json!({"transportId": t["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(1)}),
        "forbidden",
    )
    .await;
    c.fails(
        "createPlainTransport",
        json!({"direction": "send"}),
        "forbidden",
    )
    .await;
    let s = status(&node).await;
    assert_eq!((s.producers, s.transports), (0, 1), "{s:?}");

    // Audio only, and plain: video is forbidden, audio is not; a plain
    // transport may only send to an allowed network.
    let audio = Grants {
        publish: Publish::Kinds(vec!["audio".into()]),
        subscribe: false,
        plain: true,
        rename: false,
    };
    let mut a = Client::connect(node.http_addr).await;
    a.ok(
        "join",
        json!({"room": "g", "displayName": "x", "token": token_with("g", "tool", audio)}),
    )
    .await;
    // The display name is the token's identity (no `rename` grant).
    let seen = c.event("peerJoined").await;
    assert_eq!(seen["displayName"], "tool");
    let p = a
        .ok(
            "createPlainTransport",
            json!({"direction": "send", "comedia": true}),
        )
        .await;
    a.fails(
        "produce",
        json!({"transportId": p["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(2)}),
        "forbidden",
    )
    .await;
    a.ok(
        "produce",
        json!({"transportId": p["id"], "kind": "audio", "rtpParameters": opus_rtp_parameters(3)}),
    )
    .await;
    a.fails(
        "connectPlainTransport",
        json!({"transportId": p["id"], "ip": "169.254.169.254", "port": 5000}),
        "forbidden",
    )
    .await;
    let recv = a
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    let producer = c.event("newProducer").await;
    a.fails(
        "consume",
        json!({"transportId": recv["id"], "producerId": producer["producerId"], "rtpCapabilities": client_rtp_capabilities()}),
        "forbidden",
    )
    .await;
    let s = status(&node).await;
    assert_eq!((s.producers, s.consumers), (1, 0), "{s:?}");
    drop((a, c));
    wait_idle(&node).await;
    node.stop().await;
}

#[actix_rt::test]
async fn dev_mode_hands_out_tokens_and_token_mode_does_not() {
    let node = start_node(test_config(1)).await;
    let head = http_status(node.http_addr, "/api/dev-token?room=r&identity=a").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    node.stop().await;

    let mut dev = test_config(1);
    dev.auth.mode = AuthMode::Dev;
    dev.auth.keys.clear();
    let node = start_node(dev).await;
    let body = http_get(
        node.http_addr,
        "/api/dev-token?room=demo&identity=dora&grant=publish&grant=subscribe",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = v["token"].as_str().expect("a token");
    let mut c = Client::connect(node.http_addr).await;
    let joined = c
        .ok(
            "join",
            json!({"room": "demo", "displayName": "d", "token": token}),
        )
        .await;
    assert!(joined["peerId"].is_string());
    // A dev token opens its room only.
    let mut other = Client::connect(node.http_addr).await;
    other
        .fails(
            "join",
            json!({"room": "elsewhere", "displayName": "d", "token": token}),
            "unauthorized",
        )
        .await;
    drop(c);
    wait_idle(&node).await;
    node.stop().await;
}

#[test]
fn a_node_without_keys_refuses_to_start_unless_in_dev_mode() {
    let mut c = mafalda::config::Config::default();
    let err = c.check_startable().expect_err("no key, token mode");
    assert!(err.to_string().contains("auth.keys"), "{err}");
    c.auth.mode = AuthMode::Dev;
    assert!(c.check_startable().is_ok());
    let keys = Keys::new(vec![test_key()]);
    assert!(keys
        .issue("r", "a", Duration::from_secs(60), Grants::participant())
        .is_ok());
}
