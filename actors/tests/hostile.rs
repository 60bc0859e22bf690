//! Hostile input: garbage streams, oversized and truncated frames, wrong
//! protocol version, unknown tags, peers without a valid certificate. Each
//! test checks that nothing panics and that the other links keep working.

mod common;

use std::{net::SocketAddr, sync::Arc};

use bytes::{BufMut, BytesMut};
use common::*;
use mafalda_actors::{
    codec,
    frame::FrameDecoder,
    id::Incarnation,
    wire::{
        decode_handshake, decode_with_body, encode_handshake_versioned, encode_with_body,
        stream_kind, Hello, HelloReply, RejectReason, Reply, Request, TellHeader, ALPN,
        PROTOCOL_VERSION,
    },
    Node,
};
use rand::RngCore;

const MAX: usize = 1 << 20;

fn client(config: quinn::ClientConfig) -> quinn::Endpoint {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(config);
    ep
}

fn transport() -> Arc<quinn::TransportConfig> {
    Arc::new(quinn::TransportConfig::default())
}

fn hello(name: &str, ep: &quinn::Endpoint) -> Hello {
    Hello {
        incarnation: Incarnation {
            node: id(name),
            addr: ep.local_addr().unwrap(),
            generation: 1,
            bump: 0,
        },
        max_frame_bytes: MAX as u32,
    }
}

/// Sends a handshake frame of `version` and returns the decoded reply.
async fn handshake(
    conn: &quinn::Connection,
    hello: &Hello,
    version: u16,
) -> Result<HelloReply, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    buf.put_u8(stream_kind::HANDSHAKE);
    encode_handshake_versioned(hello, version, MAX, &mut buf).unwrap();
    send.write_all(&buf).await.map_err(|e| e.to_string())?;
    send.finish().unwrap();
    let bytes = recv.read_to_end(1 << 16).await.map_err(|e| e.to_string())?;
    let mut bytes = BytesMut::from(&bytes[..]);
    let frame = FrameDecoder::new(MAX)
        .decode(&mut bytes)
        .map_err(|e| e.to_string())?
        .ok_or("no reply frame")?;
    decode_handshake(&frame).map_err(|e| e.to_string())
}

/// A raw fabric link to `node`, authenticated as `name`.
async fn raw_link(pki: &Pki, name: &str, node: &Node) -> (quinn::Endpoint, quinn::Connection) {
    let ep = client(pki.tls(name).client_config(transport()).unwrap());
    let conn = ep
        .connect(node.addr(), node.id().as_str())
        .unwrap()
        .await
        .unwrap();
    let reply = handshake(&conn, &hello(name, &ep), PROTOCOL_VERSION)
        .await
        .unwrap();
    assert!(matches!(reply, HelloReply::Accept { .. }), "{reply:?}");
    (ep, conn)
}

/// Writes `bytes` on a new bidirectional stream and returns the reply
/// header, or `None` if the node reset/stopped the stream.
async fn raw_ask(conn: &quinn::Connection, bytes: &[u8]) -> Option<(Reply, Vec<u8>)> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let data = within("raw ask reply", SOON, recv.read_to_end(MAX + 64))
        .await
        .ok()?;
    let mut data = BytesMut::from(&data[..]);
    let frame = FrameDecoder::new(MAX).decode(&mut data).ok()??;
    let (reply, body) = decode_with_body::<Reply>(&frame).ok()?;
    Some((reply, body.to_vec()))
}

fn ask_bytes(request: &Request, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u8(stream_kind::ASK);
    encode_with_body(request, body, MAX, &mut buf).unwrap();
    buf.to_vec()
}

async fn two_nodes(pki: &Pki) -> (Node, Node) {
    let a = start(pki, "node-a", vec![]).await;
    let b = start(pki, "node-b", vec![a.addr()]).await;
    spawn_worker(&a);
    spawn_worker(&b);
    wait_members(&a, &["node-b"]).await;
    (a, b)
}

