//! Peers' DataChannels: SCTP data producers and consumers on their WebRTC
//! transports, piped between the room's routers on this node like the
//! embedding API's (see `app`).

use actix::prelude::*;
use mediasoup::prelude::*;
use tracing::Instrument;

use super::messages::{DataProducerInfo, Direction, Event};
use super::peers::PeerTransport;
use super::{RoomActor, RoomError};
use crate::ids::{PeerId, RouterLoc};

/// A peer starts sending on a DataChannel.
#[derive(Debug, Message)]
#[rtype(result = "Result<DataProducerId, RoomError>")]
pub struct ProduceData {
    /// Whose.
    pub peer_id: PeerId,
    /// On which of its send transports (with SCTP).
    pub transport_id: TransportId,
    /// The channel's SCTP stream.
    pub sctp_stream_parameters: SctpStreamParameters,
    /// The channel's label.
    pub label: String,
    /// The channel's sub-protocol.
    pub protocol: String,
}

/// A data consumer the room created for a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConsumerInfo {
    /// Its id.
    pub id: DataConsumerId,
    /// What it receives.
    pub data_producer_id: DataProducerId,
    /// The SCTP stream the client receives it on.
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    /// The channel's label.
    pub label: String,
    /// The channel's sub-protocol.
    pub protocol: String,
}

/// A peer starts receiving another peer's DataChannel.
#[derive(Debug, Message)]
#[rtype(result = "Result<DataConsumerInfo, RoomError>")]
pub struct ConsumeData {
    /// Who receives.
    pub peer_id: PeerId,
    /// On which of its receive transports (with SCTP).
    pub transport_id: TransportId,
    /// What it receives.
    pub data_producer_id: DataProducerId,
}

fn data_producer_info(peer_id: PeerId, p: &DataProducer) -> DataProducerInfo {
    DataProducerInfo {
        data_producer_id: p.id(),
        peer_id,
        label: p.label().clone(),
        protocol: p.protocol().clone(),
    }
}

impl RoomActor {
    /// Every peer's data producers, as a joining peer learns them.
    pub(super) fn data_producer_infos(&self) -> Vec<DataProducerInfo> {
        self.peers
            .iter()
            .flat_map(|(id, p)| {
                p.data_producers
                    .values()
                    .map(|d| data_producer_info(*id, d))
            })
            .collect()
    }

    /// Where a peer's data producer lives, with its owner.
    fn find_data_producer(&self, id: DataProducerId) -> Option<(PeerId, RouterLoc)> {
        self.peers
            .iter()
            .find(|(_, p)| p.data_producers.contains_key(&id))
            .map(|(pid, p)| (*pid, p.loc.clone()))
    }

    /// Tells the others a peer's data producers are gone (it left, or
    /// closed the transport they were on).
    pub(super) fn data_producers_gone(
        &mut self,
        peer_id: PeerId,
        ids: Vec<DataProducerId>,
        ctx: &mut Context<Self>,
    ) {
        for id in ids {
            self.app.forget_data_pipes_of(id);
            self.broadcast(
                peer_id,
                Event::DataProducerClosed {
                    data_producer_id: id,
                },
                ctx,
            );
        }
    }

    /// Closes a peer's data producers and consumers made on `transport_id`.
    pub(super) fn close_peer_data_on(
        &mut self,
        peer_id: PeerId,
        transport_id: TransportId,
        ctx: &mut Context<Self>,
    ) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let origin = &peer.origin;
        let on_it = |id: uuid::Uuid| origin.get(&id) == Some(&transport_id);
        let producers: Vec<DataProducerId> = peer
            .data_producers
            .keys()
            .copied()
            .filter(|id| on_it((*id).into()))
            .collect();
        let consumers: Vec<DataConsumerId> = peer
            .data_consumers
            .keys()
            .copied()
            .filter(|id| on_it((*id).into()))
            .collect();
        for id in &producers {
            peer.data_producers.remove(id);
            peer.origin.remove(&(*id).into());
        }
        for id in &consumers {
            peer.data_consumers.remove(id);
            peer.origin.remove(&(*id).into());
        }
        self.data_producers_gone(peer_id, producers, ctx);
        self.gc_routers();
    }
}

impl Handler<ProduceData> for RoomActor {
    type Result = ResponseActFuture<Self, Result<DataProducerId, RoomError>>;

