//! [`Seated`] transports: mediasoup's own, on one of the room's routers,
//! whose consumes reach producers on the room's other routers.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use event_listener_primitives::HandlerId;

use super::router::{Router, RouterInner, SeatGuard};
use crate::metrics::{Resource, Tracked};
use crate::room::app::{
    AppDataProduced, AppDataProducerClosed, AppProduced, AppProducerClosed, AppSeat, EndDataClaim,
    EndPipeClaim, OpenDataPipe, OpenPipe, ReleaseDataPipe, ReleasePipe,
};
use ::mediasoup::prelude::{
    Consumer, ConsumerOptions, DataConsumer, DataConsumerOptions, DataProducer,
    DataProducerOptions, Producer, ProducerOptions, TransportId,
};
use ::mediasoup::transport::{Transport as MsTransport, TransportGeneric as MsTransportGeneric};
use ::mediasoup::types::data_structures::AppData;
use ::mediasoup::worker::RequestError;

pub use ::mediasoup::transport::{
    ConsumeDataError, ConsumeError, ProduceDataError, ProduceError, TransportTraceEventData,
    TransportTraceEventType,
};

/// What a seated transport knows of its place in the room.
struct SeatCtx {
    router: Router,
    seat: AppSeat,
}

/// One of mediasoup's transports, seated on one of the room's routers.
/// It dereferences to the mediasoup transport, so every inherent method
/// is mediasoup's (`connect`, `restart_ice`, `ice_state`, `tuple`,
/// `set_max_incoming_bitrate`, ...); the [`Transport`] trait's are ours.
pub struct Seated<T> {
    real: T,
    ctx: Arc<SeatCtx>,
}

impl<T: Clone> Clone for Seated<T> {
    fn clone(&self) -> Self {
        Self {
            real: self.real.clone(),
            ctx: Arc::clone(&self.ctx),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Seated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seated")
            .field("transport", &self.real)
            .field("router", &self.ctx.seat.loc)
            .finish()
    }
}

impl<T> Deref for Seated<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.real
    }
}

impl<T> Seated<T> {
    /// Where the transport lives: the node and worker of its router.
    pub fn location(&self) -> &crate::ids::RouterLoc {
        &self.ctx.seat.loc
    }
}

impl<T: MsTransport> Seated<T> {
    /// Seats `real`; the seat is given back, and the transport uncounted,
    /// when it closes.
    pub(super) fn new(real: T, router: Router, seat: AppSeat, guard: SeatGuard) -> Self {
        let tracked = Tracked::new(
            Resource::Transport,
            &[&seat.node_counters, &seat.worker_counters],
        );
        real.on_close(Box::new(move || drop((guard, tracked))))
            .detach();
        Self {
            real,
            ctx: Arc::new(SeatCtx { router, seat }),
        }
    }

    /// The mediasoup transport.
    pub fn inner(&self) -> &T {
        &self.real
    }

    fn track(&self, what: Resource) -> Tracked {
        Tracked::new(
            what,
            &[&self.ctx.seat.node_counters, &self.ctx.seat.worker_counters],
        )
    }

    fn router_weak(&self) -> Weak<RouterInner> {
        self.ctx.router.downgrade_inner()
    }
}

fn refused(e: impl fmt::Display) -> RequestError {
    RequestError::Response {
        reason: e.to_string(),
    }
}

