//! mediasoup's `plain_transport` tests, against `mafalda::mediasoup`, in both
//! modes (one worker; two workers).

#[path = "common.rs"]
mod common;
#[path = "fixtures.rs"]
mod fixtures;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use fixtures::*;
use mafalda::mediasoup::data_structures::{SctpState, SocketFlags, TransportTuple};
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::router::Router;
use mafalda::mediasoup::srtp_parameters::{SrtpCryptoSuite, SrtpParameters};
use mafalda::mediasoup::worker::RequestError;

/// A port of this test's own: `base` in one-worker mode, `base + 1` in
/// two-worker mode (both modes run at once). Kept in 23400..23500, out of
/// the node's `[rtc]` range and of the kernel's ephemeral range.
fn own_port(mode: Mode, base: u16) -> u16 {
    base + u16::from(mode == Mode::TwoWorkers)
}

/// UDP on `ip`, announced as `announced`.
fn announced(ip: IpAddr, announced: Option<&str>) -> ListenInfo {
    ListenInfo {
        ip,
        announced_address: announced.map(str::to_owned),
        ..listen_info()
    }
}

fn localhost(announce: Option<&str>) -> ListenInfo {
    announced(IpAddr::V4(Ipv4Addr::LOCALHOST), announce)
}

/// Options on 127.0.0.1 announced as 4.4.4.4, without RTCP mux.
fn options() -> PlainTransportOptions {
    let mut o = PlainTransportOptions::new(localhost(Some("4.4.4.4")));
    o.rtcp_mux = false;
    o
}

async fn setup(mode: Mode) -> (Worker, Router, PlainTransport) {
    let worker = worker(mode).await;
    let router = router(&worker, codecs()).await;
    let t = router
        .create_plain_transport(options())
        .await
        .expect("transport");
    (worker, router, t)
}

/// A listen info on the multicast group 224.0.0.1 at `port`.
fn multicast(port: u16, udp_reuse_port: bool, ipv6_only: bool) -> ListenInfo {
    ListenInfo {
        port: Some(port),
        flags: Some(SocketFlags {
            ipv6_only,
            udp_reuse_port,
        }),
        ..announced("224.0.0.1".parse().expect("ip"), None)
    }
}

