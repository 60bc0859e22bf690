//! mediasoup's `data_consumer` tests, against `mafalda::mediasoup`, in both
//! modes (one worker; two workers).
//!
//! The data producer lives on the first transport; in two-worker mode the
//! plain and direct transports each test adds land on the other worker,
//! so their data consumers are fed through a data pipe.

#[path = "common.rs"]
mod common;
#[path = "fixtures.rs"]
mod fixtures;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use fixtures::*;
use mafalda::mediasoup::data_consumer::DataConsumerType;
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::router::Router;

/// An SCTP-enabled WebRTC transport and a data producer on it (stream
/// 12345, unordered, 5000 ms life time, `foo`/`bar`).
async fn setup(mode: Mode) -> (Worker, Router, WebRtcTransport, DataProducer) {
    let worker = worker(mode).await;
    let router = router(&worker, codecs()).await;
    let mut o = webrtc_options();
    o.enable_sctp = true;
    let t1 = router.create_webrtc_transport(o).await.expect("t1");
    let mut o = DataProducerOptions::new_sctp(SctpStreamParameters::new_unordered_with_life_time(
        12345, 5000,
    ));
    o.label = "foo".into();
    o.protocol = "bar".into();
    let dp = t1.produce_data(o).await.expect("data producer");
    (worker, router, t1, dp)
}

/// An SCTP-enabled plain transport (on the other worker in two-worker
/// mode).
async fn plain(router: &Router) -> PlainTransport {
    let mut o = PlainTransportOptions::new(listen_info());
    o.enable_sctp = true;
    router.create_plain_transport(o).await.expect("t2")
}

/// A direct transport (on the other worker in two-worker mode).
async fn direct(router: &Router) -> DirectTransport {
    router
        .create_direct_transport(DirectTransportOptions::default())
        .await
        .expect("t3")
}

/// Unordered with a 4000 ms life time, tagged `dc`.
fn sctp_4000(dp: &DataProducer) -> DataConsumerOptions {
    let mut o = DataConsumerOptions::new_sctp_unordered_with_life_time(dp.id(), 4000);
    o.app_data = AppData::new(Tag("dc"));
    o
}

/// Direct, tagged `direct`.
fn direct_options(dp: &DataProducer) -> DataConsumerOptions {
    let mut o = DataConsumerOptions::new_direct(dp.id(), None);
    o.app_data = AppData::new(Tag("direct"));
    o
}

fn counter<T: Transport>(t: &T) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&n);
    t.on_new_data_consumer(Arc::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    }))
    .detach();
    n
}

fn sorted(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v
}

/// Where a seated transport lives, as its `Debug` tells (the last
/// field, the room's router it sits on).
fn seat(t: &impl std::fmt::Debug) -> String {
    let d = format!("{t:?}");
    let at = d
        .rfind("router: ")
        .expect("a seated transport names its router");
    d[at..].to_owned()
}

/// The number of mediasoup routers the node holds (one per worker the
/// room uses).
async fn routers(worker: &Worker) -> i64 {
    worker.status().await.expect("status").routers
}

