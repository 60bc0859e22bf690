//! mediasoup's `data_producer` tests, against `mafalda::mediasoup`, in both
//! modes (one worker; two workers).

#[path = "common.rs"]
mod common;
#[path = "fixtures.rs"]
mod fixtures;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use fixtures::*;
use mafalda::mediasoup::data_producer::DataProducerType;
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::router::Router;
use mafalda::mediasoup::worker::RequestError;

/// An SCTP-enabled WebRTC transport and an SCTP-enabled plain transport
/// (on different workers in two-worker mode).
async fn setup(mode: Mode) -> (Worker, Router, WebRtcTransport, PlainTransport) {
    let worker = worker(mode).await;
    let router = router(&worker, codecs()).await;
    let mut o = webrtc_options();
    o.enable_sctp = true;
    let t1 = router.create_webrtc_transport(o).await.expect("t1");
    let mut o = PlainTransportOptions::new(listen_info());
    o.enable_sctp = true;
    let t2 = router.create_plain_transport(o).await.expect("t2");
    (worker, router, t1, t2)
}

/// Stream 666, ordered, `foo`/`bar`, tagged `dp1`.
fn ordered_666() -> DataProducerOptions {
    let mut o = DataProducerOptions::new_sctp(SctpStreamParameters::new_ordered(666));
    o.label = "foo".into();
    o.protocol = "bar".into();
    o.app_data = AppData::new(Tag("dp1"));
    o
}

/// Stream 777, unordered with 3 retransmits, `foo`/`bar`, tagged `dp2`.
fn unordered_777(paused: bool) -> DataProducerOptions {
    let mut o =
        DataProducerOptions::new_sctp(SctpStreamParameters::new_unordered_with_retransmits(777, 3));
    o.label = "foo".into();
    o.protocol = "bar".into();
    o.paused = paused;
    o.app_data = AppData::new(Tag("dp2"));
    o
}

fn counter<T: Transport>(t: &T) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&n);
    t.on_new_data_producer(Arc::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    }))
    .detach();
    n
}

