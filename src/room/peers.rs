//! Participants and their transports (WebRTC for browsers, plain RTP for
//! servers and load generators).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::Protocol;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::messages::{
    ConnectPlainTransport, ConnectTransport, CreatePlainTransport, CreateTransport, Direction,
    Event, PeerInfo, PlainTransportInfo, ProducerInfo, WebRtcTransportInfo,
};
use super::routers::{rtc_listen_info, webrtc_listen_infos};
use super::{RoomActor, RoomError};
use crate::ids::{PeerId, RouterLoc};
use crate::metrics::{Resource, Tracked};

/// A peer's transport: WebRTC (browsers) or plain RTP (servers, loadgen).
#[derive(Debug, Clone)]
pub(super) enum PeerTransport {
    WebRtc(WebRtcTransport),
    Plain(PlainTransport),
}

impl PeerTransport {
    fn id(&self) -> TransportId {
        match self {
            PeerTransport::WebRtc(t) => t.id(),
            PeerTransport::Plain(t) => t.id(),
        }
    }

    pub(super) async fn produce(&self, options: ProducerOptions) -> Result<Producer, ProduceError> {
        match self {
            PeerTransport::WebRtc(t) => t.produce(options).await,
            PeerTransport::Plain(t) => t.produce(options).await,
        }
    }

    pub(super) async fn consume(&self, options: ConsumerOptions) -> Result<Consumer, ConsumeError> {
        match self {
            PeerTransport::WebRtc(t) => t.consume(options).await,
            PeerTransport::Plain(t) => t.consume(options).await,
        }
    }
}

/// One participant: where its transports live, and what it owns.
#[derive(Debug)]
pub(super) struct Peer {
    pub info: PeerInfo,
    /// The router its transports live on.
    pub loc: RouterLoc,
    pub events: mpsc::Sender<Event>,
    pub transports: HashMap<TransportId, (Direction, PeerTransport)>,
    pub producers: HashMap<ProducerId, Producer>,
    pub consumers: HashMap<ConsumerId, Consumer>,
    /// DataChannels it sends.
    pub data_producers: HashMap<DataProducerId, DataProducer>,
    /// DataChannels it receives.
    pub data_consumers: HashMap<DataConsumerId, DataConsumer>,
    /// The transport each producer, consumer, data producer and data
    /// consumer was made on (by the entity's id), for `closeTransport`.
    pub origin: HashMap<uuid::Uuid, TransportId>,
    /// Told to move elsewhere (drain); it stays until it leaves.
    pub moving: bool,
    _tracked: Tracked,
}

impl Peer {
    pub fn new(
        info: PeerInfo,
        loc: RouterLoc,
        events: mpsc::Sender<Event>,
        tracked: Tracked,
    ) -> Self {
        Self {
            info,
            loc,
            events,
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            data_producers: HashMap::new(),
            data_consumers: HashMap::new(),
            origin: HashMap::new(),
            moving: false,
            _tracked: tracked,
        }
    }
}

/// How others see a producer.
pub(super) fn producer_info(owner: PeerId, producer: &Producer) -> ProducerInfo {
    ProducerInfo {
        producer_id: producer.id(),
        peer_id: owner,
        kind: producer.kind(),
        paused: producer.paused(),
    }
}

impl RoomActor {
    pub(super) fn peer(&self, peer_id: PeerId) -> Result<&Peer, RoomError> {
        self.peers
            .get(&peer_id)
            .ok_or(RoomError::UnknownPeer(peer_id))
    }

    /// One of a peer's transports, checked for direction when `direction`
    /// is given.
    pub(super) fn transport(
        &self,
        peer_id: PeerId,
        transport_id: TransportId,
        direction: Option<Direction>,
    ) -> Result<PeerTransport, RoomError> {
        let (dir, t) = self
            .peer(peer_id)?
            .transports
            .get(&transport_id)
            .ok_or(RoomError::UnknownTransport(transport_id))?;
        match direction {
            Some(wanted) if wanted != *dir => Err(RoomError::WrongDirection(transport_id, *dir)),
            _ => Ok(t.clone()),
        }
    }

    /// A producer of the room, with its owner.
    pub(super) fn find_producer(&self, producer_id: ProducerId) -> Option<(PeerId, &Producer)> {
        self.peers.iter().find_map(|(pid, p)| {
            p.producers
                .get(&producer_id)
                .map(|producer| (*pid, producer))
        })
    }

    /// Every producer of the room (announced ones from other nodes
    /// included), as a joining peer learns them.
    pub(super) fn producer_infos(&self) -> Vec<ProducerInfo> {
        self.peers
            .values()
            .flat_map(|p| {
                p.producers
                    .values()
                    .map(|pr| producer_info(p.info.peer_id, pr))
            })
            .chain(self.remote_producers.values().map(|(i, _)| i.clone()))
            .collect()
    }