both_modes! {
    async fn consume_data_succeeds(mode: Mode) {
        let (_w, router, t1, dp) = setup(mode).await;
        let t2 = plain(&router).await;
        assert_eq!(seat(&t1) == seat(&t2), mode == Mode::OneWorker);
        let created = counter(&t2);
        let mut o = sctp_4000(&dp);
        o.subchannels = Some(vec![0, 1, 1, 1, 2, 65535, 100]);
        let dc = t2.consume_data(o).await.expect("consume data");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert_eq!(dc.data_producer_id(), dp.id());
        assert!(!dc.closed());
        assert_eq!(dc.r#type(), DataConsumerType::Sctp);
        let s = dc.sctp_stream_parameters().expect("sctp parameters");
        assert!(!s.ordered());
        assert_eq!((s.max_packet_life_time(), s.max_retransmits()), (Some(4000), None));
        assert_eq!((dc.label().as_str(), dc.protocol().as_str()), ("foo", "bar"));
        assert_eq!(sorted(dc.subchannels()), [0, 1, 2, 100, 65535]);
        assert_eq!(dc.app_data().downcast_ref::<Tag>(), Some(&Tag("dc")));
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.map_data_producer_id_data_consumer_ids.len(), 1);
        let consumers: HashSet<_> =
            dump.map_data_producer_id_data_consumer_ids[&dp.id()].iter().copied().collect();
        assert_eq!(consumers, HashSet::from([dc.id()]));
        assert_eq!(dump.map_data_consumer_id_data_producer_id.len(), 1);
        assert_eq!(dump.map_data_consumer_id_data_producer_id[&dc.id()], dp.id());
        let d = t2.dump().await.expect("transport dump");
        assert_eq!(d.id, Transport::id(&t2));
        assert_eq!((d.data_producer_ids, d.data_consumer_ids), (vec![], vec![dc.id()]));
    }

    async fn weak(mode: Mode) {
        let (_w, router, _t1, dp) = setup(mode).await;
        let t2 = plain(&router).await;
        let dc = t2.consume_data(sctp_4000(&dp)).await.expect("consume data");
        let weak = dc.downgrade();
        assert!(weak.upgrade().is_some());
        drop(dc);
        assert!(weak.upgrade().is_none());
    }

    async fn dump_succeeds(mode: Mode) {
        let (_w, _router, t1, dp) = setup(mode).await;
        let dc = t1.consume_data(sctp_4000(&dp)).await.expect("consume data");
        let d = dc.dump().await.expect("dump");
        assert_eq!((d.id, d.data_producer_id), (dc.id(), dc.data_producer_id()));
        assert_eq!(d.r#type, DataConsumerType::Sctp);
        let s = d.sctp_stream_parameters.expect("sctp parameters");
        let own = dc.sctp_stream_parameters().expect("sctp parameters");
        assert_eq!((s.stream_id(), s.ordered()), (own.stream_id(), false));
        assert_eq!((s.max_packet_life_time(), s.max_retransmits()), (Some(4000), None));
        assert_eq!((d.label.as_str(), d.protocol.as_str()), ("foo", "bar"));
    }

    async fn get_stats_succeeds(mode: Mode) {
        let (_w, _router, t1, dp) = setup(mode).await;
        let dc = t1.consume_data(sctp_4000(&dp)).await.expect("consume data");
        let stats = dc.get_stats().await.expect("stats");
        assert_eq!(stats.len(), 1);
        assert_eq!((&stats[0].label, &stats[0].protocol), (dc.label(), dc.protocol()));
        assert_eq!((stats[0].messages_sent, stats[0].bytes_sent), (0, 0));
    }

    async fn set_subchannels(mode: Mode) {
        let (_w, _router, t1, dp) = setup(mode).await;
        let dc = t1.consume_data(sctp_4000(&dp)).await.expect("consume data");
        dc.set_subchannels(vec![999, 999, 998, 0]).await.expect("set");
        assert_eq!(sorted(dc.subchannels()), [0, 998, 999]);
    }

    async fn add_and_remove_subchannel(mode: Mode) {
        let (_w, _router, t1, dp) = setup(mode).await;
        let dc = t1.consume_data(sctp_4000(&dp)).await.expect("consume data");
        dc.set_subchannels(vec![]).await.expect("set");
        assert!(dc.subchannels().is_empty());
        dc.add_subchannel(5).await.expect("add");
        assert_eq!(dc.subchannels(), [5]);
        dc.add_subchannel(10).await.expect("add");
        assert_eq!(sorted(dc.subchannels()), [5, 10]);
        dc.add_subchannel(5).await.expect("add again");
        assert_eq!(sorted(dc.subchannels()), [5, 10]);
        dc.remove_subchannel(666).await.expect("remove absent");
        assert_eq!(sorted(dc.subchannels()), [5, 10]);
        dc.remove_subchannel(5).await.expect("remove");
        assert_eq!(sorted(dc.subchannels()), [10]);
        dc.add_subchannel(5).await.expect("add");
        assert_eq!(sorted(dc.subchannels()), [5, 10]);
        dc.set_subchannels(vec![]).await.expect("set");
        assert!(dc.subchannels().is_empty());
    }

    async fn consume_data_on_direct_transport_succeeds(mode: Mode) {
        let (_w, router, t1, dp) = setup(mode).await;
        let t3 = direct(&router).await;
        assert_eq!(seat(&t1) == seat(&t3), mode == Mode::OneWorker);
        let created = counter(&t3);
        let dc = t3.consume_data(direct_options(&dp)).await.expect("consume data");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert_eq!(dc.data_producer_id(), dp.id());
        assert!(!dc.closed());
        assert_eq!(dc.r#type(), DataConsumerType::Direct);
        assert_eq!(dc.sctp_stream_parameters(), None);
        assert_eq!((dc.label().as_str(), dc.protocol().as_str()), ("foo", "bar"));
        assert_eq!(dc.app_data().downcast_ref::<Tag>(), Some(&Tag("direct")));
        let d = t3.dump().await.expect("transport dump");
        assert_eq!(d.id, Transport::id(&t3));
        assert_eq!((d.data_producer_ids, d.data_consumer_ids), (vec![], vec![dc.id()]));
    }

    async fn dump_on_direct_transport_succeeds(mode: Mode) {
        let (_w, router, _t1, dp) = setup(mode).await;
        let t3 = direct(&router).await;
        let dc = t3.consume_data(direct_options(&dp)).await.expect("consume data");
        let d = dc.dump().await.expect("dump");
        assert_eq!((d.id, d.data_producer_id), (dc.id(), dc.data_producer_id()));
        assert_eq!((d.r#type, d.sctp_stream_parameters), (DataConsumerType::Direct, None));
        assert_eq!((d.label.as_str(), d.protocol.as_str()), ("foo", "bar"));
    }

    async fn get_stats_on_direct_transport_succeeds(mode: Mode) {
        let (_w, router, _t1, dp) = setup(mode).await;
        let t3 = direct(&router).await;
        let dc = t3.consume_data(direct_options(&dp)).await.expect("consume data");
        let stats = dc.get_stats().await.expect("stats");
        assert_eq!(stats.len(), 1);
        assert_eq!((&stats[0].label, &stats[0].protocol), (dc.label(), dc.protocol()));
        assert_eq!((stats[0].messages_sent, stats[0].bytes_sent), (0, 0));
    }

    async fn close_event(mode: Mode) {
        let (_w, router, _t1, dp) = setup(mode).await;
        let t2 = plain(&router).await;
        let dc = t2.consume_data(sctp_4000(&dp)).await.expect("consume data");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = dc.on_close(move || {
            let _ = tx.send(());
        });
        drop(dc);
        within("data consumer close", rx).await.expect("closed");
        // The close request reaches the worker asynchronously: the dumps
        // settle shortly after the event.
        eventually("the dumps without the data consumer", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            let d = t2.dump().await.expect("transport dump");
            let consumers = &dump.map_data_producer_id_data_consumer_ids;
            (consumers.len() == 1
                && consumers.get(&dp.id()).is_some_and(|cs| cs.is_empty())
                && dump.map_data_consumer_id_data_producer_id.is_empty()
                && d.data_producer_ids.is_empty()
                && d.data_consumer_ids.is_empty())
            .then_some(())
        })
        .await;
    }

    // Not an upstream test: messages sent by a direct data producer reach
    // a data consumer on another direct transport (through a data pipe in
    // two-worker mode), strings and binaries alike, in order.
    async fn send_through_direct_transports(mode: Mode) {
        let (w, router, _t1, _dp) = setup(mode).await;
        let sending = direct(&router).await;
        let receiving = direct(&router).await;
        let mut o = DataProducerOptions::new_direct();
        o.label = "chat".into();
        let dp = sending.produce_data(o).await.expect("direct data producer");
        let dc = receiving
            .consume_data(DataConsumerOptions::new_direct(dp.id(), None))
            .await
            .expect("consume data");
        let expected_routers = if mode == Mode::OneWorker { 1 } else { 2 };
        assert_eq!(routers(&w).await, expected_routers);
        assert_eq!(seat(&sending) == seat(&receiving), mode == Mode::OneWorker);
        assert_eq!(dc.label().as_str(), "chat");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Vec<u8>)>();
        let _h = dc.on_message(move |m| {
            let got = match m {
                WebRtcMessage::String(s) => (true, s.to_vec()),
                WebRtcMessage::Binary(b) => (false, b.to_vec()),
                WebRtcMessage::EmptyString => (true, vec![]),
                WebRtcMessage::EmptyBinary => (false, vec![]),
            };
            let _ = tx.send(got);
        });
        let DataProducer::Direct(direct_dp) = &dp else {
            panic!("a direct transport makes direct data producers");
        };
        for i in 0..10_u8 {
            let payload = format!("message {i}").into_bytes();
            let m = if i % 2 == 0 {
                WebRtcMessage::String(Cow::from(payload))
            } else {
                WebRtcMessage::Binary(Cow::from(payload))
            };
            direct_dp.send(m, None, None, None).expect("send");
        }
        for i in 0..10_u8 {
            let got = within("a message", rx.recv()).await.expect("message");
            assert_eq!(got, (i % 2 == 0, format!("message {i}").into_bytes()));
        }
        let sent = dc.get_stats().await.expect("stats")[0].messages_sent;
        assert_eq!(sent, 10);
        let received = dp.get_stats().await.expect("stats")[0].messages_received;
        assert_eq!(received, 10);
    }

    // Not an upstream test: a data consumer closes when its data producer
    // does (the data pipe goes with it in two-worker mode), and the data
    // producer's id can be consumed again by a new consumer before that.
    async fn data_producer_close_closes_data_consumer(mode: Mode) {
        let (_w, router, _t1, dp) = setup(mode).await;
        let t2 = plain(&router).await;
        let first = t2.consume_data(sctp_4000(&dp)).await.expect("consume data");
        let first_id = first.id();
        drop(first);
        eventually("the dumps without the first data consumer", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            let d = t2.dump().await.expect("transport dump");
            (!dump.map_data_consumer_id_data_producer_id.contains_key(&first_id)
                && !d.data_consumer_ids.contains(&first_id))
            .then_some(())
        })
        .await;
        let dc = t2.consume_data(sctp_4000(&dp)).await.expect("consume data again");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = dc.on_data_producer_close(move || {
            let _ = tx.send(());
        });
        drop(dp);
        within("data producer close", rx).await.expect("data producer closed");
        eventually("the data consumer closed and out of the dumps", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            let d = t2.dump().await.expect("transport dump");
            (dc.closed()
                && dump.map_data_producer_id_data_consumer_ids.is_empty()
                && dump.map_data_consumer_id_data_producer_id.is_empty()
                && d.data_consumer_ids.is_empty())
            .then_some(())
        })
        .await;
    }
}