async fn assert_cluster_works(a: &Node, b: &Node) {
    let r = a.actor_ref::<Echo>(b.id(), "worker").unwrap();
    assert_eq!(r.ask(Echo("ok".into())).await.unwrap(), "node-b:ok");
    let r = b.actor_ref::<Echo>(a.id(), "worker").unwrap();
    assert_eq!(r.ask(Echo("ok".into())).await.unwrap(), "node-a:ok");
}

#[actix_rt::test]
async fn garbage_streams_close_only_themselves() {
    init();
    let pki = Pki::new();
    let (a, b) = two_nodes(&pki).await;
    let (_ep, conn) = raw_link(&pki, "evil", &a).await;
    let mut rng = rand::thread_rng();

    // Random bytes after a valid ask kind byte, and with a random kind.
    for _ in 0..20 {
        let mut junk = vec![0u8; 1 + (rng.next_u32() % 2048) as usize];
        rng.fill_bytes(&mut junk);
        let mut with_kind = vec![stream_kind::ASK];
        with_kind.extend_from_slice(&junk);
        if let Some((reply, _)) = raw_ask(&conn, &with_kind).await {
            assert!(matches!(reply, Reply::Decode(_)), "{reply:?}");
        }
        let _ = raw_ask(&conn, &junk).await;
        // Garbage on a tell stream.
        let mut uni = conn.open_uni().await.unwrap();
        let mut tell = vec![stream_kind::TELL];
        tell.extend_from_slice(&junk);
        let _ = uni.write_all(&tell).await;
        let _ = uni.finish();
    }

    // A frame announcing more than the limit: refused from the prefix.
    let mut huge = vec![stream_kind::ASK];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(b"0123456789");
    let (reply, _) = raw_ask(&conn, &huge)
        .await
        .expect("reply to oversized frame");
    assert!(
        matches!(&reply, Reply::Decode(m) if m.contains("exceeds the limit")),
        "{reply:?}"
    );

    // A truncated frame: 100 bytes announced, 10 sent, stream finished.
    let mut short = vec![stream_kind::ASK];
    short.extend_from_slice(&100u32.to_be_bytes());
    short.extend_from_slice(b"0123456789");
    let (reply, _) = raw_ask(&conn, &short)
        .await
        .expect("reply to truncated frame");
    assert!(
        matches!(&reply, Reply::Decode(m) if m.contains("ended inside a frame")),
        "{reply:?}"
    );

    // Unknown tag, unknown actor, undecodable body: typed replies.
    let unknown_tag = Request::Ask {
        actor: "worker".into(),
        tag: "no.such.Tag/v1".into(),
        trace: 1,
    };
    assert_eq!(
        raw_ask(&conn, &ask_bytes(&unknown_tag, b""))
            .await
            .unwrap()
            .0,
        Reply::UnknownMessage
    );
    let unknown_actor = Request::Ask {
        actor: "nobody".into(),
        tag: "test.Echo/v1".into(),
        trace: 2,
    };
    assert_eq!(
        raw_ask(&conn, &ask_bytes(&unknown_actor, b""))
            .await
            .unwrap()
            .0,
        Reply::UnknownActor
    );
    // Trace 0 (none) is tolerated: the node picks an id itself.
    let echo = Request::Ask {
        actor: "worker".into(),
        tag: "test.Echo/v1".into(),
        trace: 0,
    };
    let (reply, _) = raw_ask(&conn, &ask_bytes(&echo, &[0xff; 3])).await.unwrap();
    assert!(matches!(reply, Reply::Decode(_)), "{reply:?}");

    // The same raw link still works.
    let body = codec::encode(&Echo("raw".into())).unwrap();
    let (reply, body) = raw_ask(&conn, &ask_bytes(&echo, &body)).await.unwrap();
    assert_eq!(reply, Reply::Ok);
    assert_eq!(codec::decode::<String>(&body).unwrap(), "node-a:raw");

    // Tells: an unknown tag is dropped and counted; the stream goes on.
    let mut uni = conn.open_uni().await.unwrap();
    let mut buf = BytesMut::new();
    buf.put_u8(stream_kind::TELL);
    let bind = |route, tag: &str| TellHeader::Bind {
        route,
        actor: "worker".into(),
        tag: tag.into(),
        trace: 3,
    };
    encode_with_body(&bind(0, "no.such.Tag/v1"), b"x", MAX, &mut buf).unwrap();
    let push = codec::encode(&Push {
        from: "evil".into(),
        seq: 7,
    })
    .unwrap();
    encode_with_body(&bind(1, "test.Push/v1"), &push, MAX, &mut buf).unwrap();
    uni.write_all(&buf).await.unwrap();
    uni.finish().unwrap();
    let log = a.actor_ref::<Log>(a.id(), "worker").unwrap();
    eventually("tell after unknown tag", SOON, async || {
        let got = log
            .ask(Log {
                from: "evil".into(),
            })
            .await
            .unwrap();
        (got == vec![7]).then_some(())
    })
    .await;
    assert!(a.stats().unknown_messages >= 3);
    assert!(a.stats().decode_errors > 0);

    assert_cluster_works(&a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
    assert_no_panic();
}

#[actix_rt::test]
async fn wrong_protocol_version_and_wrong_name_are_refused() {
    init();
    let pki = Pki::new();
    let (a, b) = two_nodes(&pki).await;
    let ep = client(pki.tls("evil").client_config(transport()).unwrap());

    let conn = ep.connect(a.addr(), "node-a").unwrap().await.unwrap();
    let reply = handshake(&conn, &hello("evil", &ep), PROTOCOL_VERSION + 98)
        .await
        .unwrap();
    assert_eq!(
        reply,
        HelloReply::Reject(RejectReason::VersionMismatch {
            supported: PROTOCOL_VERSION
        })
    );
    // The dialer's side of the check, as the node itself runs it.
    let mut buf = BytesMut::new();
    encode_handshake_versioned(&reply, PROTOCOL_VERSION + 98, MAX, &mut buf).unwrap();
    let frame = FrameDecoder::new(MAX).decode(&mut buf).unwrap().unwrap();
    let err = decode_handshake::<HelloReply>(&frame).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "protocol version mismatch: local version {PROTOCOL_VERSION}, remote version {}",
            PROTOCOL_VERSION + 98
        )
    );

    // Version 1 (before trace ids in the headers) is refused, naming 2.
    let conn = ep.connect(a.addr(), "node-a").unwrap().await.unwrap();
    let reply = handshake(&conn, &hello("evil", &ep), 1).await.unwrap();
    assert_eq!(
        reply,
        HelloReply::Reject(RejectReason::VersionMismatch { supported: 2 })
    );

    // A valid certificate for "evil" claiming to be node-b.
    let conn = ep.connect(a.addr(), "node-a").unwrap().await.unwrap();
    let reply = handshake(&conn, &hello("node-b", &ep), PROTOCOL_VERSION)
        .await
        .unwrap();
    assert_eq!(reply, HelloReply::Reject(RejectReason::NameMismatch));

    // Not a handshake at all.
    let conn = ep.connect(a.addr(), "node-a").unwrap().await.unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let _ = send.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let _ = send.finish();
    within("connection closed by the node", SOON, conn.closed()).await;

    assert_cluster_works(&a, &b).await;
    assert!(a.stats().refused_links >= 3);
    a.shutdown().await;
    b.shutdown().await;
    assert_no_panic();
}

