//! [`Router`]: a room, with mediasoup's router API.
//!
//! Each transport or observer the router creates takes a *seat* in the
//! room: a placement on one of the node's workers (as a joining
//! participant is placed), on the room's mediasoup router there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use actix::Addr;
use event_listener_primitives::{Bag, BagOnce, HandlerId};
use hash_hasher::{HashedMap, HashedSet};
use parking_lot::Mutex;

use super::rtp_observer::Observed;
use super::transport::Seated;
use super::worker::Worker;
use super::{
    ActiveSpeakerObserver, AudioLevelObserver, DirectTransport, PlainTransport, WebRtcTransport,
};
use crate::ids::RoomId;
use crate::registry::RoomTicket;
use crate::room::app::{AppSeat, GetInternalIds, LeaveSeat, TakeSeat};
use crate::room::{GateHold, GetRtpCapabilities, RoomActor};
use ::mediasoup::prelude::{
    ActiveSpeakerObserverOptions, AudioLevelObserverOptions, ConsumerId, DataConsumerId,
    DataProducerId, DirectTransportOptions, PlainTransportOptions, ProducerId, RtpObserverId,
    TransportId, WebRtcTransportOptions,
};
use ::mediasoup::types::data_structures::AppData;
use ::mediasoup::types::rtp_parameters::{RtpCapabilities, RtpCapabilitiesFinalized};
use ::mediasoup::worker::RequestError;

pub use ::mediasoup::router::{RouterId, RouterOptions};

/// Why a router could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateRouterError {
    /// The node's actors are gone.
    #[error("the node is not running")]
    NodeGone,
    /// The room could not be opened, or its routers not created (e.g.
    /// an unsupported codec).
    #[error("cannot open the room: {0}")]
    Room(String),
}

/// Kept for symmetry with mediasoup's names: transport creation fails
/// with mediasoup's [`RequestError`] (a room refusal is a
/// `RequestError::Response` naming it).
pub type CreateTransportError = RequestError;

