//! [`Observed`] observers: mediasoup's own, on one of the room's routers,
//! hearing producers of every router (each added producer is piped into
//! the observer's router while the observer uses it).

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use actix::Addr;
use async_trait::async_trait;
use event_listener_primitives::HandlerId;
use parking_lot::Mutex;

use super::router::{Router, SeatGuard};
use crate::ids::RouterLoc;
use crate::room::app::{AppSeat, EndPipeClaim, OpenPipe, ReleasePipe};
use crate::room::RoomActor;
use ::mediasoup::prelude::{ConsumerId, Producer, ProducerId};
use ::mediasoup::rtp_observer::{RtpObserver as MsRtpObserver, RtpObserverAddProducerOptions};
use ::mediasoup::types::data_structures::AppData;
use ::mediasoup::worker::RequestError;

pub use ::mediasoup::rtp_observer::RtpObserverId;

/// The pipes an observer holds: producer → (where, the hold's id).
type Holds = HashMap<ProducerId, (RouterLoc, ConsumerId)>;

struct ObserverCtx {
    router: Router,
    seat: AppSeat,
    holds: Arc<Mutex<Holds>>,
}

/// One of mediasoup's observers, on one of the room's routers. It
/// dereferences to the mediasoup observer; the [`RtpObserver`] trait's
/// methods are ours.
pub struct Observed<T> {
    real: T,
    ctx: Arc<ObserverCtx>,
}

impl<T: Clone> Clone for Observed<T> {
    fn clone(&self) -> Self {
        Self {
            real: self.real.clone(),
            ctx: Arc::clone(&self.ctx),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Observed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed")
            .field("observer", &self.real)
            .field("router", &self.ctx.seat.loc)
            .finish()
    }
}

impl<T> Deref for Observed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.real
    }
}

fn release_all(room: &Addr<RoomActor>, holds: &Mutex<Holds>) {
    for (producer_id, (target, holder)) in holds.lock().drain() {
        room.do_send(ReleasePipe {
            producer_id,
            target,
            holder,
        });
    }
}

impl<T> Observed<T> {
    /// Where the observer lives: the node and worker of its router.
    pub fn location(&self) -> &RouterLoc {
        &self.ctx.seat.loc
    }
}

impl<T: MsRtpObserver> Observed<T> {
    /// Seats `real`; its pipes and seat are given back when it closes.
    /// (A producer that closes takes its pipes with it: the room drops them;
    /// its entry here is then released again at close, which does nothing.)
    pub(super) fn new(real: T, router: Router, seat: AppSeat, guard: SeatGuard) -> Self {
        let holds: Arc<Mutex<Holds>> = Arc::default();
        let (room, h) = (router.room().clone(), Arc::clone(&holds));
        real.on_close(Box::new(move || {
            release_all(&room, &h);
            drop(guard);
        }))
        .detach();
        Self {
            real,
            ctx: Arc::new(ObserverCtx {
                router,
                seat,
                holds,
            }),
        }
    }
}

/// mediasoup's `RtpObserver` trait, on a room.
#[async_trait]
pub trait RtpObserver {
    /// Its id.
    fn id(&self) -> RtpObserverId;
    /// The router (room) it belongs to.
    fn router(&self) -> &Router;
    /// Whether it is paused.
    fn paused(&self) -> bool;
    /// Application data given at creation.
    fn app_data(&self) -> &AppData;
    /// Whether it is closed.
    fn closed(&self) -> bool;
    /// Pauses it.
    async fn pause(&self) -> Result<(), RequestError>;
    /// Resumes it.
    async fn resume(&self) -> Result<(), RequestError>;
    /// Observes a producer of the room, piped here first when it lives on
    /// another worker.
    async fn add_producer(
        &self,
        rtp_observer_add_producer_options: RtpObserverAddProducerOptions,
    ) -> Result<(), RequestError>;
    /// Stops observing a producer (its pipe is released).
    async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError>;
    /// Called when paused.
    fn on_pause(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId;
    /// Called when resumed.
    fn on_resume(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId;
    /// Called when a producer is added.
    fn on_add_producer(
        &self,
        callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called when a producer is removed.
    fn on_remove_producer(
        &self,
        callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called when its mediasoup router closes under it.
    fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;
    /// Called when it closes.
    fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;
}

#[async_trait]
impl<T> RtpObserver for Observed<T>
where
    T: MsRtpObserver + Send + Sync,
{
    fn id(&self) -> RtpObserverId {
        self.real.id()
    }

    fn router(&self) -> &Router {
        &self.ctx.router
    }

    fn paused(&self) -> bool {
        self.real.paused()
    }

    fn app_data(&self) -> &AppData {
        self.real.app_data()
    }

    fn closed(&self) -> bool {
        self.real.closed()
    }

    async fn pause(&self) -> Result<(), RequestError> {
        self.real.pause().await
    }

    async fn resume(&self) -> Result<(), RequestError> {
        self.real.resume().await
    }

    async fn add_producer(
        &self,
        options: RtpObserverAddProducerOptions,
    ) -> Result<(), RequestError> {
        let producer_id = options.producer_id;
        let room = self.ctx.router.room().clone();
        let claim = room
            .send(OpenPipe {
                seat: self.ctx.seat.id,
                producer_id,
            })
            .await
            .map_err(|_| RequestError::ChannelClosed)?
            .map_err(|e| RequestError::Response {
                reason: e.to_string(),
            })?;
        let result = self.real.add_producer(options).await;
        if let Some(claim) = claim {
            let target = claim.target().clone();
            // The hold is an id of our own, in the hop's set of users.
            let holder = ConsumerId::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a consumer id");
            let holder = result.is_ok().then_some(holder);
            room.do_send(EndPipeClaim { claim, holder });
            if let Some(holder) = holder {
                let old = self.ctx.holds.lock().insert(producer_id, (target, holder));
                if let Some((target, holder)) = old {
                    room.do_send(ReleasePipe {
                        producer_id,
                        target,
                        holder,
                    });
                }
            }
        }
        result
    }

    async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError> {
        let result = self.real.remove_producer(producer_id).await;
        if let Some((target, holder)) = self.ctx.holds.lock().remove(&producer_id) {
            self.ctx.router.room().do_send(ReleasePipe {
                producer_id,
                target,
                holder,
            });
        }
        result
    }

    fn on_pause(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId {
        self.real.on_pause(callback)
    }

    fn on_resume(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId {
        self.real.on_resume(callback)
    }

    fn on_add_producer(
        &self,
        callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_add_producer(callback)
    }

    fn on_remove_producer(
        &self,
        callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_remove_producer(callback)
    }

    fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        self.real.on_router_close(callback)
    }

    fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        self.real.on_close(callback)
    }
}