    /// Creates a transport for a peer on its router (`create` gets the
    /// router), counts it, and files it under the peer as `finish` wraps
    /// it; a transport made for a peer that left meanwhile is dropped,
    /// which closes it.
    fn create_peer_transport<T, R>(
        &self,
        peer_id: PeerId,
        direction: Direction,
        create: impl FnOnce(Router) -> LocalBoxFuture<'static, Result<T, mediasoup::worker::RequestError>>
            + 'static,
        finish: impl FnOnce(T) -> (R, PeerTransport) + 'static,
    ) -> ResponseActFuture<Self, Result<R, RoomError>>
    where
        T: Transport + 'static,
        R: 'static,
    {
        let max = self.env.config.limits.transports_per_peer;
        let lease = match self.peer(peer_id).and_then(|p| {
            RoomError::check_limit("transports_per_peer", p.transports.len(), max)?;
            self.peer_lease(peer_id)
        }) {
            Ok(l) => l,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let node_counters = Arc::clone(&self.env.counters);
        let fut = async move {
            let transport = create(lease.router.clone())
                .await
                .map_err(RoomError::transport_creation)?;
            let tracked = Tracked::new(
                Resource::Transport,
                &[&node_counters, &lease.worker_counters],
            );
            transport.on_close(Box::new(move || drop(tracked))).detach();
            Ok::<_, RoomError>(transport)
        }
        .instrument(self.span.clone());
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            let transport = res?;
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            let (reply, transport) = finish(transport);
            peer.transports
                .insert(transport.id(), (direction, transport));
            Ok(reply)
        }))
    }
}

impl Handler<CreateTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<WebRtcTransportInfo, RoomError>>;

    fn handle(&mut self, msg: CreateTransport, _ctx: &mut Self::Context) -> Self::Result {
        let mut options = WebRtcTransportOptions::new(webrtc_listen_infos(&self.env.config));
        options.initial_available_outgoing_bitrate =
            u64::from(self.env.config.rtc.initial_outgoing_bitrate);
        options.enable_sctp = msg.enable_sctp;
        self.create_peer_transport(
            msg.peer_id,
            msg.direction,
            move |router| {
                async move { router.create_webrtc_transport(options).await }.boxed_local()
            },
            |transport: WebRtcTransport| {
                let info = WebRtcTransportInfo {
                    id: transport.id(),
                    ice_parameters: transport.ice_parameters().clone(),
                    ice_candidates: transport.ice_candidates().clone(),
                    dtls_parameters: transport.dtls_parameters(),
                    sctp_parameters: transport.sctp_parameters(),
                };
                (info, PeerTransport::WebRtc(transport))
            },
        )
    }
}

impl Handler<ConnectTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ConnectTransport, _ctx: &mut Self::Context) -> Self::Result {
        let transport = match self.transport(msg.peer_id, msg.transport_id, None) {
            Ok(PeerTransport::WebRtc(t)) => t,
            Ok(PeerTransport::Plain(_)) => {
                let e = RoomError::WrongTransportKind(msg.transport_id, "WebRTC");
                return Box::pin(fut::ready(Err(e)));
            }
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let fut = async move {
            transport
                .connect(WebRtcTransportRemoteParameters {
                    dtls_parameters: msg.dtls_parameters,
                })
                .await
                .map_err(RoomError::from_request)
        }
        .instrument(self.span.clone());
        Box::pin(fut.into_actor(self))
    }
}

impl Handler<CreatePlainTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<PlainTransportInfo, RoomError>>;

    fn handle(&mut self, msg: CreatePlainTransport, _ctx: &mut Self::Context) -> Self::Result {
        let mut options =
            PlainTransportOptions::new(rtc_listen_info(&self.env.config.rtc, Protocol::Udp));
        options.rtcp_mux = true;
        options.comedia = msg.comedia;
        self.create_peer_transport(
            msg.peer_id,
            msg.direction,
            move |router| async move { router.create_plain_transport(options).await }.boxed_local(),
            |transport: PlainTransport| {
                let tuple = transport.tuple();
                let info = PlainTransportInfo {
                    id: transport.id(),
                    ip: tuple.local_address().clone(),
                    port: tuple.local_port(),
                };
                (info, PeerTransport::Plain(transport))
            },
        )
    }
}

impl Handler<ConnectPlainTransport> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ConnectPlainTransport, _ctx: &mut Self::Context) -> Self::Result {
        let transport = match self.transport(msg.peer_id, msg.transport_id, None) {
            Ok(PeerTransport::Plain(t)) => t,
            Ok(PeerTransport::WebRtc(_)) => {
                let e = RoomError::WrongTransportKind(msg.transport_id, "plain");
                return Box::pin(fut::ready(Err(e)));
            }
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let ip = msg.remote.ip();
        let allowed = &self.env.config.rtc.plain_allowed_networks;
        if crate::net::never_a_destination(ip) || !allowed.iter().any(|n| n.contains(ip)) {
            let e = RoomError::Forbidden(format!(
                "{ip} is not in rtc.plain_allowed_networks (or never a destination)"
            ));
            return Box::pin(fut::ready(Err(e)));
        }
        let fut = async move {
            transport
                .connect(PlainTransportRemoteParameters {
                    ip: Some(msg.remote.ip()),
                    port: Some(msg.remote.port()),
                    rtcp_port: None,
                    srtp_parameters: None,
                })
                .await
                .map_err(RoomError::from_request)
        }
        .instrument(self.span.clone());
        Box::pin(fut.into_actor(self))
    }
}
