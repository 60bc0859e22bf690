//! Producers and consumers: produce, consume (through pipes when the
//! producer lives on another router), pause, resume, close and stats.

use std::sync::Arc;

use actix::prelude::*;
use mediasoup::prelude::*;
use tracing::Instrument;

use super::fabric::ShardCall;
use super::messages::{
    ActOnProducer, Consume, ConsumerInfo, ConsumerStats, Direction, Event, Produce, ProducerAction,
    ProducerStats, Toggle, ToggleConsumer,
};
use super::peers::{producer_info, Peer};
use super::{RoomActor, RoomError};
use crate::ids::{PeerId, RouterLoc};
use crate::metrics::{Resource, Tracked};

impl RoomActor {
    /// Releases the pipe hops a leaving peer's consumers used; returns its
    /// producers, which close with it.
    pub(super) fn release_peer_media(&mut self, peer: &Peer) -> Vec<ProducerId> {
        for (id, c) in &peer.consumers {
            self.release_consumer(c.producer_id(), &peer.loc, *id);
        }
        peer.producers.keys().copied().collect()
    }

    /// Whether `peer_id` still owns `producer_id`.
    fn owns_producer(&self, peer_id: PeerId, producer_id: ProducerId) -> bool {
        self.peers
            .get(&peer_id)
            .is_some_and(|p| p.producers.contains_key(&producer_id))
    }
}

/// Refuses a producer whose media codecs are not of its `kind` (an Opus
/// "video" would reach subscribers as a video consumer carrying audio).
fn codecs_match_kind(kind: MediaKind, rtp: &RtpParameters) -> Result<(), RoomError> {
    let wrong = rtp.codecs.iter().find(|c| {
        let audio = matches!(c, RtpCodecParameters::Audio { .. });
        audio != (kind == MediaKind::Audio)
    });
    match wrong {
        Some(c) => Err(RoomError::InvalidParameters(format!(
            "kind {kind:?} with codec {:?}",
            c.mime_type()
        ))),
        None => Ok(()),
    }
}

impl Handler<Produce> for RoomActor {
    type Result = ResponseActFuture<Self, Result<ProducerId, RoomError>>;

    fn handle(&mut self, msg: Produce, _ctx: &mut Self::Context) -> Self::Result {
        let max = self.env.config.limits.producers_per_peer;
        let checked = self
            .peer(msg.peer_id)
            .and_then(|p| RoomError::check_limit("producers_per_peer", p.producers.len(), max))
            .and_then(|()| codecs_match_kind(msg.kind, &msg.rtp_parameters))
            .and_then(|()| self.transport(msg.peer_id, msg.transport_id, Some(Direction::Send)))
            .and_then(|t| Ok((t, self.peer_lease(msg.peer_id)?)));
        let (transport, lease) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let node = Arc::clone(&self.env.counters);
        let mut options = ProducerOptions::new(msg.kind, msg.rtp_parameters);
        options.key_frame_request_delay = self.env.config.rtc.key_frame_request_delay_ms;
        let fut = async move {
            let producer = transport.produce(options).await.map_err(|e| match e {
                ProduceError::Request(e) => RoomError::from_request(e),
                other => RoomError::InvalidParameters(other.to_string()),
            })?;
            let tracked = Tracked::new(Resource::Producer, &[&node, &lease.worker_counters]);
            producer.on_close(move || drop(tracked)).detach();
            Ok::<_, RoomError>(producer)
        }
        .instrument(self.span.clone());
        let peer_id = msg.peer_id;
        let transport_id = msg.transport_id;
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let producer: Producer = res?;
            let peer = act
                .peers
                .get_mut(&peer_id)
                .ok_or(RoomError::UnknownPeer(peer_id))?;
            if !peer.transports.contains_key(&transport_id) {
                return Err(RoomError::UnknownTransport(transport_id));
            }
            let info = producer_info(peer_id, &producer);
            peer.origin.insert(producer.id().into(), transport_id);
            peer.producers.insert(producer.id(), producer);
            let _e = act.span.clone().entered();
            tracing::info!(peer = %peer_id, producer = %info.producer_id, kind = ?info.kind, "producer created");
            drop(_e);
            let id = info.producer_id;
            let loc = peer.loc.clone();
            let audio = info.kind == MediaKind::Audio;
            act.publish_producer(&info, &loc);
            act.broadcast(peer_id, Event::NewProducer(info), ctx);
            if audio {
                act.hear(id, ctx);
            }
            Ok(id)
        }))
    }
}

/// Internal: a consumer's producer went away.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ConsumerGone {
    peer_id: PeerId,
    consumer_id: ConsumerId,
    producer_id: ProducerId,
}

