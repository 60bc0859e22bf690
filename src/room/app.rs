//! The embedding API's side of a room ([`crate::mediasoup`]): seats on
//! workers, the producers and data producers the application owns, and
//! pipes into a seat's router for its consumers, data consumers and
//! observers.
//!
//! The application holds the mediasoup handles itself (closing them is
//! its business, as with mediasoup); the room only learns where each
//! producer lives, places seats, and keeps the pipes a seat's consumers
//! need, released when they close.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use mediasoup::prelude::*;
use tracing::Instrument;

use super::pipes::{connected_pair, pipe_options};
use super::{RoomActor, RoomError};
use crate::ids::RouterLoc;
use crate::metrics::{Counters, Resource, Tracked};

pub(super) type DataPipeFuture = Shared<LocalBoxFuture<'static, Result<DataPipe, RoomError>>>;
type DataLinkFuture =
    Shared<LocalBoxFuture<'static, Result<(PipeTransport, PipeTransport), RoomError>>>;

/// What the embedding API holds in a room.
#[derive(Default)]
pub(crate) struct AppState {
    /// Seats, by id: where their transports live.
    seats: HashMap<u64, (RouterLoc, Tracked)>,
    /// Producers the application created, with where they live.
    producers: HashMap<ProducerId, RouterLoc>,
    /// Data producers the application created, with where they live.
    data_producers: HashMap<DataProducerId, RouterLoc>,
    /// Data producers piped into another router.
    data_pipes: HashMap<(DataProducerId, RouterLoc), DataHop>,
    /// SCTP-enabled pipe transport pairs for data, by (from, to).
    data_links: HashMap<(RouterLoc, RouterLoc), DataLinkFuture>,
}

impl AppState {
    /// Whether the application holds nothing in the room.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// Forgets the pipes of a data producer that closed.
    pub fn forget_data_pipes_of(&mut self, id: DataProducerId) {
        self.data_pipes.retain(|(d, _), _| *d != id);
    }

    /// The routers seats and data pipes use.
    pub fn used_routers(&self) -> impl Iterator<Item = RouterLoc> + '_ {
        self.seats.values().map(|(l, _)| l.clone()).chain(
            self.data_links
                .keys()
                .flat_map(|(a, b)| [a.clone(), b.clone()]),
        )
    }
}

/// A data producer carried into another router: a data consumer on the
/// sending pipe transport, a data producer with the same id on the
/// receiving one.
#[derive(Debug, Clone)]
pub(super) struct DataPipe {
    consumer: DataConsumer,
    /// Kept open while the hop lives.
    _producer: DataProducer,
}

struct DataHop {
    id: u64,
    from: RouterLoc,
    fut: DataPipeFuture,
    holders: HashSet<DataConsumerId>,
    in_flight: usize,
}

/// A seat: one placement of the application's on a worker, where the
/// transports it creates live.
#[derive(Debug, Clone)]
pub struct AppSeat {
    /// Its id in the room.
    pub id: u64,
    /// The router's location.
    pub loc: RouterLoc,
    /// The room's router on the seat's worker.
    pub router: Router,
    /// The node's counters.
    pub node_counters: Arc<Counters>,
    /// The worker's counters.
    pub worker_counters: Arc<Counters>,
}

/// Places a seat on a worker (as a joining participant is placed; it
/// counts as one on the worker).
#[derive(Debug, Message)]
#[rtype(result = "Result<AppSeat, RoomError>")]
pub struct TakeSeat;

/// Gives a seat up (its transports closed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LeaveSeat(pub u64);

/// The application created a producer on a seat's router.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppProduced {
    /// The seat.
    pub seat: u64,
    /// The producer.
    pub producer_id: ProducerId,
}

/// An application producer closed: its pipes go.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppProducerClosed(pub ProducerId);

/// The application created a data producer on a seat's router.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppDataProduced {
    /// The seat.
    pub seat: u64,
    /// The data producer.
    pub data_producer_id: DataProducerId,
}

