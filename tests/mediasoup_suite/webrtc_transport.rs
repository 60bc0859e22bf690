//! mediasoup's `webrtc_transport` tests, against `mafalda::mediasoup`, in both
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
use mafalda::mediasoup::data_structures::{
    DtlsFingerprint, DtlsRole, DtlsState, IceCandidateType, IceRole, IceState, SctpState,
};
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::router::Router;
use mafalda::mediasoup::transport::TransportTraceEventType;
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

/// Options on 127.0.0.1 announced as 9.9.9.1.
fn options() -> WebRtcTransportOptions {
    WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(announced(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some("9.9.9.1"),
    )))
}

async fn setup(mode: Mode) -> (Worker, Router, WebRtcTransport) {
    let worker = worker(mode).await;
    let router = router(&worker, codecs()).await;
    let t = router
        .create_webrtc_transport(options())
        .await
        .expect("transport");
    (worker, router, t)
}

both_modes! {
    async fn create_succeeds(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        {
            let t = router.create_webrtc_transport(options()).await.expect("transport");
            let dump = router.dump().await.expect("router dump");
            assert_eq!(dump.transport_ids.into_iter().collect::<Vec<_>>(), vec![t.id()]);
        }
        let created = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&created);
        router
            .on_new_transport(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        let infos = WebRtcTransportListenInfos::new(announced(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some("9.9.9.1"),
        ))
        .insert(announced(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Some("foo1.bar.org")))
        .insert(announced(IpAddr::V4(Ipv4Addr::LOCALHOST), None));
        let mut o = WebRtcTransportOptions::new(infos);
        o.enable_sctp = true;
        o.max_send_message_size = 1_000_000;
        o.app_data = AppData::new(Tag("webrtc"));
        let t = router.create_webrtc_transport(o).await.expect("transport");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert_eq!(t.app_data().downcast_ref::<Tag>(), Some(&Tag("webrtc")));
        assert!(!Transport::closed(&t));
        assert_eq!(t.ice_role(), IceRole::Controlled);
        assert_eq!(t.ice_parameters().ice_lite, Some(true));
        let sctp = t.sctp_parameters().expect("sctp parameters");
        assert_eq!((sctp.port, sctp.max_send_message_size), (5000, 1_000_000));
        let c = t.ice_candidates();
        let addresses: Vec<_> = c.iter().map(|c| c.address.as_str()).collect();
        assert_eq!(addresses, ["9.9.9.1", "foo1.bar.org", "127.0.0.1"]);
        for c in c {
            let host = (Protocol::Udp, IceCandidateType::Host, None);
            assert_eq!((c.protocol, c.r#type, c.tcp_type), host);
        }
        assert!(c[0].priority > c[1].priority && c[1].priority > c[2].priority);
        assert_eq!((t.ice_state(), t.ice_selected_tuple()), (IceState::New, None));
        assert_eq!(t.dtls_parameters().role, DtlsRole::Auto);
        assert_eq!(t.dtls_state(), DtlsState::New);
        assert_eq!(t.sctp_state(), Some(SctpState::New));
        let d = t.dump().await.expect("transport dump");
        assert_eq!((d.id, d.direct), (t.id(), false));
        assert!(d.producer_ids.is_empty() && d.consumer_ids.is_empty());
        assert_eq!((d.ice_role, &d.ice_parameters), (t.ice_role(), t.ice_parameters()));
        assert_eq!(&d.ice_candidates, t.ice_candidates());
        assert_eq!((d.ice_state, d.ice_selected_tuple), (t.ice_state(), t.ice_selected_tuple()));
        assert_eq!((d.dtls_parameters, d.dtls_state), (t.dtls_parameters(), t.dtls_state()));
        assert_eq!((d.sctp_parameters, d.sctp_state), (t.sctp_parameters(), t.sctp_state()));
    }

    async fn create_with_fixed_port_succeeds(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let port = own_port(mode, 23411);
        let mut info = announced(IpAddr::V4(Ipv4Addr::LOCALHOST), Some("9.9.9.1"));
        info.port = Some(port);
        let t = router
            .create_webrtc_transport(WebRtcTransportOptions::new(
                WebRtcTransportListenInfos::new(info),
            ))
            .await
            .expect("transport");
        assert_eq!(t.ice_candidates()[0].port, port);
    }

    async fn create_with_port_range_succeeds(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let start = if mode == Mode::OneWorker { 23421 } else { 23423 };
        let range = start..=start + 1;
        let opts = || {
            let mut info = announced(IpAddr::V4(Ipv4Addr::LOCALHOST), Some("9.9.9.1"));
            info.port_range = Some(range.clone());
            WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(info))
        };
        let t1 = router.create_webrtc_transport(opts()).await.expect("first");
        assert!(range.contains(&t1.ice_candidates()[0].port));
        let t2 = router.create_webrtc_transport(opts()).await.expect("second");
        assert!(range.contains(&t2.ice_candidates()[0].port));
        assert_ne!(t1.ice_candidates()[0].port, t2.ice_candidates()[0].port);
        // The range is used up, whichever worker the third one lands on.
        let r = router.create_webrtc_transport(opts()).await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
    }

    async fn weak(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let weak = t.downgrade();
        assert!(weak.upgrade().is_some());
        drop(t);
        assert!(weak.upgrade().is_none());
    }

    async fn create_non_bindable_ip(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let o = WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(announced(
            "8.8.8.8".parse().expect("ip"),
            None,
        )));
        let r = router.create_webrtc_transport(o).await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
    }

    async fn get_stats_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let stats = t.get_stats().await.expect("stats");
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!(s.transport_id, t.id());
        assert_eq!(
            (s.ice_role, s.ice_state, s.dtls_state),
            (IceRole::Controlled, IceState::New, DtlsState::New)
        );
        assert_eq!((s.sctp_state, s.ice_selected_tuple.as_ref()), (None, None));
        let counters = [
            s.bytes_received, s.recv_bitrate, s.bytes_sent, s.send_bitrate,
            s.rtp_bytes_received, s.rtp_recv_bitrate, s.rtp_bytes_sent, s.rtp_send_bitrate,
            s.rtx_bytes_received, s.rtx_recv_bitrate, s.rtx_bytes_sent, s.rtx_send_bitrate,
            s.probation_bytes_sent, s.probation_send_bitrate,
        ];
        assert_eq!(counters, [0; 14]);
        assert_eq!(s.max_incoming_bitrate, None);
    }

    async fn connect_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let dtls = DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![DtlsFingerprint::Sha256 {
                value: [
                    0x82, 0x5A, 0x68, 0x3D, 0x36, 0xC3, 0x0A, 0xDE, 0xAF, 0xE7, 0x32, 0x43, 0xD2,
                    0x88, 0x83, 0x57, 0xAC, 0x2D, 0x65, 0xE5, 0x80, 0xC4, 0xB6, 0xFB, 0xAF, 0x1A,
                    0xA0, 0x21, 0x9F, 0x6D, 0x0C, 0xAD,
                ],
            }],
        };
        t.connect(WebRtcTransportRemoteParameters { dtls_parameters: dtls.clone() })
            .await
            .expect("connect");
        // A second connect is refused.
        let r = t.connect(WebRtcTransportRemoteParameters { dtls_parameters: dtls }).await;
        assert!(matches!(r, Err(RequestError::Response { .. })), "{r:?}");
        assert_eq!(t.dtls_parameters().role, DtlsRole::Server);
    }

    async fn set_max_incoming_bitrate_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        t.set_max_incoming_bitrate(1_000_000).await.expect("set");
        t.set_max_incoming_bitrate(0).await.expect("remove");
    }

    async fn set_max_outgoing_bitrate_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        t.set_max_outgoing_bitrate(2_000_000).await.expect("set");
        t.set_max_outgoing_bitrate(0).await.expect("remove");
    }

    async fn set_min_outgoing_bitrate_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        t.set_min_outgoing_bitrate(100_000).await.expect("set");
        t.set_min_outgoing_bitrate(0).await.expect("remove");
    }

    // mediasoup 0.33's worker no longer refuses a max below the min (nor
    // a min above the max), as 0.17's did: it accepts, and raises the max
    // to the min (`Transport::MayFixBweBitrateLimits`). Asserted as such
    // (the limits show in stats only once a congestion controller runs).
    async fn set_max_outgoing_bitrate_fails_if_value_is_lower_than_current_min_limit(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        t.set_min_outgoing_bitrate(3_000_000).await.expect("set min");
        t.set_max_outgoing_bitrate(2_000_000).await.expect("accepted");
        t.set_min_outgoing_bitrate(0).await.expect("remove min");
    }

    async fn set_min_outgoing_bitrate_fails_if_value_is_higher_than_current_max_limit(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        t.set_max_outgoing_bitrate(2_000_000).await.expect("set max");
        t.set_min_outgoing_bitrate(3_000_000).await.expect("accepted");
        t.set_max_outgoing_bitrate(0).await.expect("remove max");
    }

    async fn restart_ice_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        let before = t.ice_parameters().clone();
        let after = t.restart_ice().await.expect("restart");
        assert_ne!(after.username_fragment, before.username_fragment);
        assert_ne!(after.password, before.password);
    }

    async fn enable_trace_event_succeeds(mode: Mode) {
        let (_w, _router, t) = setup(mode).await;
        for types in [
            vec![TransportTraceEventType::Probation],
            vec![TransportTraceEventType::Probation, TransportTraceEventType::Bwe],
            vec![],
        ] {
            t.enable_trace_event(types.clone()).await.expect("enable");
            assert_eq!(t.dump().await.expect("dump").trace_event_types, types);
        }
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