/// A transport the router made, as `on_new_transport` sees it.
#[derive(Debug)]
pub enum NewTransport<'a> {
    /// A WebRTC transport.
    WebRtc(&'a WebRtcTransport),
    /// A plain transport.
    Plain(&'a PlainTransport),
    /// A direct transport.
    Direct(&'a DirectTransport),
}

/// An observer the router made, as `on_new_rtp_observer` sees it.
#[derive(Debug)]
pub enum NewRtpObserver<'a> {
    /// An audio level observer.
    AudioLevel(&'a AudioLevelObserver),
    /// An active speaker observer.
    ActiveSpeaker(&'a ActiveSpeakerObserver),
}

/// What a router holds, merged over the room's mediasoup routers,
/// without what the room made for itself (pipe transports and their
/// consumers): mediasoup's `RouterDump`, field for field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterDump {
    /// The router's id.
    pub id: RouterId,
    /// Consumer → producer.
    pub map_consumer_id_producer_id: HashedMap<ConsumerId, ProducerId>,
    /// Data consumer → data producer.
    pub map_data_consumer_id_data_producer_id: HashedMap<DataConsumerId, DataProducerId>,
    /// Data producer → data consumers.
    pub map_data_producer_id_data_consumer_ids:
        HashedMap<DataProducerId, HashedSet<DataConsumerId>>,
    /// Producer → consumers.
    pub map_producer_id_consumer_ids: HashedMap<ProducerId, HashedSet<ConsumerId>>,
    /// Producer → observers.
    pub map_producer_id_observer_ids: HashedMap<ProducerId, HashedSet<RtpObserverId>>,
    /// Observers.
    pub rtp_observer_ids: HashedSet<RtpObserverId>,
    /// Transports.
    pub transport_ids: HashedSet<TransportId>,
}

type NewTransportCallback = Arc<dyn Fn(NewTransport<'_>) + Send + Sync>;
type NewObserverCallback = Arc<dyn Fn(NewRtpObserver<'_>) + Send + Sync>;

#[derive(Default)]
struct Handlers {
    new_transport: Bag<NewTransportCallback>,
    new_rtp_observer: Bag<NewObserverCallback>,
    close: BagOnce<Box<dyn FnOnce() + Send>>,
}

pub(crate) struct RouterInner {
    id: RouterId,
    room_id: RoomId,
    room: Addr<RoomActor>,
    worker: Worker,
    app_data: AppData,
    rtp_capabilities: RtpCapabilitiesFinalized,
    /// Where each producer made through the router lives (for
    /// `can_consume`, asked of the producer's own mediasoup router).
    producers: Mutex<HashMap<ProducerId, ::mediasoup::router::Router>>,
    handlers: Handlers,
    closed: AtomicBool,
    /// Holds the room open while the router lives.
    _hold: GateHold,
}

impl Drop for RouterInner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.handlers.close.call_simple();
    }
}

/// A room, used as a mediasoup router. Cheap to clone; the room stays
/// open while a clone, or a transport or observer made from it, lives.
#[derive(Clone)]
pub struct Router {
    inner: Arc<RouterInner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("id", &self.inner.id)
            .field("room", &self.inner.room_id)
            .finish_non_exhaustive()
    }
}

/// Gives a seat back when the last thing on it closes.
pub(super) struct SeatGuard {
    room: Addr<RoomActor>,
    seat: u64,
}

impl Drop for SeatGuard {
    fn drop(&mut self) {
        self.room.do_send(LeaveSeat(self.seat));
    }
}

fn refused(e: impl std::fmt::Display) -> RequestError {
    RequestError::Response {
        reason: e.to_string(),
    }
}

impl Router {
    pub(super) async fn open(
        id: RouterId,
        room_id: RoomId,
        ticket: RoomTicket,
        worker: Worker,
        app_data: AppData,
    ) -> Result<Self, super::CreateRouterError> {
        let RoomTicket { addr, hold } = ticket;
        let rtp_capabilities = addr
            .send(GetRtpCapabilities)
            .await
            .map_err(|_| super::CreateRouterError::NodeGone)?
            .map_err(|e| super::CreateRouterError::Room(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(RouterInner {
                id,
                room_id,
                room: addr,
                worker,
                app_data,
                rtp_capabilities,
                producers: Mutex::new(HashMap::new()),
                handlers: Handlers::default(),
                closed: AtomicBool::new(false),
                _hold: hold,
            }),
        })
    }

    pub(super) fn downgrade_inner(&self) -> Weak<RouterInner> {
        Arc::downgrade(&self.inner)
    }

    pub(super) fn room(&self) -> &Addr<RoomActor> {
        &self.inner.room
    }

    /// Records where a producer lives, until it closes.
    pub(super) fn add_producer(&self, id: ProducerId, on: ::mediasoup::router::Router) {
        self.inner.producers.lock().insert(id, on);
    }

    /// A producer closed.
    pub(super) fn producer_closed(inner: &Weak<RouterInner>, id: &ProducerId) {
        if let Some(inner) = inner.upgrade() {
            inner.producers.lock().remove(id);
        }
    }

    /// Takes a seat on a worker, and the guard that gives it back.
    pub(super) async fn take_seat(&self) -> Result<(AppSeat, SeatGuard), RequestError> {
        let seat = self
            .inner
            .room
            .send(TakeSeat)
            .await
            .map_err(|_| RequestError::ChannelClosed)?
            .map_err(refused)?;
        let guard = SeatGuard {
            room: self.inner.room.clone(),
            seat: seat.id,
        };
        Ok((seat, guard))
    }

    /// The router's id (the room's, for this handle's lifetime).
    pub fn id(&self) -> RouterId {
        self.inner.id
    }

    /// The room's name.
    pub fn room_id(&self) -> &RoomId {
        &self.inner.room_id
    }

    /// The worker (node) it was made on.
    pub fn worker(&self) -> &Worker {
        &self.inner.worker
    }

    /// The application data given at creation.
    pub fn app_data(&self) -> &AppData {
        &self.inner.app_data
    }

    /// Whether it is closed.
    pub fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The RTP capabilities of the room's routers (all the same).
    pub fn rtp_capabilities(&self) -> RtpCapabilitiesFinalized {
        self.inner.rtp_capabilities.clone()
    }

    /// Whether `rtp_capabilities` can consume `producer_id` (a producer
    /// made through this router), asked of the producer's own router.
    pub fn can_consume(
        &self,
        producer_id: &ProducerId,
        rtp_capabilities: &RtpCapabilities,
    ) -> bool {
        let router = self.inner.producers.lock().get(producer_id).cloned();
        router.is_some_and(|r| r.can_consume(producer_id, rtp_capabilities))
    }

    /// A WebRTC transport, on the worker placement chooses.
    pub async fn create_webrtc_transport(
        &self,
        options: WebRtcTransportOptions,
    ) -> Result<WebRtcTransport, RequestError> {
        let (seat, guard) = self.take_seat().await?;
        let real = seat.router.create_webrtc_transport(options).await?;
        let t = Seated::new(real, self.clone(), seat, guard);
        self.inner
            .handlers
            .new_transport
            .call(|cb| cb(NewTransport::WebRtc(&t)));
        Ok(t)
    }

    /// A plain transport, on the worker placement chooses. Its `connect`
    /// is mediasoup's own: the application is trusted with any address
    /// (`rtc.plain_allowed_networks` guards signalling clients only).
    pub async fn create_plain_transport(
        &self,
        options: PlainTransportOptions,
    ) -> Result<PlainTransport, RequestError> {
        let (seat, guard) = self.take_seat().await?;
        let real = seat.router.create_plain_transport(options).await?;
        let t = Seated::new(real, self.clone(), seat, guard);
        self.inner
            .handlers
            .new_transport
            .call(|cb| cb(NewTransport::Plain(&t)));
        Ok(t)
    }

    /// A direct transport, on the worker placement chooses.
    pub async fn create_direct_transport(
        &self,
        options: DirectTransportOptions,
    ) -> Result<DirectTransport, RequestError> {
        let (seat, guard) = self.take_seat().await?;
        let real = seat.router.create_direct_transport(options).await?;
        let t = Seated::new(real, self.clone(), seat, guard);
        self.inner
            .handlers
            .new_transport
            .call(|cb| cb(NewTransport::Direct(&t)));
        Ok(t)
    }

    /// An active speaker observer; it hears producers of any worker.
    pub async fn create_active_speaker_observer(
        &self,
        options: ActiveSpeakerObserverOptions,
    ) -> Result<ActiveSpeakerObserver, RequestError> {
        let (seat, guard) = self.take_seat().await?;
        let real = seat.router.create_active_speaker_observer(options).await?;
        let o = Observed::new(real, self.clone(), seat, guard);
        self.inner
            .handlers
            .new_rtp_observer
            .call(|cb| cb(NewRtpObserver::ActiveSpeaker(&o)));
        Ok(o)
    }

    /// An audio level observer; it hears producers of any worker.
    pub async fn create_audio_level_observer(
        &self,
        options: AudioLevelObserverOptions,
    ) -> Result<AudioLevelObserver, RequestError> {
        let (seat, guard) = self.take_seat().await?;
        let real = seat.router.create_audio_level_observer(options).await?;
        let o = Observed::new(real, self.clone(), seat, guard);
        self.inner
            .handlers
            .new_rtp_observer
            .call(|cb| cb(NewRtpObserver::AudioLevel(&o)));
        Ok(o)
    }

    /// What the room holds, merged over its mediasoup routers, without
    /// its own pipes.
    pub async fn dump(&self) -> Result<RouterDump, RequestError> {
        let internal = self
            .inner
            .room
            .send(GetInternalIds)
            .await
            .map_err(|_| RequestError::ChannelClosed)?;
        let mut out = RouterDump {
            id: self.inner.id,
            map_consumer_id_producer_id: HashedMap::default(),
            map_data_consumer_id_data_producer_id: HashedMap::default(),
            map_data_producer_id_data_consumer_ids: HashedMap::default(),
            map_producer_id_consumer_ids: HashedMap::default(),
            map_producer_id_observer_ids: HashedMap::default(),
            rtp_observer_ids: HashedSet::default(),
            transport_ids: HashedSet::default(),
        };
        for router in &internal.routers {
            let d = router.dump().await?;
            out.transport_ids.extend(
                d.transport_ids
                    .into_iter()
                    .filter(|t| !internal.transports.contains(t)),
            );
            out.rtp_observer_ids.extend(d.rtp_observer_ids);
            for (p, cs) in d.map_producer_id_consumer_ids {
                let cs = cs.into_iter().filter(|c| !internal.consumers.contains(c));
                out.map_producer_id_consumer_ids
                    .entry(p)
                    .or_default()
                    .extend(cs);
            }
            out.map_consumer_id_producer_id.extend(
                d.map_consumer_id_producer_id
                    .into_iter()
                    .filter(|(c, _)| !internal.consumers.contains(c)),
            );
            for (p, os) in d.map_producer_id_observer_ids {
                out.map_producer_id_observer_ids
                    .entry(p)
                    .or_default()
                    .extend(os);
            }
            for (p, cs) in d.map_data_producer_id_data_consumer_ids {
                let cs = cs
                    .into_iter()
                    .filter(|c| !internal.data_consumers.contains(c));
                out.map_data_producer_id_data_consumer_ids
                    .entry(p)
                    .or_default()
                    .extend(cs);
            }
            out.map_data_consumer_id_data_producer_id.extend(
                d.map_data_consumer_id_data_producer_id
                    .into_iter()
                    .filter(|(c, _)| !internal.data_consumers.contains(c)),
            );
        }
        Ok(out)
    }

    /// Called with each transport the router makes.
    pub fn on_new_transport<F: Fn(NewTransport<'_>) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        self.inner.handlers.new_transport.add(Arc::new(callback))
    }

    /// Called with each observer the router makes.
    pub fn on_new_rtp_observer<F: Fn(NewRtpObserver<'_>) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        self.inner.handlers.new_rtp_observer.add(Arc::new(callback))
    }

    /// Called when the router closes (its last handle went).
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.close.add(Box::new(callback))
    }
}
