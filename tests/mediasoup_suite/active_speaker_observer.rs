//! mediasoup's `active_speaker_observer` tests, against `mafalda::mediasoup`, in both
//! modes (one worker; two workers).

#[path = "common.rs"]
mod common;
#[path = "fixtures.rs"]
mod fixtures;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fixtures::*;
use mafalda::mediasoup::prelude::*;
use mafalda::mediasoup::router::Router;

async fn setup(mode: Mode) -> (Worker, Router) {
    let worker = worker(mode).await;
    let router = router(&worker, codecs()).await;
    (worker, router)
}

async fn observer(router: &Router) -> ActiveSpeakerObserver {
    router
        .create_active_speaker_observer(ActiveSpeakerObserverOptions::default())
        .await
        .expect("observer")
}

/// Where a seated transport or observer lives, as its `Debug` tells (the
/// last field, the room's router it sits on).
fn seat(t: &impl std::fmt::Debug) -> String {
    let d = format!("{t:?}");
    let at = d.rfind("router: ").expect("a seat names its router");
    d[at..].to_owned()
}

/// The room's pipe links between the node's workers (a producer heard
/// by an observer on another worker takes one).
async fn links(worker: &Worker) -> usize {
    let status = worker.status().await.expect("status");
    status.room_details.iter().map(|r| r.links_in.len()).sum()
}

/// An RTP packet of [`audio_parameters`]' stream (SSRC 11111111) with
/// an `ssrc-audio-level` extension (id 12) at `-level` dBov.
fn rtp(seq: u16, level: u8) -> Vec<u8> {
    let mut p = vec![0x90, 0];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 960).to_be_bytes());
    p.extend(11_111_111_u32.to_be_bytes());
    p.extend([0xBE, 0xDE, 0, 1, 0xC0, 0x80 | level, 0, 0]);
    p.extend([0xF8, 0xFF, 0xFE]);
    p
}

both_modes! {
    async fn create(mode: Mode) {
        let (_w, router) = setup(mode).await;
        let created = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&created);
        router
            .on_new_rtp_observer(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .detach();
        let o = observer(&router).await;
        assert_eq!(created.load(Ordering::SeqCst), 1);
        assert!(!o.closed() && !o.paused());
        let dump = router.dump().await.expect("router dump");
        assert_eq!(dump.rtp_observer_ids.into_iter().collect::<Vec<_>>(), vec![o.id()]);
    }

    async fn weak(mode: Mode) {
        let (_w, router) = setup(mode).await;
        let o = observer(&router).await;
        let weak = o.downgrade();
        assert!(weak.upgrade().is_some());
        drop(o);
        assert!(weak.upgrade().is_none());
    }

    async fn pause_resume(mode: Mode) {
        let (_w, router) = setup(mode).await;
        let o = observer(&router).await;
        o.pause().await.expect("pause");
        assert!(o.paused());
        o.resume().await.expect("resume");
        assert!(!o.paused());
    }

    async fn close_event(mode: Mode) {
        let (_w, router) = setup(mode).await;
        let o = observer(&router).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let _h = o.on_close(Box::new(move || {
            let _ = tx.send(());
        }));
        drop(o);
        within("observer close", rx).await.expect("closed");
    }

    async fn drop_test(mode: Mode) {
        let (_w, router) = setup(mode).await;
        let _o1 = observer(&router).await;
        let o2 = observer(&router).await;
        assert_eq!(router.dump().await.expect("router dump").rtp_observer_ids.len(), 2);
        drop(o2);
        // The close request reaches the worker asynchronously.
        eventually("the router dump with one observer", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            (dump.rtp_observer_ids.len() == 1).then_some(())
        })
        .await;
    }

    // Not an upstream test: an observer hears a producer of another
    // worker (piped into its router in two-worker mode), names it the
    // dominant speaker, and lets it go on `remove_producer`.
    async fn dominant_speaker_of_another_worker(mode: Mode) {
        let (w, router) = setup(mode).await;
        let o = observer(&router).await;
        let t = router
            .create_direct_transport(DirectTransportOptions::default())
            .await
            .expect("direct transport");
        assert_eq!(seat(&o) == seat(&t), mode == Mode::OneWorker);
        let p = t.produce(audio_producer()).await.expect("produce");
        let (added_tx, mut added) = tokio::sync::mpsc::unbounded_channel();
        o.on_add_producer(Box::new(move |p: &Producer| {
            let _ = added_tx.send(p.id());
        }))
        .detach();
        let (removed_tx, mut removed) = tokio::sync::mpsc::unbounded_channel();
        o.on_remove_producer(Box::new(move |p: &Producer| {
            let _ = removed_tx.send(p.id());
        }))
        .detach();
        let (dominant_tx, mut dominant) = tokio::sync::mpsc::unbounded_channel();
        let _h = o.on_dominant_speaker(move |d| {
            let _ = dominant_tx.send(d.producer.id());
        });
        o.add_producer(RtpObserverAddProducerOptions::new(p.id()))
            .await
            .expect("add producer");
        assert_eq!(within("add event", added.recv()).await, Some(p.id()));
        let dump = router.dump().await.expect("router dump");
        let observers = &dump.map_producer_id_observer_ids[&p.id()];
        assert_eq!(observers.iter().copied().collect::<Vec<_>>(), vec![o.id()]);
        let piped = usize::from(mode == Mode::TwoWorkers);
        assert_eq!(links(&w).await, piped);
        let Producer::Direct(direct) = &p else {
            panic!("a direct transport makes direct producers");
        };
        let speaker = within("dominant speaker", async {
            // Pacing, not waiting: one audio packet every 20 ms (the first
            // tick is immediate) until the observer names a speaker.
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            for seq in 0_u16.. {
                tokio::select! {
                    id = dominant.recv() => return id,
                    _ = pace.tick() => direct.send(rtp(seq, 10)).expect("send"),
                }
            }
            None
        })
        .await;
        assert_eq!(speaker, Some(p.id()));
        o.remove_producer(p.id()).await.expect("remove producer");
        assert_eq!(within("remove event", removed.recv()).await, Some(p.id()));
        let dump = router.dump().await.expect("router dump");
        assert!(dump
            .map_producer_id_observer_ids
            .get(&p.id())
            .is_none_or(|os| os.is_empty()));
        // The pipe goes with the observer's last use of it.
        eventually("no pipe links once removed", TIMEOUT, async || {
            (links(&w).await == 0).then_some(())
        })
        .await;
        // Added again, it is let go when the producer closes (silently, as
        // in mediasoup: no remove event).
        o.add_producer(RtpObserverAddProducerOptions::new(p.id()))
            .await
            .expect("add producer again");
        assert_eq!(links(&w).await, piped);
        let id = p.id();
        drop(p);
        eventually("no pipe links nor producer once closed", TIMEOUT, async || {
            let dump = router.dump().await.expect("router dump");
            (links(&w).await == 0 && !dump.map_producer_id_observer_ids.contains_key(&id))
                .then_some(())
        })
        .await;
        holds_for("no remove event", Duration::from_millis(200), async || {
            removed.try_recv().is_err()
        })
        .await;
    }
}