both_modes! {
    async fn transport_1_produce_data_succeeds(mode: Mode) {
        let (_w, router, t1, _t2) = setup(mode).await;
        let created = counter(&t1);
        let dp = t1.produce_data(ordered_666()).await.expect("produce data");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert!(!dp.closed() && !dp.paused());
        assert_eq!(dp.r#type(), DataProducerType::Sctp);
        let s = dp.sctp_stream_parameters().expect("sctp parameters");
        assert_eq!((s.stream_id(), s.ordered()), (666, true));
        assert_eq!((s.max_packet_life_time(), s.max_retransmits()), (None, None));
        assert_eq!((dp.label().as_str(), dp.protocol().as_str()), ("foo", "bar"));
        assert_eq!(dp.app_data().downcast_ref::<Tag>(), Some(&Tag("dp1")));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_data_producer_id_data_consumer_ids.len(), 1);
        assert!(dump.map_data_producer_id_data_consumer_ids[&dp.id()].is_empty());
        assert!(dump.map_data_consumer_id_data_producer_id.is_empty());
        let d = t1.dump().await.expect("transport dump");
        assert_eq!(d.id, Transport::id(&t1));
        assert_eq!((d.data_producer_ids, d.data_consumer_ids), (vec![dp.id()], vec![]));
    }

    async fn transport_2_produce_data_succeeds(mode: Mode) {
        let (_w, router, _t1, t2) = setup(mode).await;
        let created = counter(&t2);
        let dp = t2.produce_data(unordered_777(true)).await.expect("produce data");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert!(!dp.closed() && dp.paused());
        assert_eq!(dp.r#type(), DataProducerType::Sctp);
        let s = dp.sctp_stream_parameters().expect("sctp parameters");
        assert_eq!((s.stream_id(), s.ordered()), (777, false));
        assert_eq!((s.max_packet_life_time(), s.max_retransmits()), (None, Some(3)));
        assert_eq!((dp.label().as_str(), dp.protocol().as_str()), ("foo", "bar"));
        assert_eq!(dp.app_data().downcast_ref::<Tag>(), Some(&Tag("dp2")));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_data_producer_id_data_consumer_ids.len(), 1);
        assert!(dump.map_data_producer_id_data_consumer_ids[&dp.id()].is_empty());
        assert!(dump.map_data_consumer_id_data_producer_id.is_empty());
        let d = t2.dump().await.expect("transport dump");
        assert_eq!(d.id, Transport::id(&t2));
        assert_eq!((d.data_producer_ids, d.data_consumer_ids), (vec![dp.id()], vec![]));
    }

    async fn weak(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let dp = t1.produce_data(ordered_666()).await.expect("produce data");
        let weak = dp.downgrade();
        assert!(weak.upgrade().is_some());
        drop(dp);
        assert!(weak.upgrade().is_none());
    }

    async fn produce_data_used_stream_id_rejects(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let _dp = t1.produce_data(ordered_666()).await.expect("produce data");
        let r = t1.produce_data(ordered_666()).await;
        assert!(
            matches!(r, Err(ProduceDataError::Request(RequestError::Response { .. }))),
            "{r:?}"
        );
    }

    async fn dump_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let dp1 = t1.produce_data(ordered_666()).await.expect("produce data");
        let d = dp1.dump().await.expect("dump");
        assert_eq!((d.id, d.r#type), (dp1.id(), DataProducerType::Sctp));
        let s = d.sctp_stream_parameters.expect("sctp parameters");
        assert_eq!((s.stream_id(), s.ordered()), (666, true));
        assert_eq!((s.max_packet_life_time(), s.max_retransmits()), (None, None));
        assert_eq!((d.label.as_str(), d.protocol.as_str(), d.paused), ("foo", "bar", false));
        let dp2 = t2.produce_data(unordered_777(true)).await.expect("produce data");
        let d = dp2.dump().await.expect("dump");
        assert_eq!((d.id, d.r#type), (dp2.id(), DataProducerType::Sctp));
        let s = d.sctp_stream_parameters.expect("sctp parameters");
        assert_eq!((s.stream_id(), s.ordered()), (777, false));
        assert_eq!((s.max_packet_life_time(), s.max_retransmits()), (None, Some(3)));
        assert_eq!((d.label.as_str(), d.protocol.as_str(), d.paused), ("foo", "bar", true));
    }

    async fn get_stats_succeeds(mode: Mode) {
        let (_w, _router, t1, t2) = setup(mode).await;
        let dp1 = t1.produce_data(ordered_666()).await.expect("produce data");
        let dp2 = t2.produce_data(unordered_777(false)).await.expect("produce data");
        for dp in [&dp1, &dp2] {
            let stats = dp.get_stats().await.expect("stats");
            assert_eq!(stats.len(), 1);
            assert_eq!((&stats[0].label, &stats[0].protocol), (dp.label(), dp.protocol()));
            assert_eq!((stats[0].messages_received, stats[0].bytes_received), (0, 0));
        }
    }

    async fn pause_and_resume_succeed(mode: Mode) {
        let (_w, _router, t1, _t2) = setup(mode).await;
        let dp = t1.produce_data(ordered_666()).await.expect("produce data");
        dp.pause().await.expect("pause");
        assert!(dp.paused() && dp.dump().await.expect("dump").paused);
        dp.resume().await.expect("resume");
        assert!(!dp.paused() && !dp.dump().await.expect("dump").paused);
    }

    async fn close_event(mode: Mode) {
        let (_w, router, t1, _t2) = setup(mode).await;
        let dp = t1.produce_data(ordered_666()).await.expect("produce data");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = dp.on_close(move || {
            let _ = tx.send(());
        });
        drop(dp);
        within("data producer close", rx).await.expect("closed");
        // The close request reaches the worker asynchronously: the dumps
        // settle shortly after the event.
        eventually("the dumps without the data producer", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            let d = t1.dump().await.expect("transport dump");
            (dump.map_data_producer_id_data_consumer_ids.is_empty()
                && dump.map_data_consumer_id_data_producer_id.is_empty()
                && d.data_producer_ids.is_empty()
                && d.data_consumer_ids.is_empty())
            .then_some(())
        })
        .await;
    }
}
