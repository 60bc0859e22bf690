//! mediasoup's `consumer` tests, against `mafalda::mediasoup`, in both
//! modes (one worker; two workers).

#[path = "common.rs"]
mod common;
#[path = "fixtures.rs"]
mod fixtures;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fixtures::*;
use hash_hasher::{HashedMap, HashedSet};
use mafalda::mediasoup::consumer::{ConsumerRtpStreamStat, ConsumerScore, ConsumerType};
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::router::Router;
use mafalda::mediasoup::rtp_parameters::{MimeType, RtpHeaderExtension};
use mafalda::mediasoup::types::scalability_modes::ScalabilityMode;
use serde_json::json;

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

/// [`device`] as upstream's consuming device: NACK for Opus, and the RID
/// and abs-send-time header extensions. Header extension ids are those of
/// mediasoup 0.33's router (a consumer gets an extension only when the
/// device's preferred id is the router's): audio level 6, video
/// orientation 8, where upstream's older table (and [`device`]) say 10
/// and 11. mediasoup 0.33 offers abs-send-time for video only, and no
/// longer toffset.
fn caps() -> RtpCapabilities {
    let mut caps = device();
    if let RtpCodecCapability::Audio { rtcp_feedback, .. } = &mut caps.codecs[0] {
        rtcp_feedback.push(RtcpFeedback::Nack);
    }
    for ext in &mut caps.header_extensions {
        match ext.uri {
            RtpHeaderExtensionUri::SsrcAudioLevel => ext.preferred_id = 6,
            RtpHeaderExtensionUri::VideoOrientation => ext.preferred_id = 8,
            _ => {}
        }
    }
    let more: Vec<RtpHeaderExtension> = serde_json::from_value(json!([
        {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
         "preferredId": 2, "preferredEncrypt": false, "direction": "sendrecv"},
        {"kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
         "preferredId": 4, "preferredEncrypt": false, "direction": "sendrecv"}
    ]))
    .expect("header extensions");
    caps.header_extensions.extend(more);
    caps
}

/// [`video_producer`] with upstream's L1T5 on every encoding.
fn video_l1t5() -> ProducerOptions {
    let mut o = video_producer();
    for e in &mut o.rtp_parameters.encodings {
        e.scalability_mode = "L1T5".parse().expect("mode");
    }
    o
}

fn consume_options(p: &Producer) -> ConsumerOptions {
    ConsumerOptions::new(p.id(), caps())
}

/// Paused, preferring spatial layer 12 (upstream's video consumer).
fn paused_video(p: &Producer, temporal_layer: Option<u8>) -> ConsumerOptions {
    let mut o = consume_options(p);
    o.paused = true;
    o.preferred_layers = Some(ConsumerLayers {
        spatial_layer: 12,
        temporal_layer,
    });
    o
}

fn opus(rtcp_feedback: Vec<RtcpFeedback>) -> Vec<RtpCodecParameters> {
    serde_json::from_value(json!([
        {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
         "parameters": {"useinbandfec": 1, "usedtx": 1}, "rtcpFeedback": rtcp_feedback}
    ]))
    .expect("codecs")
}

fn h264_rtx() -> Vec<RtpCodecParameters> {
    serde_json::from_value(json!([
        {"mimeType": "video/H264", "payloadType": 103, "clockRate": 90000,
         "parameters": {"packetization-mode": 1, "profile-level-id": "4d0032"},
         "rtcpFeedback": [{"type": "nack", "parameter": ""},
                          {"type": "nack", "parameter": "pli"},
                          {"type": "ccm", "parameter": "fir"},
                          {"type": "goog-remb", "parameter": ""}]},
        {"mimeType": "video/rtx", "payloadType": 104, "clockRate": 90000,
         "parameters": {"apt": 103}, "rtcpFeedback": []}
    ]))
    .expect("codecs")
}

fn extensions(list: &[(RtpHeaderExtensionUri, u16)]) -> Vec<RtpHeaderExtensionParameters> {
    list.iter()
        .map(|&(uri, id)| RtpHeaderExtensionParameters {
            uri,
            id,
            encrypt: false,
        })
        .collect()
}

type Consumers = HashedMap<ProducerId, HashedSet<ConsumerId>>;