both_modes! {
    async fn create_succeeds(mode: Mode) {
        let (_w, router, t) = setup(mode).await;
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.transport_ids.into_iter().collect::<Vec<_>>(), vec![t.id()]);
        drop(t);

        let created = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&created);
        router
            .on_new_transport(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        let mut o = PlainTransportOptions::new(localhost(Some("9.9.9.1")));
        o.rtcp_mux = true;
        o.enable_sctp = true;
        o.app_data = AppData::new(Tag("plain"));
        let t1 = router.create_plain_transport(o).await.expect("transport");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert!(!Transport::closed(&t1));
        assert_eq!(t1.app_data().downcast_ref::<Tag>(), Some(&Tag("plain")));
        let tuple = t1.tuple();
        assert!(matches!(tuple, TransportTuple::LocalOnly { .. }), "{tuple:?}");
        assert_eq!((tuple.local_address().as_str(), tuple.protocol()), ("9.9.9.1", Protocol::Udp));
        assert_eq!(t1.rtcp_tuple(), None);
        let sctp = t1.sctp_parameters().expect("sctp parameters");
        assert_eq!((sctp.port, sctp.max_send_message_size), (5000, 262_144));
        assert_eq!(t1.sctp_state(), Some(SctpState::New));
        assert_eq!(t1.srtp_parameters(), None);
        let d = t1.dump().await.expect("transport dump");
        assert_eq!((d.id, d.direct), (t1.id(), false));
        assert!(d.producer_ids.is_empty() && d.consumer_ids.is_empty());
        assert_eq!((d.tuple, d.rtcp_tuple), (t1.tuple(), t1.rtcp_tuple()));
        assert_eq!((d.srtp_parameters, d.sctp_state), (t1.srtp_parameters(), t1.sctp_state()));

        let rtcp_port = own_port(mode, 23441);
        let mut o = PlainTransportOptions::new(localhost(None));
        o.rtcp_mux = false;
        o.rtcp_listen_info = Some(ListenInfo { port: Some(rtcp_port), ..localhost(None) });
        let t2 = router.create_plain_transport(o).await.expect("transport");
        assert!(!Transport::closed(&t2));
        assert_eq!(t2.app_data().downcast_ref::<()>(), Some(&()));
        let tuple = t2.tuple();
        assert!(matches!(tuple, TransportTuple::LocalOnly { .. }), "{tuple:?}");
        let local = (tuple.local_address().as_str(), tuple.protocol());
        assert_eq!(local, ("127.0.0.1", Protocol::Udp));
        let rtcp = t2.rtcp_tuple().expect("rtcp tuple");
        assert!(matches!(rtcp, TransportTuple::LocalOnly { .. }), "{rtcp:?}");
        assert_eq!(
            (rtcp.local_address().as_str(), rtcp.local_port(), rtcp.protocol()),
            ("127.0.0.1", rtcp_port, Protocol::Udp)
        );
        assert_eq!((t2.srtp_parameters(), t2.sctp_state()), (None, None));
        let d = t2.dump().await.expect("transport dump");
        assert_eq!((d.id, d.direct), (t2.id(), false));
        assert_eq!((d.tuple, d.rtcp_tuple), (t2.tuple(), t2.rtcp_tuple()));
        assert_eq!(d.sctp_state, t2.sctp_state());
    }

    async fn create_with_fixed_port_succeeds(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let port = own_port(mode, 23431);
        let info = ListenInfo { port: Some(port), ..localhost(Some("4.4.4.4")) };
        let t = router
            .create_plain_transport(PlainTransportOptions::new(info))
            .await
            .expect("transport");
        assert_eq!(t.tuple().local_port(), port);
    }

    async fn weak(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let weak = t.downgrade();
        assert!(weak.upgrade().is_some());
        drop(t);
        assert!(weak.upgrade().is_none());
    }

    async fn create_enable_srtp_succeeds(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let mut o = PlainTransportOptions::new(localhost(Some("9.9.9.1")));
        o.enable_srtp = true;
        let t = router.create_plain_transport(o).await.expect("transport");
        let srtp = t.srtp_parameters().expect("srtp parameters");
        assert_eq!(srtp.crypto_suite, SrtpCryptoSuite::AesCm128HmacSha180);
        assert_eq!(srtp.key_base64.len(), 40);
        let remote = |srtp_parameters| PlainTransportRemoteParameters {
            ip: Some("127.0.0.2".parse().expect("ip")),
            port: Some(9999),
            rtcp_port: None,
            srtp_parameters,
        };
        // SRTP is on: its parameters are required.
        let r = t.connect(remote(None)).await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
        // And they may change the crypto suite.
        t.connect(remote(Some(SrtpParameters {
            crypto_suite: SrtpCryptoSuite::AeadAes256Gcm,
            key_base64: "YTdjcDBvY2JoMGY5YXNlNDc0eDJsdGgwaWRvNnJsamRrdG16aWVpZHphdHo=".into(),
        })))
        .await
        .expect("connect");
        let srtp = t.srtp_parameters().expect("srtp parameters");
        assert_eq!(srtp.crypto_suite, SrtpCryptoSuite::AeadAes256Gcm);
        assert_eq!(srtp.key_base64.len(), 60);
    }

    async fn create_non_bindable_ip(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let o = PlainTransportOptions::new(announced("8.8.8.8".parse().expect("ip"), None));
        let r = router.create_plain_transport(o).await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
    }

    async fn create_two_transports_binding_to_same_ip_port_with_udp_reuse_port_flag_succeed(
        mode: Mode
    ) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let port = own_port(mode, 23451);
        // ipv6_only is ignored on an IPv4 address.
        let t1 = router
            .create_plain_transport(PlainTransportOptions::new(multicast(port, true, true)))
            .await
            .expect("first");
        let t2 = router
            .create_plain_transport(PlainTransportOptions::new(multicast(port, true, false)))
            .await
            .expect("second");
        assert_eq!((t1.tuple().local_port(), t2.tuple().local_port()), (port, port));
    }

    async fn create_two_transports_binding_to_same_ip_port_without_udp_reuse_port_flag_fails(
        mode: Mode
    ) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let port = own_port(mode, 23461);
        let t1 = router
            .create_plain_transport(PlainTransportOptions::new(multicast(port, false, false)))
            .await
            .expect("first");
        let r = router
            .create_plain_transport(PlainTransportOptions::new(multicast(port, false, false)))
            .await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
        assert_eq!(t1.tuple().local_port(), port);
    }

    async fn get_stats_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let stats = t.get_stats().await.expect("stats");
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!(s.transport_id, t.id());
        let counters = [
            s.bytes_received, s.recv_bitrate, s.bytes_sent, s.send_bitrate,
            s.rtp_bytes_received, s.rtp_recv_bitrate, s.rtp_bytes_sent, s.rtp_send_bitrate,
            s.rtx_bytes_received, s.rtx_recv_bitrate, s.rtx_bytes_sent, s.rtx_send_bitrate,
            s.probation_bytes_sent, s.probation_send_bitrate,
        ];
        assert_eq!(counters, [0; 14]);
        assert!(matches!(s.tuple, TransportTuple::LocalOnly { .. }), "{:?}", s.tuple);
        let local = (s.tuple.local_address().as_str(), s.tuple.protocol());
        assert_eq!(local, ("4.4.4.4", Protocol::Udp));
        assert_eq!(s.rtcp_tuple, None);
    }

    async fn connect_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let remote = || PlainTransportRemoteParameters {
            ip: Some("1.2.3.4".parse().expect("ip")),
            port: Some(1234),
            rtcp_port: Some(1235),
            srtp_parameters: None,
        };
        t.connect(remote()).await.expect("connect");
        // A second connect is refused.
        let r = t.connect(remote()).await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
        let ip: IpAddr = "1.2.3.4".parse().expect("ip");
        let tuple = t.tuple();
        assert!(matches!(tuple, TransportTuple::WithRemote { .. }), "{tuple:?}");
        let remote = (tuple.remote_ip(), tuple.remote_port(), tuple.protocol());
        assert_eq!(remote, (Some(ip), Some(1234), Protocol::Udp));
        let rtcp = t.rtcp_tuple().expect("rtcp tuple");
        assert!(matches!(rtcp, TransportTuple::WithRemote { .. }), "{rtcp:?}");
        let remote = (rtcp.remote_ip(), rtcp.remote_port(), rtcp.protocol());
        assert_eq!(remote, (Some(ip), Some(1235), Protocol::Udp));
    }

    async fn connect_wrong_arguments(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        // SRTP is off: SRTP parameters are refused.
        let r = t
            .connect(PlainTransportRemoteParameters {
                ip: Some("127.0.0.2".parse().expect("ip")),
                port: Some(9998),
                rtcp_port: Some(9999),
                srtp_parameters: Some(SrtpParameters {
                    crypto_suite: SrtpCryptoSuite::AesCm128HmacSha180,
                    key_base64: "ZnQ3eWJraDg0d3ZoYzM5cXN1Y2pnaHU5NWxrZTVv".into(),
                }),
            })
            .await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
    }

    async fn close_event(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = t.on_close(Box::new(move || {
            let _ = tx.send(());
        }));
        drop(t);
        within("transport close", rx).await.expect("closed");
    }
}
