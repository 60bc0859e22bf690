//! mediasoup's `producer` tests, against `mafalda::mediasoup`, in both
//! modes (one worker; two workers).

#[path = "common.rs"]
mod common;
#[path = "fixtures.rs"]
mod fixtures;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use fixtures::*;
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::producer::{ProducerTraceEventType, ProducerType};
use mafalda::mediasoup::router::Router;

async fn setup(mode: Mode) -> (Worker, Router, WebRtcTransport, WebRtcTransport) {
    let worker = worker(mode).await;
    let router = router(&worker, codecs()).await;
    let t1 = router
        .create_webrtc_transport(webrtc_options())
        .await
        .expect("t1");
    let t2 = router
        .create_webrtc_transport(webrtc_options())
        .await
        .expect("t2");
    (worker, router, t1, t2)
}

fn counter(t: &WebRtcTransport) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&n);
    t.on_new_producer(Arc::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    }))
    .detach();
    n
}

both_modes! {
    async fn produce_succeeds_1(mode: Mode) {
        let (_w, router, t1, _t2) = setup(mode).await;
        let created = counter(&t1);
        let p = t1.produce(audio_producer()).await.expect("produce");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert!(!p.closed() && !p.paused());
        assert_eq!((p.kind(), p.r#type()), (MediaKind::Audio, ProducerType::Simple));
        assert!(p.score().is_empty());
        assert_eq!(p.app_data().downcast_ref::<Tag>(), Some(&Tag("audio")));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_producer_id_consumer_ids.len(), 1);
        assert!(dump.map_producer_id_consumer_ids[&p.id()].is_empty());
        assert!(dump.map_consumer_id_producer_id.is_empty());
        let d = t1.dump().await.expect("transport dump");
        assert_eq!((d.producer_ids, d.consumer_ids), (vec![p.id()], vec![]));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        t1.on_close(Box::new(move || {
            let _ = tx.send(());
        })).detach();
        drop(p);
        drop(t1);
        within("transport close", rx).await.expect("closed");
    }

    async fn produce_succeeds_2(mode: Mode) {
        let (_w, router, _t1, t2) = setup(mode).await;
        let created = counter(&t2);
        let p = t2.produce(video_producer()).await.expect("produce");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert_eq!((p.kind(), p.r#type()), (MediaKind::Video, ProducerType::Simulcast));
        assert!(!p.paused() && p.score().is_empty());
        assert_eq!(p.app_data().downcast_ref::<Tag>(), Some(&Tag("video")));
        let dump = router.dump().await.expect("router dump");
        assert!(dump.map_producer_id_consumer_ids[&p.id()].is_empty());
        let d = t2.dump().await.expect("transport dump");
        assert_eq!(d.producer_ids, vec![p.id()]);
    }

    async fn weak(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let p = t1.produce(audio_producer()).await.expect("produce");
        let weak = p.downgrade();
        assert!(weak.upgrade().is_some());
        drop(p);
        assert!(weak.upgrade().is_none());
    }

    async fn produce_wrong_arguments(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        // No codecs at all.
        let mut rtp = audio_parameters();
        rtp.codecs.clear();
        let r = t1.produce(ProducerOptions::new(MediaKind::Audio, rtp)).await;
        assert!(matches!(r, Err(ProduceError::Request(_))), "{r:?}");
        // RTX whose apt names no codec.
        let mut rtp = video_parameters();
        if let RtpCodecParameters::Video { parameters, .. } = &mut rtp.codecs[1] {
            *parameters = RtpCodecParametersParameters::from([("apt", 111_u32.into())]);
        }
        let r = t1.produce(ProducerOptions::new(MediaKind::Video, rtp)).await;
        assert!(matches!(r, Err(ProduceError::Request(_)) | Err(ProduceError::FailedRtpParametersMapping(_))), "{r:?}");
    }

    async fn produce_unsupported_codecs(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        // ISAC is not among the router's codecs.
        let mut rtp = audio_parameters();
        rtp.codecs = serde_json::from_value(serde_json::json!([
            {"mimeType": "audio/ISAC", "payloadType": 108, "clockRate": 32000,
             "channels": 1, "parameters": {}, "rtcpFeedback": []}
        ])).expect("codec");
        let r = t1.produce(ProducerOptions::new(MediaKind::Audio, rtp)).await;
        assert!(matches!(r, Err(ProduceError::FailedRtpParametersMapping(_))), "{r:?}");
        // H264 with a profile the router does not offer.
        let mut rtp = video_parameters();
        if let RtpCodecParameters::Video { parameters, .. } = &mut rtp.codecs[0] {
            *parameters = RtpCodecParametersParameters::from([
                ("packetization-mode", 1_u32.into()),
                ("profile-level-id", "CHICKEN".into()),
            ]);
        }
        let r = t1.produce(ProducerOptions::new(MediaKind::Video, rtp)).await;
        assert!(matches!(r, Err(ProduceError::FailedRtpParametersMapping(_))), "{r:?}");
    }

    async fn produce_already_used_mid_ssrc(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let _a = t1.produce(audio_producer()).await.expect("first");
        // Same mid on the same transport.
        let mut rtp = audio_parameters();
        rtp.encodings[0].ssrc = Some(33333333);
        let r = t1.produce(ProducerOptions::new(MediaKind::Audio, rtp)).await;
        assert!(matches!(r, Err(ProduceError::Request(_))), "{r:?}");
        // Same SSRC under another mid, on the same transport.
        let _v = t2.produce(video_producer()).await.expect("video");
        let mut rtp = video_parameters();
        rtp.mid = Some("VIDEO2".into());
        let r = t2.produce(ProducerOptions::new(MediaKind::Video, rtp)).await;
        assert!(matches!(r, Err(ProduceError::Request(_))), "{r:?}");
    }

    async fn produce_no_mid_single_encoding_without_rid_or_ssrc(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let mut rtp = audio_parameters();
        rtp.mid = None;
        rtp.encodings = vec![RtpEncodingParameters::default()];
        let r = t1.produce(ProducerOptions::new(MediaKind::Audio, rtp)).await;
        assert!(matches!(r, Err(ProduceError::Request(_))), "{r:?}");
    }

    async fn dump_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let a = t1.produce(audio_producer()).await.expect("audio");
        let d = a.dump().await.expect("dump");
        assert_eq!((d.id, d.kind, d.r#type), (a.id(), MediaKind::Audio, ProducerType::Simple));
        assert_eq!(d.rtp_parameters.codecs.len(), 1);
        assert_eq!(d.rtp_parameters.header_extensions.len(), 2);
        assert_eq!(d.rtp_parameters.encodings.len(), 1);
        let v = t2.produce(video_producer()).await.expect("video");
        let d = v.dump().await.expect("dump");
        assert_eq!((d.id, d.kind, d.r#type), (v.id(), MediaKind::Video, ProducerType::Simulcast));
        assert_eq!(d.rtp_parameters.codecs.len(), 2);
        assert_eq!(d.rtp_parameters.encodings.len(), 4);
        assert_eq!(d.rtp_parameters.encodings[0].rtx.as_ref().map(|r| r.ssrc), Some(22222223));
    }

    async fn get_stats_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let a = t1.produce(audio_producer()).await.expect("audio");
        assert!(a.get_stats().await.expect("stats").is_empty());
        let v = t2.produce(video_producer()).await.expect("video");
        assert!(v.get_stats().await.expect("stats").is_empty());
    }

    async fn pause_resume_succeeds(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let a = t1.produce(audio_producer()).await.expect("audio");
        a.pause().await.expect("pause");
        assert!(a.paused() && a.dump().await.expect("dump").paused);
        a.resume().await.expect("resume");
        assert!(!a.paused() && !a.dump().await.expect("dump").paused);
    }

    async fn enable_trace_event_succeeds(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let a = t1.produce(audio_producer()).await.expect("audio");
        a.enable_trace_event(vec![ProducerTraceEventType::Rtp, ProducerTraceEventType::Pli])
            .await
            .expect("enable");
        let types = a.dump().await.expect("dump").trace_event_types;
        assert_eq!(types, vec![ProducerTraceEventType::Rtp, ProducerTraceEventType::Pli]);
        a.enable_trace_event(vec![]).await.expect("disable");
        assert!(a.dump().await.expect("dump").trace_event_types.is_empty());
    }

    async fn close_event(mode: Mode) {
        let (_w, router, t1, _t2) = setup(mode).await;
        let a = t1.produce(audio_producer()).await.expect("audio");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = a.on_close(move || {
            let _ = tx.send(());
        });
        drop(a);
        within("producer close", rx).await.expect("closed");
        // mediasoup tells its worker after the handle closed: the dumps
        // settle shortly after the event.
        eventually("the dumps without the producer", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            let d = t1.dump().await.expect("transport dump");
            (dump.map_producer_id_consumer_ids.is_empty()
                && dump.map_consumer_id_producer_id.is_empty()
                && d.producer_ids.is_empty()
                && d.consumer_ids.is_empty())
            .then_some(())
        })
        .await;
    }
}