fn consumers_of(entries: &[(&Producer, &[&Consumer])]) -> Consumers {
    entries
        .iter()
        .map(|(p, cs)| (p.id(), cs.iter().map(|c| c.id()).collect()))
        .collect()
}

fn sorted(mut ids: Vec<ConsumerId>) -> Vec<ConsumerId> {
    ids.sort();
    ids
}

both_modes! {
    async fn consume_succeeds(mode: Mode) {
        let (_w, router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let video = t1.produce(video_l1t5()).await.expect("video");
        video.pause().await.expect("pause");
        let created = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&created);
        t2.on_new_consumer(Arc::new(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        }))
        .detach();

        assert!(router.can_consume(&audio.id(), &caps()));
        let mut o = consume_options(&audio);
        o.app_data = AppData::new(Tag("consumer"));
        let ac = t2.consume(o).await.expect("consume audio");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert_eq!((ac.producer_id(), ac.kind(), ac.r#type()), (audio.id(), MediaKind::Audio, ConsumerType::Simple));
        assert!(!ac.closed() && !ac.paused() && !ac.producer_paused());
        assert_eq!(ac.rtp_parameters().mid.as_deref(), Some("0"));
        assert_eq!(ac.rtp_parameters().codecs, opus(vec![]));
        assert_eq!(ac.priority(), 1);
        assert_eq!(ac.score(), ConsumerScore { score: 10, producer_score: 0, producer_scores: vec![0] });
        assert_eq!((ac.preferred_layers(), ac.current_layers()), (None, None));
        assert_eq!(ac.app_data().downcast_ref::<Tag>(), Some(&Tag("consumer")));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_producer_id_consumer_ids, consumers_of(&[(&audio, &[&ac]), (&video, &[])]));
        let d = t2.dump().await.expect("transport dump");
        assert_eq!((d.producer_ids, d.consumer_ids), (vec![], vec![ac.id()]));

        assert!(router.can_consume(&video.id(), &caps()));
        let mut o = paused_video(&video, Some(0));
        o.app_data = AppData::new(Tag("consumer"));
        let vc = t2.consume(o).await.expect("consume video");
        assert_eq!(created.load(Ordering::SeqCst), 2);
        assert_eq!((vc.producer_id(), vc.kind(), vc.r#type()), (video.id(), MediaKind::Video, ConsumerType::Simulcast));
        assert!(!vc.closed() && vc.paused() && vc.producer_paused());
        assert_eq!(vc.rtp_parameters().mid.as_deref(), Some("1"));
        assert_eq!(vc.rtp_parameters().codecs, h264_rtx());
        assert_eq!(vc.priority(), 1);
        assert_eq!(vc.score(), ConsumerScore { score: 10, producer_score: 0, producer_scores: vec![0; 4] });
        assert_eq!(vc.preferred_layers(), Some(ConsumerLayers { spatial_layer: 3, temporal_layer: Some(0) }));
        assert_eq!(vc.current_layers(), None);
        assert_eq!(vc.app_data().downcast_ref::<Tag>(), Some(&Tag("consumer")));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_producer_id_consumer_ids, consumers_of(&[(&audio, &[&ac]), (&video, &[&vc])]));
        let d = t2.dump().await.expect("transport dump");
        assert!(d.producer_ids.is_empty());
        assert_eq!(sorted(d.consumer_ids), sorted(vec![ac.id(), vc.id()]));

        let mut o = consume_options(&video);
        o.pipe = true;
        let pc = t2.consume(o).await.expect("consume video as pipe");
        assert_eq!(created.load(Ordering::SeqCst), 3);
        assert_eq!((pc.producer_id(), pc.kind(), pc.r#type()), (video.id(), MediaKind::Video, ConsumerType::Pipe));
        assert!(!pc.closed() && !pc.paused() && pc.producer_paused());
        assert_eq!(pc.rtp_parameters().mid, None);
        assert_eq!(pc.rtp_parameters().codecs, h264_rtx());
        assert_eq!(pc.priority(), 1);
        assert_eq!(pc.score(), ConsumerScore { score: 10, producer_score: 10, producer_scores: vec![0; 4] });
        assert_eq!((pc.preferred_layers(), pc.current_layers()), (None, None));
        assert_eq!(pc.app_data().downcast_ref::<()>(), Some(&()));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_producer_id_consumer_ids, consumers_of(&[(&audio, &[&ac]), (&video, &[&vc, &pc])]));
        let d = t2.dump().await.expect("transport dump");
        assert!(d.producer_ids.is_empty());
        assert_eq!(sorted(d.consumer_ids), sorted(vec![ac.id(), vc.id(), pc.id()]));
    }

    async fn consume_with_enable_rtx_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let mut o = consume_options(&audio);
        o.enable_rtx = Some(true);
        let ac = t2.consume(o).await.expect("consume");
        assert_eq!(ac.kind(), MediaKind::Audio);
        assert_eq!(ac.rtp_parameters().mid.as_deref(), Some("0"));
        assert_eq!(ac.rtp_parameters().codecs, opus(vec![RtcpFeedback::Nack]));
    }

    async fn consumer_with_user_defined_mid(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let p = t1.produce(audio_producer()).await.expect("audio");
        let c1 = t2.consume(consume_options(&p)).await.expect("consume 1");
        assert_eq!(c1.rtp_parameters().mid.as_deref(), Some("0"), "sequential mid");
        let mut o = consume_options(&p);
        // mediasoup 0.33 takes mids of up to 8 characters.
        o.mid = Some("custom".into());
        let c2 = t2.consume(o).await.expect("consume 2");
        assert_eq!(c2.rtp_parameters().mid.as_deref(), Some("custom"), "user mid");
        let c3 = t2.consume(consume_options(&p)).await.expect("consume 3");
        assert_eq!(c3.rtp_parameters().mid.as_deref(), Some("1"), "next sequential mid");
    }

    async fn weak(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let p = t1.produce(audio_producer()).await.expect("audio");
        let mut o = consume_options(&p);
        o.app_data = AppData::new(Tag("consumer"));
        let c = t2.consume(o).await.expect("consume");
        let weak = c.downgrade();
        assert!(weak.upgrade().is_some());
        drop(c);
        assert!(weak.upgrade().is_none());
    }

    async fn consume_incompatible_rtp_capabilities(mode: Mode) {
        let (_w, router, t1, t2) = setup(mode).await;
        let p = t1.produce(audio_producer()).await.expect("audio");
        let isac: RtpCapabilities = serde_json::from_value(json!({
            "codecs": [{"kind": "audio", "mimeType": "audio/ISAC", "preferredPayloadType": 100,
                        "clockRate": 32000, "channels": 1, "parameters": {}, "rtcpFeedback": []}],
            "headerExtensions": []
        }))
        .expect("capabilities");
        for bad in [isac, RtpCapabilities::default()] {
            assert!(!router.can_consume(&p.id(), &bad));
            let r = t2.consume(ConsumerOptions::new(p.id(), bad)).await;
            assert!(matches!(r, Err(ConsumeError::BadConsumerRtpParameters(_))), "{r:?}");
        }
    }

    async fn dump_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let video = t1.produce(video_l1t5()).await.expect("video");
        video.pause().await.expect("pause");

        let ac = t2.consume(consume_options(&audio)).await.expect("consume audio");
        let d = ac.dump().await.expect("dump");
        assert_eq!((d.id, d.producer_id, d.kind, d.r#type), (ac.id(), audio.id(), MediaKind::Audio, ConsumerType::Simple));
        assert_eq!(d.rtp_parameters.codecs, opus(vec![]));
        assert_eq!(d.rtp_parameters.header_extensions, extensions(&[
            (RtpHeaderExtensionUri::Mid, 1),
            (RtpHeaderExtensionUri::SsrcAudioLevel, 6),
        ]));
        assert_eq!(d.rtp_parameters.encodings, vec![RtpEncodingParameters {
            codec_payload_type: Some(100),
            ssrc: ac.rtp_parameters().encodings[0].ssrc,
            ..RtpEncodingParameters::default()
        }]);
        // The producer's consumable encodings, as a consumer dump shows
        // them. Through a pipe, the consumer's producer is the pipe
        // producer, whose consumable SSRCs are its router's own (as with
        // mediasoup's `pipe_producer_to_router`): there, all but the SSRCs.
        let consumable_ok = |got: &[RtpEncodingParameters], p: &Producer, scalability: ScalabilityMode| {
            let want = p.consumable_rtp_parameters().encodings.iter().map(|e| RtpEncodingParameters {
                ssrc: e.ssrc,
                scalability_mode: scalability.clone(),
                ..RtpEncodingParameters::default()
            });
            let without_ssrc = |e: RtpEncodingParameters| RtpEncodingParameters { ssrc: None, ..e };
            match mode {
                Mode::OneWorker => assert_eq!(got, want.collect::<Vec<_>>()),
                Mode::TwoWorkers => {
                    assert!(got.iter().all(|e| e.ssrc.is_some()), "{got:?}");
                    assert_eq!(
                        got.iter().cloned().map(without_ssrc).collect::<Vec<_>>(),
                        want.map(without_ssrc).collect::<Vec<_>>()
                    );
                }
            }
        };
        consumable_ok(&d.consumable_rtp_encodings, &audio, ScalabilityMode::None);

        let vc = t2.consume(paused_video(&video, None)).await.expect("consume video");
        let d = vc.dump().await.expect("dump");
        assert_eq!((d.id, d.producer_id, d.kind, d.r#type), (vc.id(), video.id(), MediaKind::Video, ConsumerType::Simulcast));
        assert_eq!(d.rtp_parameters.codecs, h264_rtx());
        assert_eq!(d.rtp_parameters.header_extensions, extensions(&[
            (RtpHeaderExtensionUri::Mid, 1),
            (RtpHeaderExtensionUri::AbsSendTime, 4),
            (RtpHeaderExtensionUri::VideoOrientation, 8),
        ]));
        let first = &vc.rtp_parameters().encodings[0];
        assert_eq!(d.rtp_parameters.encodings, vec![RtpEncodingParameters {
            codec_payload_type: Some(103),
            ssrc: first.ssrc,
            rtx: first.rtx,
            scalability_mode: "L4T5".parse().expect("mode"),
            ..RtpEncodingParameters::default()
        }]);
        consumable_ok(&d.consumable_rtp_encodings, &video, "L1T5".parse().expect("mode"));
        assert_eq!(d.supported_codec_payload_types, vec![103]);
        assert!(d.paused && d.producer_paused);
        assert_eq!(d.priority, 1);
    }

    async fn get_stats_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let outbound = |stats: Vec<ConsumerRtpStreamStat>| {
            stats
                .into_iter()
                .find_map(|s| match s {
                    ConsumerRtpStreamStat::Outbound(s) => Some(s),
                    ConsumerRtpStreamStat::Inbound(_) => None,
                })
                .expect("an outbound stat")
        };
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let ac = t2.consume(consume_options(&audio)).await.expect("consume audio");
        let s = outbound(ac.get_stats().await.expect("stats"));
        assert_eq!((s.kind, s.mime_type), (MediaKind::Audio, MimeType::Audio(MimeTypeAudio::Opus)));
        assert_eq!(Some(s.ssrc), ac.rtp_parameters().encodings[0].ssrc);

        let video = t1.produce(video_l1t5()).await.expect("video");
        video.pause().await.expect("pause");
        let vc = t2.consume(paused_video(&video, None)).await.expect("consume video");
        let s = outbound(vc.get_stats().await.expect("stats"));
        assert_eq!((s.kind, s.mime_type), (MediaKind::Video, MimeType::Video(MimeTypeVideo::H264)));
        assert_eq!(Some(s.ssrc), vc.rtp_parameters().encodings[0].ssrc);
    }

    async fn pause_resume_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let ac = t2.consume(consume_options(&audio)).await.expect("consume");
        ac.pause().await.expect("pause");
        assert!(ac.dump().await.expect("dump").paused);
        ac.resume().await.expect("resume");
        assert!(!ac.dump().await.expect("dump").paused);
    }

    async fn set_preferred_layers_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let layers = |spatial_layer, temporal_layer| ConsumerLayers { spatial_layer, temporal_layer };
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let ac = t2.consume(consume_options(&audio)).await.expect("consume audio");
        ac.set_preferred_layers(layers(1, Some(1))).await.expect("set");
        assert_eq!(ac.preferred_layers(), None);

        let video = t1.produce(video_l1t5()).await.expect("video");
        let vc = t2.consume(paused_video(&video, None)).await.expect("consume video");
        for (set, expected) in [
            (layers(2, Some(3)), layers(2, Some(3))),
            (layers(3, None), layers(3, Some(4))),
            (layers(3, Some(0)), layers(3, Some(0))),
            (layers(66, Some(66)), layers(3, Some(4))),
        ] {
            vc.set_preferred_layers(set).await.expect("set");
            assert_eq!(vc.preferred_layers(), Some(expected), "after {set:?}");
        }
    }

    async fn set_unset_priority_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let video = t1.produce(video_l1t5()).await.expect("video");
        let vc = t2.consume(paused_video(&video, None)).await.expect("consume");
        vc.set_priority(2).await.expect("set");
        assert_eq!(vc.priority(), 2);
        vc.unset_priority().await.expect("unset");
        assert_eq!(vc.priority(), 1);
    }

    async fn producer_pause_resume_events(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let ac = t2.consume(consume_options(&audio)).await.expect("consume");

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Mutex::new(Some(tx));
        let _h = ac.on_producer_pause(move || {
            if let Some(tx) = tx.lock().expect("lock").take() {
                let _ = tx.send(());
            }
        });
        audio.pause().await.expect("pause");
        within("producer pause event", rx).await.expect("paused");
        assert!(!ac.paused() && ac.producer_paused());

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Mutex::new(Some(tx));
        let _h = ac.on_producer_resume(move || {
            if let Some(tx) = tx.lock().expect("lock").take() {
                let _ = tx.send(());
            }
        });
        audio.resume().await.expect("resume");
        within("producer resume event", rx).await.expect("resumed");
        assert!(!ac.paused() && !ac.producer_paused());
    }

    async fn close_event(mode: Mode) {
        let (_w, router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let ac = t2.consume(consume_options(&audio)).await.expect("consume");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = ac.on_close(move || {
            let _ = tx.send(());
        });
        drop(ac);
        within("consumer close", rx).await.expect("closed");
        // Closing is asynchronous (upstream waits 200 ms): the dumps
        // settle shortly after the event.
        let expected = consumers_of(&[(&audio, &[])]);
        eventually("the dumps without the consumer", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            let d = t2.dump().await.expect("transport dump");
            (dump.map_producer_id_consumer_ids == expected
                && dump.map_consumer_id_producer_id.is_empty()
                && d.producer_ids.is_empty()
                && d.consumer_ids.is_empty())
            .then_some(())
        })
        .await;
    }

    async fn producer_paused_is_live_through_a_pipe(mode: Mode) {
        let (w, _router, t1, t2) = setup(mode).await;
        let audio = t1.produce(audio_producer()).await.expect("audio");
        let ac = t2.consume(consume_options(&audio)).await.expect("consume");
        let status = w.status().await.expect("status");
        let pipes: (i64, i64) = status.worker_details.iter().fold((0, 0), |(p, c), w| {
            (p + w.counts.pipe_producers, c + w.counts.pipe_consumers)
        });
        let links: usize = status.room_details.iter().map(|r| r.links_in.len()).sum();
        match mode {
            Mode::OneWorker => assert_eq!((pipes, links), ((0, 0), 0), "{status:?}"),
            Mode::TwoWorkers => assert_eq!((pipes, links), ((1, 1), 1), "{status:?}"),
        }
        assert!(!ac.producer_paused());
        audio.pause().await.expect("pause");
        eventually("the consumer seeing the producer paused", TIMEOUT, async || {
            ac.producer_paused().then_some(())
        })
        .await;
        assert!(ac.dump().await.expect("dump").producer_paused);
        assert!(!ac.paused());
        audio.resume().await.expect("resume");
        eventually("the consumer seeing the producer resumed", TIMEOUT, async || {
            (!ac.producer_paused()).then_some(())
        })
        .await;
        assert!(!ac.dump().await.expect("dump").producer_paused);
        // Quick changes, ending resumed: the pipe settles on the last.
        for _ in 0..5 {
            audio.pause().await.expect("pause");
            audio.resume().await.expect("resume");
        }
        // Changes still in flight may flip the consumer's view back and
        // forth for a moment; it must end resumed and stay so.
        settles("the consumer seeing the producer resumed", Duration::from_millis(300), async || {
            !ac.producer_paused() && !ac.dump().await.expect("dump").producer_paused
        })
        .await;
    }
}