#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn no_cert_client() -> quinn::ClientConfig {
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
    .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ))
}

/// Tries to get a handshake reply; must fail one way or another.
async fn must_be_refused(config: quinn::ClientConfig, addr: SocketAddr, name: &str) {
    let ep = client(config);
    let attempt = async {
        let conn = ep
            .connect(addr, "node-a")
            .unwrap()
            .await
            .map_err(|e| e.to_string())?;
        handshake(&conn, &hello(name, &ep), PROTOCOL_VERSION).await
    };
    let result = within("refusal", SOON, attempt).await;
    assert!(result.is_err(), "{name}: got a handshake reply: {result:?}");
}

#[actix_rt::test]
async fn peers_without_a_valid_certificate_are_refused() {
    init();
    let pki = Pki::new();
    let (a, b) = two_nodes(&pki).await;

    // A certificate from another CA (the client trusts our CA, so only the
    // node's check can refuse it).
    let other = Pki::new();
    let rogue = other.node_pem("rogue");
    let rogue_tls =
        mafalda_actors::TlsConfig::from_pem(&pki.ca.cert_pem, &rogue.cert_pem, &rogue.key_pem)
            .unwrap();
    must_be_refused(
        rogue_tls.client_config(transport()).unwrap(),
        a.addr(),
        "rogue",
    )
    .await;

    // No certificate at all.
    must_be_refused(no_cert_client(), a.addr(), "anonymous").await;

    // A node of another CA refusing to talk to us as a server: dialing it
    // with our client config fails at the TLS handshake.
    let foreign = start(&other, "node-x", vec![]).await;
    must_be_refused(
        pki.tls("evil").client_config(transport()).unwrap(),
        foreign.addr(),
        "evil",
    )
    .await;

    eventually("refusals counted", SOON, async || {
        (a.stats().refused_links >= 2).then_some(())
    })
    .await;
    assert_cluster_works(&a, &b).await;
    foreign.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    assert_no_panic();
}