impl Handler<ConsumerGone> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: ConsumerGone, ctx: &mut Self::Context) {
        let removed = self.peers.get_mut(&msg.peer_id).and_then(|p| {
            p.origin.remove(&msg.consumer_id.into());
            p.consumers.remove(&msg.consumer_id).map(|_| p.loc.clone())
        });
        let Some(loc) = removed else {
            return;
        };
        self.release_consumer(msg.producer_id, &loc, msg.consumer_id);
        self.gc_routers();
        self.send_to(
            msg.peer_id,
            Event::ConsumerClosed {
                consumer_id: msg.consumer_id,
                producer_id: msg.producer_id,
            },
            ctx,
        );
        // The producer is still there: the consumer lost the pipe it came
        // through (a worker on the way died). Offer the producer again;
        // consuming it now builds a new path.
        let again = self
            .find_producer(msg.producer_id)
            .map(|(owner, p)| producer_info(owner, p))
            .or_else(|| {
                let (info, _) = self.remote_producers.get(&msg.producer_id)?;
                Some(info.clone())
            })
            .filter(|i| i.peer_id != msg.peer_id);
        if let Some(info) = again {
            let _e = self.span.clone().entered();
            tracing::info!(peer = %msg.peer_id, producer = %msg.producer_id, "pipe lost: offering the producer again");
            drop(_e);
            self.send_to(msg.peer_id, Event::NewProducer(info), ctx);
        }
    }
}

/// How often a consume of a producer announced from another node is
/// tried again when the far end does not know it yet, and after how long.
const REMOTE_CONSUME_RETRIES: u32 = 3;
const REMOTE_CONSUME_RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

impl Handler<Consume> for RoomActor {
    type Result = ResponseActFuture<Self, Result<ConsumerInfo, RoomError>>;

    fn handle(&mut self, msg: Consume, ctx: &mut Self::Context) -> Self::Result {
        self.consume_request(msg, 0, ctx)
    }
}

impl RoomActor {
    /// A consume request. A producer announced from another node may not
    /// be known yet where its new hop comes from (an announce travels
    /// through the home while the hop's source is asked directly): such a
    /// refusal is tried again, a few times, while the producer is still
    /// announced.
    fn consume_request(
        &mut self,
        msg: Consume,
        attempt: u32,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ConsumerInfo, RoomError>> {
        let max = self.env.config.limits.consumers_per_peer;
        if let Err(e) = self
            .peer(msg.peer_id)
            .and_then(|p| RoomError::check_limit("consumers_per_peer", p.consumers.len(), max))
        {
            return Box::pin(fut::ready(Err(e)));
        }
        let again = msg.clone();
        // A producer from another node whose new hop would cross nodes:
        // ask where to take it from first (its node may point elsewhere
        // when its fan-out is full).
        let first: ResponseActFuture<Self, Result<ConsumerInfo, RoomError>> =
            match self.remote_parent_for(&msg) {
                Some(start) => {
                    let resolve = self.resolve_source(msg.producer_id, start);
                    Box::pin(
                        resolve
                            .into_actor(self)
                            .then(move |via, act, ctx| act.consume(msg, via, ctx)),
                    )
                }
                None => self.consume(msg, None, ctx),
            };
        Box::pin(first.then(move |res, act, _ctx| {
            let retry = matches!(&res, Err(RoomError::UnknownProducer(id))
                if *id == again.producer_id && act.remote_producers.contains_key(id))
                && attempt < REMOTE_CONSUME_RETRIES;
            if !retry {
                return Box::pin(fut::ready(res))
                    as ResponseActFuture<Self, Result<ConsumerInfo, RoomError>>;
            }
            let _e = act.span.clone().entered();
            tracing::debug!(producer = %again.producer_id, attempt, "remote producer not known at its source yet: consuming again");
            drop(_e);
            Box::pin(
                tokio::time::sleep(REMOTE_CONSUME_RETRY_AFTER)
                    .into_actor(act)
                    .then(move |(), act, ctx| act.consume_request(again, attempt + 1, ctx)),
            )
        }))
    }
}

impl RoomActor {
    /// For a consume of a producer living on another node: the other
    /// node's router the new hop into the consumer's router would come
    /// from, if it would cross nodes (none when a hop is there already or
    /// one on this node can feed it).
    fn remote_parent_for(&self, msg: &Consume) -> Option<RouterLoc> {
        let (_, origin) = self.remote_producers.get(&msg.producer_id)?;
        let target = &self.peers.get(&msg.peer_id)?.loc;
        let fanout = self.env.config.placement.pipe_fanout.max(1) as usize;
        let parent = match self.pipes.get(&msg.producer_id) {
            Some(tree) if tree.hop(target).is_some() => return None,
            Some(tree) => tree.parent_for_new_hop(fanout, target).0,
            None => origin.clone(),
        };
        (parent.node != self.env.node).then_some(parent)
    }