/// mediasoup's `Transport` trait, on a room: produce and consume as
/// mediasoup does, with consumes of producers on other workers piped.
#[async_trait]
pub trait Transport: fmt::Debug + Send + Sync {
    /// Its id.
    fn id(&self) -> TransportId;
    /// The router (room) it belongs to.
    fn router(&self) -> &Router;
    /// Application data given at creation.
    fn app_data(&self) -> &AppData;
    /// Whether it is closed.
    fn closed(&self) -> bool;
    /// Starts receiving media (mediasoup's `produce`); the producer is
    /// then consumable from every transport of the room.
    async fn produce(&self, producer_options: ProducerOptions) -> Result<Producer, ProduceError>;
    /// Sends a producer of the room (piped here first when it lives on
    /// another worker).
    async fn consume(&self, consumer_options: ConsumerOptions) -> Result<Consumer, ConsumeError>;
    /// Starts receiving data (mediasoup's `produce_data`).
    async fn produce_data(
        &self,
        data_producer_options: DataProducerOptions,
    ) -> Result<DataProducer, ProduceDataError>;
    /// Sends a data producer of the room (piped here first when it lives
    /// on another worker).
    async fn consume_data(
        &self,
        data_consumer_options: DataConsumerOptions,
    ) -> Result<DataConsumer, ConsumeDataError>;
    /// mediasoup's `enable_trace_event`.
    async fn enable_trace_event(
        &self,
        types: Vec<TransportTraceEventType>,
    ) -> Result<(), RequestError>;
    /// Called with each producer made on it.
    fn on_new_producer(
        &self,
        callback: Arc<dyn Fn(&Producer) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called with each consumer made on it.
    fn on_new_consumer(
        &self,
        callback: Arc<dyn Fn(&Consumer) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called with each data producer made on it.
    fn on_new_data_producer(
        &self,
        callback: Arc<dyn Fn(&DataProducer) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called with each data consumer made on it.
    fn on_new_data_consumer(
        &self,
        callback: Arc<dyn Fn(&DataConsumer) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called with trace events.
    fn on_trace(
        &self,
        callback: Arc<dyn Fn(&TransportTraceEventData) + Send + Sync + 'static>,
    ) -> HandlerId;
    /// Called when its mediasoup router closes under it.
    fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;
    /// Called when it closes.
    fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;
}

/// mediasoup's `TransportGeneric`: dump and stats of the real transport.
#[async_trait]
pub trait TransportGeneric: Transport + Clone + 'static {
    /// The dump type.
    type Dump: fmt::Debug + 'static;
    /// The stats type.
    type Stat: fmt::Debug + 'static;
    /// mediasoup's dump of the transport.
    async fn dump(&self) -> Result<Self::Dump, RequestError>;
    /// mediasoup's stats of the transport.
    async fn get_stats(&self) -> Result<Vec<Self::Stat>, RequestError>;
}

#[async_trait]
impl<T> Transport for Seated<T>
where
    T: MsTransport + MsTransportGeneric,
{
    fn id(&self) -> TransportId {
        self.real.id()
    }

    fn router(&self) -> &Router {
        &self.ctx.router
    }

    fn app_data(&self) -> &AppData {
        self.real.app_data()
    }

    fn closed(&self) -> bool {
        self.real.closed()
    }

    async fn produce(&self, options: ProducerOptions) -> Result<Producer, ProduceError> {
        let producer = self.real.produce(options).await?;
        let id = producer.id();
        let room = self.ctx.router.room().clone();
        self.ctx
            .router
            .add_producer(id, self.ctx.seat.router.clone());
        // Known to the room before anyone can consume it.
        let _ = room
            .send(AppProduced {
                seat: self.ctx.seat.id,
                producer_id: id,
            })
            .await;
        let (tracked, router) = (self.track(Resource::Producer), self.router_weak());
        producer
            .on_close(move || {
                drop(tracked);
                Router::producer_closed(&router, &id);
                room.do_send(AppProducerClosed(id));
            })
            .detach();
        Ok(producer)
    }

    async fn consume(&self, options: ConsumerOptions) -> Result<Consumer, ConsumeError> {
        let producer_id = options.producer_id;
        let room = self.ctx.router.room().clone();
        let claim = room
            .send(OpenPipe {
                seat: self.ctx.seat.id,
                producer_id,
            })
            .await
            .map_err(|_| ConsumeError::Request(RequestError::ChannelClosed))?
            .map_err(|e| ConsumeError::Request(refused(e)))?;
        let result = self.real.consume(options).await;
        if let Some(claim) = claim {
            let target = claim.target().clone();
            let holder = result.as_ref().ok().map(|c| c.id());
            room.do_send(EndPipeClaim { claim, holder });
            if let (Ok(c), Some(holder)) = (&result, holder) {
                let room = room.clone();
                c.on_close(move || {
                    room.do_send(ReleasePipe {
                        producer_id,
                        target,
                        holder,
                    })
                })
                .detach();
            }
        }
        let consumer = result?;
        let tracked = self.track(Resource::Consumer);
        consumer.on_close(move || drop(tracked)).detach();
        Ok(consumer)
    }

    async fn produce_data(
        &self,
        options: DataProducerOptions,
    ) -> Result<DataProducer, ProduceDataError> {
        let producer = self.real.produce_data(options).await?;
        let id = producer.id();
        let room = self.ctx.router.room().clone();
        let _ = room
            .send(AppDataProduced {
                seat: self.ctx.seat.id,
                data_producer_id: id,
            })
            .await;
        producer
            .on_close(move || room.do_send(AppDataProducerClosed(id)))
            .detach();
        Ok(producer)
    }

    async fn consume_data(
        &self,
        options: DataConsumerOptions,
    ) -> Result<DataConsumer, ConsumeDataError> {
        // The options do not tell their data producer: mediasoup's answer
        // does, when it lives on another router.
        let id = match self.real.consume_data(options.clone()).await {
            Err(ConsumeDataError::DataProducerNotFound(id)) => id,
            other => return other,
        };
        let room = self.ctx.router.room().clone();
        let claim = room
            .send(OpenDataPipe {
                seat: self.ctx.seat.id,
                data_producer_id: id,
            })
            .await
            .map_err(|_| ConsumeDataError::Request(RequestError::ChannelClosed))?
            .map_err(|e| ConsumeDataError::Request(refused(e)))?
            .ok_or(ConsumeDataError::DataProducerNotFound(id))?;
        let result = self.real.consume_data(options).await;
        let target = claim.target().clone();
        let holder = result.as_ref().ok().map(|c| c.id());
        room.do_send(EndDataClaim { claim, holder });
        if let (Ok(c), Some(holder)) = (&result, holder) {
            let room = room.clone();
            c.on_close(move || {
                room.do_send(ReleaseDataPipe {
                    data_producer_id: id,
                    target,
                    holder,
                })
            })
            .detach();
        }
        result
    }

    async fn enable_trace_event(
        &self,
        types: Vec<TransportTraceEventType>,
    ) -> Result<(), RequestError> {
        self.real.enable_trace_event(types).await
    }

    fn on_new_producer(
        &self,
        callback: Arc<dyn Fn(&Producer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_new_producer(callback)
    }

    fn on_new_consumer(
        &self,
        callback: Arc<dyn Fn(&Consumer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_new_consumer(callback)
    }

    fn on_new_data_producer(
        &self,
        callback: Arc<dyn Fn(&DataProducer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_new_data_producer(callback)
    }

    fn on_new_data_consumer(
        &self,
        callback: Arc<dyn Fn(&DataConsumer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_new_data_consumer(callback)
    }

    fn on_trace(
        &self,
        callback: Arc<dyn Fn(&TransportTraceEventData) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.real.on_trace(callback)
    }

    fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        self.real.on_router_close(callback)
    }

    fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        self.real.on_close(callback)
    }
}

#[async_trait]
impl<T> TransportGeneric for Seated<T>
where
    T: MsTransport + MsTransportGeneric,
{
    type Dump = T::Dump;
    type Stat = T::Stat;

    async fn dump(&self) -> Result<Self::Dump, RequestError> {
        self.real.dump().await
    }

    async fn get_stats(&self) -> Result<Vec<Self::Stat>, RequestError> {
        self.real.get_stats().await
    }
}
