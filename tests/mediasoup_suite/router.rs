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