    /// Consumes, through a hop from `via` when a new hop from another
    /// node is needed.
    fn consume(
        &mut self,
        msg: Consume,
        via: Option<RouterLoc>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ConsumerInfo, RoomError>> {
        let checked = (|| {
            let transport = self.transport(msg.peer_id, msg.transport_id, Some(Direction::Recv))?;
            let source = match self.find_producer(msg.producer_id) {
                Some((owner, _)) if owner != msg.peer_id => self.peer(owner)?.loc.clone(),
                Some(_) => return Err(RoomError::UnknownProducer(msg.producer_id)),
                None => match self.remote_producers.get(&msg.producer_id) {
                    Some((_, loc)) => loc.clone(),
                    None => return Err(RoomError::UnknownProducer(msg.producer_id)),
                },
            };
            let target = self.peer(msg.peer_id)?.loc.clone();
            let lease = self.peer_lease(msg.peer_id)?;
            Ok((transport, source, target, lease))
        })();
        let (transport, source, target, lease) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let producer_id = msg.producer_id;
        let pipe = if source == target {
            None
        } else {
            match self.pipe_for(producer_id, &source, &target, via, ctx) {
                Ok(p) => Some(p),
                Err(e) => return Box::pin(fut::ready(Err(e))),
            }
        };
        let pipe_id = pipe.as_ref().map(|(id, _)| *id);
        let node = Arc::clone(&self.env.counters);
        let me = ctx.address();
        let peer_id = msg.peer_id;
        let fut = async move {
            if let Some((_, pipe)) = pipe {
                pipe.await?;
            }
            if !lease
                .router
                .can_consume(&producer_id, &msg.rtp_capabilities)
            {
                return Err(RoomError::CannotConsume(producer_id));
            }
            let mut options = ConsumerOptions::new(producer_id, msg.rtp_capabilities);
            options.paused = true;
            let consumer = transport.consume(options).await.map_err(|e| match e {
                ConsumeError::ProducerNotFound(id) => RoomError::UnknownProducer(id),
                ConsumeError::Request(e) => RoomError::from_request(e),
                other => RoomError::InvalidParameters(other.to_string()),
            })?;
            let tracked = Tracked::new(Resource::Consumer, &[&node, &lease.worker_counters]);
            consumer.on_close(move || drop(tracked)).detach();
            let consumer_id = consumer.id();
            consumer
                .on_producer_close(move || {
                    me.do_send(ConsumerGone {
                        peer_id,
                        consumer_id,
                        producer_id,
                    })
                })
                .detach();
            Ok::<_, RoomError>(consumer)
        }
        .instrument(self.span.clone());
        let transport_id = msg.transport_id;
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            // Re-validate everything the awaits may have invalidated; on any
            // failure the consumer is dropped (closed) here.
            let valid = match &res {
                Ok(c) if c.closed() => Err(RoomError::UnknownProducer(c.producer_id())),
                Ok(_) => match act.peers.get(&peer_id) {
                    None => Err(RoomError::UnknownPeer(peer_id)),
                    Some(p) if !p.transports.contains_key(&transport_id) => {
                        Err(RoomError::UnknownTransport(transport_id))
                    }
                    Some(p) if p.loc != target => Err(RoomError::UnknownPeer(peer_id)),
                    Some(_) => Ok(()),
                },
                Err(e) => Err(e.clone()),
            };
            let registered = valid
                .as_ref()
                .ok()
                .and_then(|_| res.as_ref().ok())
                .map(|c| c.id());
            if let Some(pipe_id) = pipe_id {
                if !act.finish_pipe(producer_id, &target, pipe_id, registered) && valid.is_ok() {
                    // The pipe was dropped meanwhile: its producer closed.
                    return Err(RoomError::UnknownProducer(producer_id));
                }
            }
            valid?;
            let consumer = res?;
            let info = ConsumerInfo {
                id: consumer.id(),
                producer_id: consumer.producer_id(),
                kind: consumer.kind(),
                rtp_parameters: consumer.rtp_parameters().clone(),
                producer_paused: consumer.producer_paused(),
            };
            if let Some(peer) = act.peers.get_mut(&peer_id) {
                peer.origin.insert(consumer.id().into(), transport_id);
                peer.consumers.insert(consumer.id(), consumer);
            }
            Ok(info)
        }))
    }
}