    fn handle(&mut self, msg: ProduceData, _ctx: &mut Self::Context) -> Self::Result {
        let max = self.env.config.limits.producers_per_peer;
        let transport = self
            .peer(msg.peer_id)
            .and_then(|p| RoomError::check_limit("producers_per_peer", p.data_producers.len(), max))
            .and_then(|()| self.transport(msg.peer_id, msg.transport_id, Some(Direction::Send)));
        let transport = match transport {
            Ok(PeerTransport::WebRtc(t)) => t,
            Ok(PeerTransport::Plain(_)) => {
                let e = RoomError::WrongTransportKind(msg.transport_id, "WebRTC");
                return Box::pin(fut::ready(Err(e)));
            }
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let mut options = DataProducerOptions::new_sctp(msg.sctp_stream_parameters);
        options.label = msg.label;
        options.protocol = msg.protocol;
        let fut = async move {
            transport.produce_data(options).await.map_err(|e| match e {
                ProduceDataError::Request(e) => RoomError::from_request(e),
                other => RoomError::InvalidParameters(other.to_string()),
            })
        }
        .instrument(self.span.clone());
        let (peer_id, transport_id) = (msg.peer_id, msg.transport_id);
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let producer = res?;
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            if !peer.transports.contains_key(&transport_id) {
                return Err(RoomError::UnknownTransport(transport_id));
            }
            let info = data_producer_info(peer_id, &producer);
            peer.origin.insert(producer.id().into(), transport_id);
            peer.data_producers.insert(producer.id(), producer);
            act.broadcast(peer_id, Event::NewDataProducer(info.clone()), ctx);
            Ok(info.data_producer_id)
        }))
    }
}

impl Handler<ConsumeData> for RoomActor {
    type Result = ResponseActFuture<Self, Result<DataConsumerInfo, RoomError>>;

    fn handle(&mut self, msg: ConsumeData, ctx: &mut Self::Context) -> Self::Result {
        let max = self.env.config.limits.consumers_per_peer;
        let id = msg.data_producer_id;
        let checked = (|| {
            let peer = self.peer(msg.peer_id)?;
            RoomError::check_limit("consumers_per_peer", peer.data_consumers.len(), max)?;
            let target = peer.loc.clone();
            let transport =
                match self.transport(msg.peer_id, msg.transport_id, Some(Direction::Recv))? {
                    PeerTransport::WebRtc(t) => t,
                    PeerTransport::Plain(_) => {
                        return Err(RoomError::WrongTransportKind(msg.transport_id, "WebRTC"))
                    }
                };
            let (owner, source) = self.find_data_producer(id).ok_or_else(|| {
                RoomError::InvalidParameters(format!("unknown data producer {id}"))
            })?;
            if owner == msg.peer_id {
                return Err(RoomError::InvalidParameters(format!(
                    "data producer {id} is the peer's own"
                )));
            }
            Ok((transport, source, target))
        })();
        let (transport, source, target) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let claim = if source == target {
            None
        } else {
            match self.data_pipe_into(id, &source, &target) {
                Ok(c) => Some(c),
                Err(e) => return Box::pin(fut::ready(Err(e))),
            }
        };
        let me = ctx.address();
        let fut = async move {
            if let Some((_, pipe)) = &claim {
                pipe.clone().await?;
            }
            let consumer = transport
                .consume_data(DataConsumerOptions::new_sctp(id))
                .await
                .map_err(|e| match e {
                    ConsumeDataError::Request(e) => RoomError::from_request(e),
                    other => RoomError::InvalidParameters(other.to_string()),
                });
            Ok::<_, RoomError>((consumer, claim.map(|(c, _)| c)))
        }
        .instrument(self.span.clone());
        let (peer_id, transport_id) = (msg.peer_id, msg.transport_id);
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            let (consumer, claim) = res?;
            let holder = consumer.as_ref().ok().map(|c| c.id());
            if let Some(claim) = &claim {
                act.end_data_claim(claim, holder);
                if let (Ok(c), Some(holder)) = (&consumer, holder) {
                    let (me, target) = (me.clone(), target.clone());
                    c.on_close(move || {
                        me.do_send(super::app::ReleaseDataPipe {
                            data_producer_id: id,
                            target,
                            holder,
                        })
                    })
                    .detach();
                }
            }
            let consumer = consumer?;
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            if !peer.transports.contains_key(&transport_id) {
                return Err(RoomError::UnknownTransport(transport_id));
            }
            let info = DataConsumerInfo {
                id: consumer.id(),
                data_producer_id: id,
                sctp_stream_parameters: consumer.sctp_stream_parameters(),
                label: consumer.label().clone(),
                protocol: consumer.protocol().clone(),
            };
            peer.origin.insert(consumer.id().into(), transport_id);
            peer.data_consumers.insert(consumer.id(), consumer);
            Ok(info)
        }))
    }
}