/// An application data producer closed: its pipes go.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AppDataProducerClosed(pub DataProducerId);

/// A pipe carrying a producer into a seat's router, held for one
/// consume until [`EndPipeClaim`].
#[derive(Debug, Clone)]
pub struct PipeClaim {
    producer_id: ProducerId,
    target: RouterLoc,
    hop: u64,
}

/// Makes `producer_id` available on the seat's router (piping it there
/// when it lives elsewhere in the room). `None` when no pipe is needed
/// (it lives there, or the room does not know it: mediasoup then answers
/// for it).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PipeClaim>, RoomError>")]
pub struct OpenPipe {
    /// The seat.
    pub seat: u64,
    /// The producer.
    pub producer_id: ProducerId,
}

/// Ends a claim; `holder` (a consumer, or an observer's hold) now keeps
/// the pipe until [`ReleasePipe`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EndPipeClaim {
    /// The claim.
    pub claim: PipeClaim,
    /// What uses the pipe from now on, if the consume succeeded.
    pub holder: Option<ConsumerId>,
}

/// A pipe's holder is gone (the consumer closed, the observer dropped
/// the producer).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleasePipe {
    /// The producer piped.
    pub producer_id: ProducerId,
    /// Where to.
    pub target: RouterLoc,
    /// The holder.
    pub holder: ConsumerId,
}

impl PipeClaim {
    /// Where the producer is piped to.
    pub fn target(&self) -> &RouterLoc {
        &self.target
    }
}

/// A data pipe into a seat's router, held for one data consume until
/// [`EndDataClaim`].
#[derive(Debug, Clone)]
pub struct DataClaim {
    data_producer_id: DataProducerId,
    target: RouterLoc,
    hop: u64,
}

impl DataClaim {
    /// Where the data producer is piped to.
    pub fn target(&self) -> &RouterLoc {
        &self.target
    }
}

/// Makes `data_producer_id` available on the seat's router; `None` when
/// no pipe is needed or the room does not know it.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<DataClaim>, RoomError>")]
pub struct OpenDataPipe {
    /// The seat.
    pub seat: u64,
    /// The data producer.
    pub data_producer_id: DataProducerId,
}

/// Ends a data claim; `holder` now keeps the pipe until
/// [`ReleaseDataPipe`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EndDataClaim {
    /// The claim.
    pub claim: DataClaim,
    /// The data consumer, if the consume succeeded.
    pub holder: Option<DataConsumerId>,
}

/// A data consumer fed through a pipe closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseDataPipe {
    /// The data producer piped.
    pub data_producer_id: DataProducerId,
    /// Where to.
    pub target: RouterLoc,
    /// The data consumer.
    pub holder: DataConsumerId,
}

/// The ids of what the room made for itself on its routers (pipe
/// transports and the pipe consumers on them), which a router dump of
/// the application's should not show.
#[derive(Debug, Default, Clone, MessageResponse)]
pub struct InternalIds {
    /// Pipe transports.
    pub transports: HashSet<TransportId>,
    /// Pipe consumers.
    pub consumers: HashSet<ConsumerId>,
    /// Pipe data consumers.
    pub data_consumers: HashSet<DataConsumerId>,
    /// Every router of the room.
    pub routers: Vec<Router>,
}

/// Asks for [`InternalIds`].
#[derive(Debug, Message)]
#[rtype(result = "InternalIds")]
pub struct GetInternalIds;

impl RoomActor {
    fn seat_loc(&self, seat: u64) -> Result<RouterLoc, RoomError> {
        self.app
            .seats
            .get(&seat)
            .map(|(l, _)| l.clone())
            .ok_or(RoomError::RoomClosed)
    }