#[actix_rt::test]
async fn a_node_with_an_expired_certificate_cannot_join() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-valid", vec![]).await;
    let day = std::time::Duration::from_secs(24 * 3600);
    let now = std::time::SystemTime::now();
    let expired = mafalda_actors::tls::generate_node_cert_valid(
        &pki.ca.cert_pem,
        &pki.ca.key_pem,
        &id("node-expired"),
        now - 2 * day,
        now - day,
    )
    .unwrap();
    let mut c = config(&pki, "node-expired", vec![]);
    c.tls =
        mafalda_actors::TlsConfig::from_pem(&pki.ca.cert_pem, &expired.cert_pem, &expired.key_pem)
            .unwrap();
    let b = mafalda_actors::Node::start(c, std::future::pending())
        .await
        .unwrap();
    assert!(
        b.join(a.addr()).await.is_err(),
        "an expired certificate was accepted"
    );
    assert!(a.members().iter().all(|m| m.id != id("node-expired")));
    // A valid certificate of the same CA does join.
    let fresh = start(&pki, "node-fresh", vec![]).await;
    fresh
        .join(a.addr())
        .await
        .expect("a valid certificate joins");
    b.shutdown().await;
    fresh.shutdown().await;
    a.shutdown().await;
}

#[actix_rt::test]
async fn a_node_reloads_its_certificate_without_a_restart() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-reloads", vec![]).await;
    let day = std::time::Duration::from_secs(24 * 3600);
    let now = std::time::SystemTime::now();
    let cert = |not_before, not_after| {
        let c = mafalda_actors::tls::generate_node_cert_valid(
            &pki.ca.cert_pem,
            &pki.ca.key_pem,
            &id("node-reloads"),
            not_before,
            not_after,
        )
        .unwrap();
        mafalda_actors::TlsConfig::from_pem(&pki.ca.cert_pem, &c.cert_pem, &c.key_pem).unwrap()
    };
    // A certificate for another node is refused, and nothing changes.
    let other = pki.node_pem("someone-else");
    let wrong =
        mafalda_actors::TlsConfig::from_pem(&pki.ca.cert_pem, &other.cert_pem, &other.key_pem)
            .unwrap();
    assert!(a.reload_tls(wrong).is_err());
    // Reloaded with an expired certificate: a new peer refuses to link, so
    // the node really presents the new one.
    a.reload_tls(cert(now - 2 * day, now - day)).unwrap();
    let b = start(&pki, "node-dials", vec![]).await;
    assert!(
        b.join(a.addr()).await.is_err(),
        "the expired certificate was accepted"
    );
    // Reloaded again with a valid one: the same peer links, no restart.
    a.reload_tls(cert(now - day, now + 90 * day)).unwrap();
    b.join(a.addr())
        .await
        .expect("links with the fresh certificate");
    eventually("a to see b", SOON, async || {
        a.members()
            .iter()
            .any(|m| m.id == id("node-dials"))
            .then_some(())
    })
    .await;
    b.shutdown().await;
    a.shutdown().await;
    assert_no_panic();
}
