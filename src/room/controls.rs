//! Controls on one of a peer's entities: close a consumer or a whole
//! transport, restart ICE, transport stats, a consumer's preferred
//! simulcast/SVC layers.

use actix::prelude::*;
use mediasoup::prelude::*;
use mediasoup::types::data_structures::IceParameters;
use serde_json::Value;

use super::peers::PeerTransport;
use super::{RoomActor, RoomError};
use crate::ids::PeerId;

/// Closes one of a peer's consumers (the pipe it used is released).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct CloseConsumer {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub consumer_id: ConsumerId,
}

/// Closes one of a peer's transports with everything made on it: its
/// producers (the others are told `producerClosed`), consumers, data
/// producers and data consumers.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct CloseTransport {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub transport_id: TransportId,
}

/// Restarts ICE on one of a peer's WebRTC transports; answers the new
/// ICE parameters.
#[derive(Debug, Message)]
#[rtype(result = "Result<IceParameters, RoomError>")]
pub struct RestartIce {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub transport_id: TransportId,
}

/// mediasoup's statistics of one of a peer's transports, as their JSON.
#[derive(Debug, Message)]
#[rtype(result = "Result<Value, RoomError>")]
pub struct TransportStats {
    /// Whose.
    pub peer_id: PeerId,
    /// Which.
    pub transport_id: TransportId,
}

/// Sets the simulcast or SVC layers one of a peer's consumers prefers
/// (mediasoup's `set_preferred_layers`; through pipes as well, since the
/// piped producer keeps every layer).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct SetPreferredLayers {
    /// Whose.
    pub peer_id: PeerId,
    /// Which consumer.
    pub consumer_id: ConsumerId,
    /// The layers.
    pub layers: ConsumerLayers,
}

impl Handler<CloseConsumer> for RoomActor {
    type Result = Result<(), RoomError>;
    fn handle(&mut self, msg: CloseConsumer, _ctx: &mut Self::Context) -> Self::Result {
        self.peer(msg.peer_id)?;
        if self.close_consumer(msg.peer_id, msg.consumer_id) {
            Ok(())
        } else {
            Err(RoomError::UnknownConsumer(msg.consumer_id))
        }
    }
}

impl Handler<CloseTransport> for RoomActor {
    type Result = Result<(), RoomError>;
    fn handle(&mut self, msg: CloseTransport, ctx: &mut Self::Context) -> Self::Result {
        let (peer_id, transport_id) = (msg.peer_id, msg.transport_id);
        let peer = self.peer(peer_id)?;
        if !peer.transports.contains_key(&transport_id) {
            return Err(RoomError::UnknownTransport(transport_id));
        }
        let on_it = |id: uuid::Uuid| peer.origin.get(&id) == Some(&transport_id);
        let producers: Vec<ProducerId> = peer
            .producers
            .keys()
            .copied()
            .filter(|id| on_it((*id).into()))
            .collect();
        let consumers: Vec<ConsumerId> = peer
            .consumers
            .keys()
            .copied()
            .filter(|id| on_it((*id).into()))
            .collect();
        for id in consumers {
            self.close_consumer(peer_id, id);
        }
        for id in producers {
            self.close_producer(peer_id, id, ctx);
        }
        self.close_peer_data_on(peer_id, transport_id, ctx);
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            peer.transports.remove(&transport_id);
        }
        let _e = self.span.clone().entered();
        tracing::info!(peer = %peer_id, transport = %transport_id, "transport closed");
        Ok(())
    }
}

impl Handler<RestartIce> for RoomActor {
    type Result = ResponseFuture<Result<IceParameters, RoomError>>;
    fn handle(&mut self, msg: RestartIce, _ctx: &mut Self::Context) -> Self::Result {
        let transport = self.transport(msg.peer_id, msg.transport_id, None);
        Box::pin(async move {
            match transport? {
                PeerTransport::WebRtc(t) => t.restart_ice().await.map_err(RoomError::from_request),
                PeerTransport::Plain(_) => {
                    Err(RoomError::WrongTransportKind(msg.transport_id, "WebRTC"))
                }
            }
        })
    }
}

impl Handler<TransportStats> for RoomActor {
    type Result = ResponseFuture<Result<Value, RoomError>>;
    fn handle(&mut self, msg: TransportStats, _ctx: &mut Self::Context) -> Self::Result {
        let transport = self.transport(msg.peer_id, msg.transport_id, None);
        Box::pin(async move {
            let json = match transport? {
                PeerTransport::WebRtc(t) => t
                    .get_stats()
                    .await
                    .map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
                PeerTransport::Plain(t) => t
                    .get_stats()
                    .await
                    .map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
            };
            json.map_err(RoomError::mediasoup)
        })
    }
}

impl Handler<SetPreferredLayers> for RoomActor {
    type Result = ResponseFuture<Result<(), RoomError>>;
    fn handle(&mut self, msg: SetPreferredLayers, _ctx: &mut Self::Context) -> Self::Result {
        let consumer = self.peer(msg.peer_id).and_then(|p| {
            p.consumers
                .get(&msg.consumer_id)
                .cloned()
                .ok_or(RoomError::UnknownConsumer(msg.consumer_id))
        });
        Box::pin(async move {
            consumer?
                .set_preferred_layers(msg.layers)
                .await
                .map_err(RoomError::from_request)
        })
    }
}