    /// Where a producer of the room lives, if it is known.
    fn producer_loc(&self, producer_id: ProducerId) -> Option<RouterLoc> {
        if let Some(l) = self.app.producers.get(&producer_id) {
            return Some(l.clone());
        }
        if let Some((owner, _)) = self.find_producer(producer_id) {
            return self.peers.get(&owner).map(|p| p.loc.clone());
        }
        self.remote_producers
            .get(&producer_id)
            .map(|(_, l)| l.clone())
    }

    /// Where a data producer lives: the application's, or a peer's.
    fn data_source(&self, id: DataProducerId) -> Option<RouterLoc> {
        if let Some(l) = self.app.data_producers.get(&id) {
            return Some(l.clone());
        }
        self.peers
            .values()
            .find(|p| p.data_producers.contains_key(&id))
            .map(|p| p.loc.clone())
    }

    /// The data pipe of `id` from `source` into `target`, started if
    /// needed, with one claim on it (end it with `end_data_claim`).
    pub(super) fn data_pipe_into(
        &mut self,
        id: DataProducerId,
        source: &RouterLoc,
        target: &RouterLoc,
    ) -> Result<(DataClaim, DataPipeFuture), RoomError> {
        let key = (id, target.clone());
        if let Some(h) = self.app.data_pipes.get_mut(&key) {
            h.in_flight += 1;
            let claim = DataClaim {
                data_producer_id: id,
                target: target.clone(),
                hop: h.id,
            };
            return Ok((claim, h.fut.clone()));
        }
        let link = self.data_link(source, target)?;
        let fut = data_hop(id, link)
            .instrument(self.span.clone())
            .boxed_local()
            .shared();
        let hop = self.fresh_id();
        self.app.data_pipes.insert(
            key,
            DataHop {
                id: hop,
                from: source.clone(),
                fut: fut.clone(),
                holders: HashSet::new(),
                in_flight: 1,
            },
        );
        let claim = DataClaim {
            data_producer_id: id,
            target: target.clone(),
            hop,
        };
        Ok((claim, fut))
    }

    /// Drops data pipes and links nobody uses any more.
    pub(super) fn gc_data_pipes(&mut self) {
        self.app
            .data_pipes
            .retain(|_, h| h.in_flight > 0 || !h.holders.is_empty());
        let used: HashSet<(RouterLoc, RouterLoc)> = self
            .app
            .data_pipes
            .iter()
            .map(|((_, to), h)| (h.from.clone(), to.clone()))
            .collect();
        self.app
            .data_links
            .retain(|k, f| used.contains(k) && !matches!(f.peek(), Some(Err(_))));
    }

    fn data_link(&mut self, from: &RouterLoc, to: &RouterLoc) -> Result<DataLinkFuture, RoomError> {
        let key = (from.clone(), to.clone());
        if let Some(f) = self.app.data_links.get(&key) {
            return Ok(f.clone());
        }
        let (a, b) = (self.lease(from)?.router, self.lease(to)?.router);
        let buffer = self.env.config.rtc.pipe_socket_buffer_bytes;
        let mut options = pipe_options(IpAddr::V4(Ipv4Addr::LOCALHOST), buffer);
        options.enable_sctp = true;
        let fut = connected_pair(a, b, options)
            .instrument(self.span.clone())
            .boxed_local()
            .shared();
        self.app.data_links.insert(key, fut.clone());
        Ok(fut)
    }
}

impl Handler<TakeSeat> for RoomActor {
    type Result = ResponseActFuture<Self, Result<AppSeat, RoomError>>;

