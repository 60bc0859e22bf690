//! mediasoup's `router` tests, against `mafalda::mediasoup`, in both
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

#[derive(Debug, PartialEq)]
struct CustomAppData {
    foo: u32,
}

both_modes! {
    async fn create_router_succeeds(mode: Mode) {
        let worker = worker(mode).await;
        let created = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&created);
        worker
            .on_new_router(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        let mut options = RouterOptions::new(codecs());
        options.app_data = AppData::new(CustomAppData { foo: 123 });
        let router = worker.create_router(options).await.expect("router");
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert!(!router.closed());
        assert_eq!(
            router.app_data().downcast_ref::<CustomAppData>(),
            Some(&CustomAppData { foo: 123 })
        );
        let w = worker.dump().await.expect("worker dump");
        assert_eq!(w.router_ids, vec![router.id()]);
        let d = router.dump().await.expect("router dump");
        assert_eq!(d.id, router.id());
        assert!(d.transport_ids.is_empty() && d.rtp_observer_ids.is_empty());
        assert!(d.map_producer_id_consumer_ids.is_empty());
        assert!(d.map_consumer_id_producer_id.is_empty());
        assert!(d.map_producer_id_observer_ids.is_empty());
        assert!(d.map_data_producer_id_data_consumer_ids.is_empty());
        assert!(d.map_data_consumer_id_data_producer_id.is_empty());
    }

    async fn close_event(mode: Mode) {
        let worker = worker(mode).await;
        let router = router(&worker, codecs()).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = router.on_close(move || {
            let _ = tx.send(());
        });
        drop(router);
        within("router close", rx).await.expect("closed");
        assert!(worker.dump().await.expect("worker dump").router_ids.is_empty());
    }
}

/// mediasoup's own tests drive the API with `futures_lite::future::block_on`
/// and no async runtime: so can an application.
#[test]
fn works_without_an_async_runtime() {
    use mafalda::mediasoup::prelude::*;
    futures::executor::block_on(async {
        let worker = WorkerManager::new()
            .create_worker(WorkerSettings::default())
            .await
            .expect("a node starts");
        let router = worker
            .create_router(RouterOptions::new(fixtures::codecs()))
            .await
            .expect("router");
        let t1 = router
            .create_webrtc_transport(webrtc_options())
            .await
            .expect("transport 1");
        let t2 = router
            .create_webrtc_transport(webrtc_options())
            .await
            .expect("transport 2");
        let p = t1
            .produce(fixtures::audio_producer())
            .await
            .expect("produce");
        let c = t2
            .consume(ConsumerOptions::new(p.id(), fixtures::device()))
            .await
            .expect("consume");
        assert_eq!(c.producer_id(), p.id());
        assert_eq!(
            worker.dump().await.expect("dump").router_ids,
            vec![router.id()]
        );
    });
}