impl Handler<ToggleConsumer> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ToggleConsumer, _ctx: &mut Self::Context) -> Self::Result {
        let consumer = match self.peer(msg.peer_id).and_then(|p| {
            p.consumers
                .get(&msg.consumer_id)
                .cloned()
                .ok_or(RoomError::UnknownConsumer(msg.consumer_id))
        }) {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let fut = async move {
            match msg.action {
                Toggle::Pause => consumer.pause().await,
                Toggle::Resume => consumer.resume().await,
            }
            .map_err(RoomError::mediasoup)
        };
        Box::pin(fut.into_actor(self))
    }
}

impl Handler<ActOnProducer> for RoomActor {
    type Result = ResponseActFuture<Self, Result<(), RoomError>>;

    fn handle(&mut self, msg: ActOnProducer, ctx: &mut Self::Context) -> Self::Result {
        let (peer_id, producer_id) = (msg.peer_id, msg.producer_id);
        let producer = match self.peer(peer_id).and_then(|p| {
            p.producers
                .get(&producer_id)
                .cloned()
                .ok_or(RoomError::UnknownProducer(producer_id))
        }) {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let pause = match msg.action {
            ProducerAction::Close => {
                drop(producer);
                self.close_producer(peer_id, producer_id, ctx);
                return Box::pin(fut::ready(Ok(())));
            }
            ProducerAction::Pause => true,
            ProducerAction::Resume => false,
        };
        let fut = async move {
            if pause {
                producer.pause().await
            } else {
                producer.resume().await
            }
            .map_err(RoomError::mediasoup)
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            res?;
            // The producer may have closed (or its peer left) during the
            // await: then its `producerClosed` went out already, and no
            // pause or resume may follow it.
            if !act.owns_producer(peer_id, producer_id) {
                return Err(RoomError::UnknownProducer(producer_id));
            }
            let event = if pause {
                Event::ProducerPaused { producer_id }
            } else {
                Event::ProducerResumed { producer_id }
            };
            act.publish(ShardCall::ProducerPaused {
                producer_id,
                paused: pause,
            });
            act.broadcast(peer_id, event, ctx);
            Ok(())
        }))
    }
}

impl RoomActor {
    /// Closes one of a peer's producers: its pipes close with it (and
    /// their consumers with them); the others are told.
    pub(super) fn close_producer(
        &mut self,
        peer_id: PeerId,
        producer_id: ProducerId,
        ctx: &mut Context<Self>,
    ) {
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            peer.producers.remove(&producer_id);
            peer.origin.remove(&producer_id.into());
        }
        self.unhear(producer_id);
        self.drop_pipes_of(producer_id);
        self.gc_routers();
        let _e = self.span.clone().entered();
        tracing::info!(peer = %peer_id, producer = %producer_id, "producer closed");
        drop(_e);
        self.publish(ShardCall::ProducerGone { producer_id });
        self.broadcast(peer_id, Event::ProducerClosed { producer_id }, ctx);
    }

    /// Closes one of a peer's consumers and releases the pipe it used.
    pub(super) fn close_consumer(&mut self, peer_id: PeerId, consumer_id: ConsumerId) -> bool {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return false;
        };
        let Some(consumer) = peer.consumers.remove(&consumer_id) else {
            return false;
        };
        peer.origin.remove(&consumer_id.into());
        let loc = peer.loc.clone();
        let producer_id = consumer.producer_id();
        drop(consumer);
        self.release_consumer(producer_id, &loc, consumer_id);
        self.gc_routers();
        true
    }
}

impl Handler<ProducerStats> for RoomActor {
    type Result = ResponseFuture<Result<Vec<mediasoup::producer::ProducerStat>, RoomError>>;
    fn handle(&mut self, msg: ProducerStats, _ctx: &mut Self::Context) -> Self::Result {
        let producer = self.peer(msg.peer_id).and_then(|p| {
            p.producers
                .get(&msg.producer_id)
                .cloned()
                .ok_or(RoomError::UnknownProducer(msg.producer_id))
        });
        Box::pin(async move { producer?.get_stats().await.map_err(RoomError::mediasoup) })
    }
}

impl Handler<ConsumerStats> for RoomActor {
    type Result =
        ResponseFuture<Result<Vec<mediasoup::consumer::ConsumerRtpStreamStat>, RoomError>>;
    fn handle(&mut self, msg: ConsumerStats, _ctx: &mut Self::Context) -> Self::Result {
        let consumer = self.peer(msg.peer_id).and_then(|p| {
            p.consumers
                .get(&msg.consumer_id)
                .cloned()
                .ok_or(RoomError::UnknownConsumer(msg.consumer_id))
        });
        Box::pin(async move { consumer?.get_stats().await.map_err(RoomError::mediasoup) })
    }
}