    fn handle(&mut self, _msg: TakeSeat, ctx: &mut Self::Context) -> Self::Result {
        if self.closing {
            return Box::pin(fut::ready(Err(RoomError::RoomClosed)));
        }
        let Some(seat) = self.env.workers.pick(&self.env.config.placement) else {
            return Box::pin(fut::ready(Err(RoomError::NoWorker)));
        };
        let loc = self.local_loc(seat.slot);
        let (router_id, router) = match self.router_for(&loc, ctx) {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let tracked = Tracked::new(Resource::Peer, &[&self.env.counters, &seat.counters]);
        let id = self.fresh_id();
        // Held from now on, so that the router stays while it is made.
        self.app.seats.insert(id, (loc.clone(), tracked));
        Box::pin(router.into_actor(self).map(move |lease, act, _ctx| {
            let lease = match lease {
                Ok(l) if !act.closing && act.current_router(&loc, router_id) => Ok(l),
                Ok(_) => Err(RoomError::RoomClosed),
                Err(e) => Err(e),
            };
            match lease {
                Ok(lease) => Ok(AppSeat {
                    id,
                    loc,
                    router: lease.router,
                    node_counters: Arc::clone(&act.env.counters),
                    worker_counters: lease.worker_counters,
                }),
                Err(e) => {
                    act.app.seats.remove(&id);
                    act.gc_routers();
                    Err(e)
                }
            }
        }))
    }
}

impl Handler<LeaveSeat> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: LeaveSeat, ctx: &mut Self::Context) {
        if self.app.seats.remove(&msg.0).is_some() {
            self.gc_routers();
            self.maybe_close(ctx);
        }
    }
}

impl Handler<AppProduced> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: AppProduced, _ctx: &mut Self::Context) {
        if let Ok(loc) = self.seat_loc(msg.seat) {
            self.app.producers.insert(msg.producer_id, loc);
        }
    }
}

impl Handler<AppProducerClosed> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: AppProducerClosed, _ctx: &mut Self::Context) {
        if self.app.producers.remove(&msg.0).is_some() {
            self.drop_pipes_of(msg.0);
            self.gc_routers();
        }
    }
}

impl Handler<AppDataProduced> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: AppDataProduced, _ctx: &mut Self::Context) {
        if let Ok(loc) = self.seat_loc(msg.seat) {
            self.app.data_producers.insert(msg.data_producer_id, loc);
        }
    }
}

impl Handler<AppDataProducerClosed> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: AppDataProducerClosed, _ctx: &mut Self::Context) {
        if self.app.data_producers.remove(&msg.0).is_some() {
            self.app.data_pipes.retain(|(id, _), _| *id != msg.0);
            self.gc_routers();
        }
    }
}

impl Handler<OpenPipe> for RoomActor {
    type Result = ResponseActFuture<Self, Result<Option<PipeClaim>, RoomError>>;

    fn handle(&mut self, msg: OpenPipe, ctx: &mut Self::Context) -> Self::Result {
        let target = match self.seat_loc(msg.seat) {
            Ok(l) => l,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let source = match self.producer_loc(msg.producer_id) {
            Some(s) if s != target => s,
            _ => return Box::pin(fut::ready(Ok(None))),
        };
        let producer_id = msg.producer_id;
        let (hop, fut) = match self.pipe_for(producer_id, &source, &target, None, ctx) {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let claim = PipeClaim {
            producer_id,
            target,
            hop,
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| match res {
            Ok(_) => Ok(Some(claim)),
            Err(e) => {
                act.finish_pipe(producer_id, &claim.target, hop, None);
                Err(e)
            }
        }))
    }
}

impl Handler<EndPipeClaim> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: EndPipeClaim, _ctx: &mut Self::Context) {
        let c = msg.claim;
        self.finish_pipe(c.producer_id, &c.target, c.hop, msg.holder);
    }
}

impl Handler<ReleasePipe> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: ReleasePipe, _ctx: &mut Self::Context) {
        self.release_consumer(msg.producer_id, &msg.target, msg.holder);
        self.gc_routers();
    }
}

impl Handler<OpenDataPipe> for RoomActor {
    type Result = ResponseActFuture<Self, Result<Option<DataClaim>, RoomError>>;

