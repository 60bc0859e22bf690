//! The room's active speaker (with `rooms.active_speaker`): one mediasoup
//! `ActiveSpeakerObserver` per room and node, on one of the room's
//! routers, hearing every audio producer of the room (those of other
//! workers and nodes piped into its router, each pipe held while the
//! producer is heard). Its dominant speaker goes to the node's
//! participants as `activeSpeaker`.

use std::collections::HashMap;
use std::str::FromStr;

use actix::prelude::*;
use mediasoup::prelude::*;
use tracing::Instrument;

use super::messages::Event;
use super::RoomActor;
use crate::ids::{RouterLoc, WorkerSlot};

/// The observer and what it hears.
#[derive(Default)]
pub(crate) struct SpeakerState {
    /// The observer, once made, and its router.
    observer: Option<(RouterLoc, ActiveSpeakerObserver)>,
    /// Being made on this router.
    starting: Option<RouterLoc>,
    /// Audio producers heard (or to be heard once the observer is up),
    /// with the id holding the pipe that brings each, when piped.
    heard: HashMap<ProducerId, Option<ConsumerId>>,
    /// The last dominant speaker, told to peers that join later.
    pub current: Option<(crate::ids::PeerId, ProducerId)>,
}

impl SpeakerState {
    /// The router the observer uses (kept while it lives).
    pub fn loc(&self) -> Option<&RouterLoc> {
        self.observer
            .as_ref()
            .map(|(l, _)| l)
            .or(self.starting.as_ref())
    }
}

/// Internal: the observer's dominant speaker changed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Dominant(ProducerId);

/// Internal: the observer was made (or failed: `None`).
#[derive(Message)]
#[rtype(result = "()")]
struct ObserverReady(RouterLoc, Option<ActiveSpeakerObserver>);

impl RoomActor {
    /// Starts hearing an audio producer of the room.
    pub(super) fn hear(&mut self, producer_id: ProducerId, ctx: &mut Context<Self>) {
        if !self.env.config.rooms.active_speaker || self.speaker.heard.contains_key(&producer_id) {
            return;
        }
        self.speaker.heard.insert(producer_id, None);
        if self.speaker.observer.is_some() {
            self.observe(producer_id, ctx);
            return;
        }
        if self.speaker.starting.is_some() {
            return;
        }
        let Some(loc) = self.producer_home(producer_id) else {
            return;
        };
        let Ok(lease) = self.lease(&loc) else {
            return;
        };
        self.speaker.starting = Some(loc.clone());
        let me = ctx.address();
        let fut = async move {
            let observer = lease
                .router
                .create_active_speaker_observer(ActiveSpeakerObserverOptions::default())
                .await;
            match observer {
                Ok(o) => {
                    let me2 = me.clone();
                    o.on_dominant_speaker(move |d| me2.do_send(Dominant(d.producer.id())))
                        .detach();
                    me.do_send(ObserverReady(loc, Some(o)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "active speaker observer not made");
                    me.do_send(ObserverReady(loc, None));
                }
            }
        }
        .instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self));
    }

    /// Stops hearing a producer (it closed); its pipe is released.
    pub(super) fn unhear(&mut self, producer_id: ProducerId) {
        if self.speaker.current.is_some_and(|(_, p)| p == producer_id) {
            self.speaker.current = None;
        }
        let Some(hold) = self.speaker.heard.remove(&producer_id) else {
            return;
        };
        if let (Some(holder), Some(loc)) = (hold, self.speaker.loc().cloned()) {
            self.release_consumer(producer_id, &loc, holder);
        }
    }

    /// The local router a producer lives on, if it is a local peer's.
    fn producer_home(&self, producer_id: ProducerId) -> Option<RouterLoc> {
        let (owner, _) = self.find_producer(producer_id)?;
        self.peers.get(&owner).map(|p| p.loc.clone())
    }

    /// Adds a heard producer to the observer, piping it in first when it
    /// lives on another router.
    fn observe(&mut self, producer_id: ProducerId, ctx: &mut Context<Self>) {
        let Some((loc, observer)) = self.speaker.observer.clone() else {
            return;
        };
        let source = self.producer_home(producer_id).or_else(|| {
            self.remote_producers
                .get(&producer_id)
                .map(|(_, l)| l.clone())
        });
        let Some(source) = source else {
            return;
        };
        let add = async move {
            if let Err(e) = observer
                .add_producer(RtpObserverAddProducerOptions::new(producer_id))
                .await
            {
                tracing::debug!(error = %e, producer = %producer_id, "not heard");
            }
        };
        if source == loc {
            ctx.spawn(add.instrument(self.span.clone()).into_actor(self));
            return;
        }
        let Ok((hop, pipe)) = self.pipe_for(producer_id, &source, &loc, None, ctx) else {
            return;
        };
        let fut = async move { pipe.await.is_ok() }.instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self).map(move |piped, act, ctx| {
            let holder = ConsumerId::from_str(&uuid::Uuid::new_v4().to_string()).ok();
            let wanted = piped && act.speaker.heard.contains_key(&producer_id);
            let holder = holder.filter(|_| wanted);
            if !act.finish_pipe(producer_id, &loc, hop, holder) || holder.is_none() {
                return;
            }
            act.speaker.heard.insert(producer_id, holder);
            ctx.spawn(add.into_actor(act));
        }));
    }

    /// The observer's worker died: it is made again (elsewhere) for the
    /// producers still heard.
    pub(super) fn speaker_worker_lost(&mut self, slot: WorkerSlot, ctx: &mut Context<Self>) {
        if self
            .speaker
            .loc()
            .is_none_or(|l| l.slot != slot || l.node != self.env.node)
        {
            return;
        }
        let heard: Vec<ProducerId> = self.speaker.heard.keys().copied().collect();
        self.speaker = SpeakerState::default();
        for id in heard {
            self.hear(id, ctx);
        }
    }
}

impl RoomActor {
    /// Tells a peer that just joined who speaks now, if anyone does.
    pub(super) fn tell_current_speaker(&mut self, to: crate::ids::PeerId, ctx: &mut Context<Self>) {
        if let Some((peer_id, producer_id)) = self.speaker.current {
            if peer_id != to {
                self.send_to(
                    to,
                    Event::ActiveSpeaker {
                        peer_id,
                        producer_id,
                    },
                    ctx,
                );
            }
        }
    }
}

impl Handler<ObserverReady> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: ObserverReady, ctx: &mut Self::Context) {
        if self.speaker.starting.as_ref() != Some(&msg.0) {
            return;
        }
        self.speaker.starting = None;
        let Some(observer) = msg.1 else {
            self.speaker.heard.clear();
            return;
        };
        self.speaker.observer = Some((msg.0, observer));
        let heard: Vec<ProducerId> = self.speaker.heard.keys().copied().collect();
        for id in heard {
            self.observe(id, ctx);
        }
    }
}

impl Handler<Dominant> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: Dominant, ctx: &mut Self::Context) {
        let producer_id = msg.0;
        let owner = self.find_producer(producer_id).map(|(o, _)| o).or_else(|| {
            self.remote_producers
                .get(&producer_id)
                .map(|(i, _)| i.peer_id)
        });
        if let Some(peer_id) = owner {
            self.speaker.current = Some((peer_id, producer_id));
            self.broadcast(
                peer_id,
                Event::ActiveSpeaker {
                    peer_id,
                    producer_id,
                },
                ctx,
            );
        }
    }
}