    fn handle(&mut self, msg: OpenDataPipe, _ctx: &mut Self::Context) -> Self::Result {
        let id = msg.data_producer_id;
        let checked = (|| {
            let target = self.seat_loc(msg.seat)?;
            let source = match self.data_source(id) {
                Some(s) if s != target => s,
                _ => return Ok(None),
            };
            Ok(Some((source, target)))
        })();
        let (source, target) = match checked {
            Ok(Some(v)) => v,
            Ok(None) => return Box::pin(fut::ready(Ok(None))),
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let (claim, fut) = match self.data_pipe_into(id, &source, &target) {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| match res {
            Ok(_) => Ok(Some(claim)),
            Err(e) => {
                act.end_data_claim(&claim, None);
                Err(e)
            }
        }))
    }
}

/// Carries one data producer over a data link.
async fn data_hop(id: DataProducerId, link: DataLinkFuture) -> Result<DataPipe, RoomError> {
    let (sending, receiving) = link.await?;
    let consumer = sending
        .consume_data(DataConsumerOptions::new_sctp(id))
        .await
        .map_err(RoomError::mediasoup)?;
    let params = consumer
        .sctp_stream_parameters()
        .ok_or_else(|| RoomError::mediasoup("a pipe data consumer without SCTP parameters"))?;
    let mut options = DataProducerOptions::new_pipe_transport(id, params);
    options.label = consumer.label().clone();
    options.protocol = consumer.protocol().clone();
    let producer = receiving
        .produce_data(options)
        .await
        .map_err(RoomError::mediasoup)?;
    Ok(DataPipe {
        consumer,
        _producer: producer,
    })
}

impl RoomActor {
    pub(super) fn end_data_claim(&mut self, claim: &DataClaim, holder: Option<DataConsumerId>) {
        let key = (claim.data_producer_id, claim.target.clone());
        if let Some(h) = self
            .app
            .data_pipes
            .get_mut(&key)
            .filter(|h| h.id == claim.hop)
        {
            h.in_flight -= 1;
            if let Some(d) = holder {
                h.holders.insert(d);
            }
        }
        self.gc_routers();
    }
}

impl Handler<EndDataClaim> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: EndDataClaim, _ctx: &mut Self::Context) {
        self.end_data_claim(&msg.claim, msg.holder);
    }
}

impl Handler<ReleaseDataPipe> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: ReleaseDataPipe, _ctx: &mut Self::Context) {
        if let Some(h) = self
            .app
            .data_pipes
            .get_mut(&(msg.data_producer_id, msg.target))
        {
            h.holders.remove(&msg.holder);
        }
        self.gc_routers();
    }
}

impl Handler<GetInternalIds> for RoomActor {
    type Result = InternalIds;
    fn handle(&mut self, _msg: GetInternalIds, _ctx: &mut Self::Context) -> InternalIds {
        let mut ids = InternalIds::default();
        for f in self.pipe_pairs.values() {
            match f.peek() {
                Some(Ok(super::pipes::PipeLink::Local { sending, receiving })) => {
                    ids.transports.extend([sending.id(), receiving.id()]);
                }
                Some(Ok(super::pipes::PipeLink::Remote { receiving, .. })) => {
                    ids.transports.insert(receiving.id());
                }
                _ => {}
            }
        }
        for f in self.app.data_links.values() {
            if let Some(Ok((a, b))) = f.peek() {
                ids.transports.extend([a.id(), b.id()]);
            }
        }
        for tree in self.pipes.values() {
            for handles in tree.handles() {
                if let Some(Ok(h)) = handles.peek() {
                    if let super::pipes::HopSource::Local(c) = &h.source {
                        ids.consumers.insert(c.id());
                    }
                }
            }
        }
        for h in self.app.data_pipes.values() {
            if let Some(Ok(p)) = h.fut.peek() {
                ids.data_consumers.insert(p.consumer.id());
            }
        }
        ids.routers = self
            .routers
            .values()
            .filter_map(|e| match e.fut.peek() {
                Some(Ok(l)) => Some(l.router.clone()),
                _ => None,
            })
            .collect();
        ids
    }
}
