//! [`SessionsActor`]: both ends of spilled sessions on one node.
//!
//! - As the *signalling* node it keeps, for each of its WebSocket sessions
//!   whose media another node carries, the channel its events go to; when
//!   that node goes down the session gets a `reconnect` event and ends.
//! - As the *media* node it keeps the participants it admitted for other
//!   nodes' sessions, runs their requests, and forwards their events; when
//!   the signalling node goes down (or the session closes) the participant
//!   leaves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use mafalda_actors::{MembershipEvent, Node, NodeId};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::wire::{
    SessionClosed, SessionEnded, SessionEvent, SessionId, SessionRequest, SpillAccepted,
    SpillError, SpillJoin, SESSIONS_ACTOR,
};
use crate::api::requests::on_participant;
use crate::room::wire::AsJson;
use crate::room::{Evacuate, RoomEnv};
use crate::sfu::{Participant, Sfu};
use crate::signalling::{
    event_message, parse_request, validate_join, ErrorCode, Event, JoinReply, JoinRequest, Request,
    SignalError,
};

/// Admissions a node runs at once for other nodes; more are refused
/// ([`SpillError::Busy`]) so that a herd of joiners moves on.
const MAX_PENDING_ADMISSIONS: usize = 8;

/// Session ids closed before their admission finished, remembered so
/// that the late participant is dropped (bounded; oldest forgotten).
const MAX_CLOSED_EARLY: usize = 1024;

/// What the signalling end of a spilled session receives: event frames,
/// in order; the channel ends when the session is over.
pub type EventFrames = mpsc::Receiver<String>;

/// A session of this node whose media is on `host`.
struct Origin {
    host: NodeId,
    events: mpsc::Sender<String>,
    /// Told to move elsewhere (this node drains).
    moving: bool,
}

/// A participant this node hosts for another node's session.
struct Hosted {
    participant: Participant,
    forwarder: SpawnHandle,
}

/// Both ends of spilled sessions on this node.
pub struct SessionsActor {
    env: Arc<RoomEnv>,
    sfu: Sfu,
    fabric: Node,
    next_id: SessionId,
    origins: HashMap<SessionId, Origin>,
    hosted: HashMap<(NodeId, SessionId), Hosted>,
    pending: usize,
    closed_early: HashSet<(NodeId, SessionId)>,
    span: tracing::Span,
}

impl std::fmt::Debug for SessionsActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionsActor")
            .field("origins", &self.origins.len())
            .field("hosted", &self.hosted.len())
            .finish_non_exhaustive()
    }
}

impl SessionsActor {
    /// The sessions actor of a node on `fabric`.
    pub fn new(env: Arc<RoomEnv>, sfu: Sfu, fabric: Node) -> Self {
        let span = tracing::info_span!("sessions", node = %env.node, room = tracing::field::Empty);
        Self {
            env,
            sfu,
            fabric,
            next_id: 0,
            origins: HashMap::new(),
            hosted: HashMap::new(),
            pending: 0,
            closed_early: HashSet::new(),
            span,
        }
    }

    /// Registers every message it serves on the fabric, and subscribes it
    /// to membership.
    pub fn register(fabric: &Node, addr: &Addr<Self>) -> Result<(), mafalda_actors::RegisterError> {
        fabric.register_actor::<Self, SpillJoin>(SESSIONS_ACTOR, addr)?;
        fabric.register_actor::<Self, SessionRequest>(SESSIONS_ACTOR, addr)?;
        fabric.register_actor::<Self, SessionEvent>(SESSIONS_ACTOR, addr)?;
        fabric.register_actor::<Self, SessionEnded>(SESSIONS_ACTOR, addr)?;
        fabric.register_actor::<Self, SessionClosed>(SESSIONS_ACTOR, addr)?;
        fabric.subscribe(addr.clone().recipient());
        Ok(())
    }

    /// Ends a session of this node whose media is elsewhere: forgets it
    /// (its event channel ends, which closes the client's socket) and tells
    /// the media node, which removes the participant.
    fn close_origin(&mut self, id: SessionId) {
        if let Some(origin) = self.origins.remove(&id) {
            if let Ok(r) = self
                .fabric
                .actor_ref::<SessionClosed>(&origin.host, SESSIONS_ACTOR)
            {
                let _ = r.tell(SessionClosed {
                    origin: self.env.node.clone(),
                    session: id,
                });
            }
        }
    }

    /// Ends a hosted participant (it leaves its room).
    fn drop_hosted(&mut self, key: &(NodeId, SessionId), ctx: &mut Context<Self>) {
        if let Some(h) = self.hosted.remove(key) {
            ctx.cancel_future(h.forwarder);
            h.participant.leave();
        }
    }

    /// Admission: whether this node takes one more participant from another
    /// node now, from its exact counts.
    fn admit(&self) -> Result<(), SpillError> {
        if self.env.draining() {
            return Err(SpillError::Draining);
        }
        let headroom = self.env.workers.headroom(&self.env.config.placement);
        if headroom.full {
            return Err(SpillError::Full {
                score: headroom.score,
            });
        }
        if self.pending >= MAX_PENDING_ADMISSIONS {
            return Err(SpillError::Busy);
        }
        Ok(())
    }
}

impl Actor for SessionsActor {
    type Context = Context<Self>;
}

/// Opens the signalling end of a session whose media `host` carries;
/// answers its id and the channel its events arrive on.
#[derive(Debug, Message)]
#[rtype(result = "(SessionId, EventFrames)")]
pub struct OpenOrigin {
    /// The media node.
    pub host: NodeId,
    /// Frames buffered for the client before it is considered too slow.
    pub capacity: usize,
}

impl Handler<OpenOrigin> for SessionsActor {
    type Result = MessageResult<OpenOrigin>;
    fn handle(&mut self, msg: OpenOrigin, _ctx: &mut Self::Context) -> Self::Result {
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::channel(msg.capacity.max(1));
        self.origins.insert(
            id,
            Origin {
                host: msg.host,
                events: tx,
                moving: false,
            },
        );
        MessageResult((id, rx))
    }
}

/// The signalling end of a session is over (its socket closed, or its
/// admission failed): forgets it and tells the media node.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseOrigin(pub SessionId);

impl Handler<CloseOrigin> for SessionsActor {
    type Result = ();
    fn handle(&mut self, msg: CloseOrigin, _ctx: &mut Self::Context) {
        self.close_origin(msg.0);
    }
}

impl Handler<SpillJoin> for SessionsActor {
    type Result = ResponseActFuture<Self, Result<SpillAccepted, SpillError>>;

    fn handle(&mut self, msg: SpillJoin, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.admit() {
            tracing::info!(parent: &self.span, origin = %msg.origin, reason = %e, "spill refused");
            self.env.tallies.spill_admission(e.outcome());
            return Box::pin(fut::ready(Err(e)));
        }
        self.pending += 1;
        let key = (msg.origin.clone(), msg.session);
        let sfu = self.sfu.clone();
        let limits = self.env.config.signalling.clone();
        let join = JoinRequest {
            room: msg.room,
            display_name: msg.display_name,
            protocol_version: None,
            // The origin verified the client's token.
            token: None,
        };
        let span = tracing::info_span!(parent: &self.span, "spill_join", room = %join.room, origin = %msg.origin);
        let fut = async move {
            validate_join(
                &join,
                limits.max_room_name_chars,
                limits.max_display_name_chars,
            )?;
            let room = sfu.room(join.room).await.map_err(|e| e.to_signal())?;
            room.join(join.display_name)
                .await
                .map_err(|e| e.to_signal())
        }
        .instrument(span.clone());
        Box::pin(fut.into_actor(self).map(move |joined, act, ctx| {
            act.pending -= 1;
            let admitted = act.admitted(joined, key, span, ctx);
            act.env.tallies.spill_admission(match &admitted {
                Ok(_) => "admitted",
                Err(e) => e.outcome(),
            });
            admitted
        }))
    }
}

impl SessionsActor {
    /// An admitted participant's join is done: it is hosted, its events
    /// forwarded to the signalling node, unless the join failed or the
    /// session closed meanwhile.
    fn admitted(
        &mut self,
        joined: Result<Participant, SignalError>,
        key: (NodeId, SessionId),
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> Result<SpillAccepted, SpillError> {
        let participant = joined.map_err(|e| SpillError::Join(AsJson::new(&e)))?;
        if self.closed_early.remove(&key) {
            // The session closed while it was being admitted.
            participant.leave();
            return Err(SpillError::Join(AsJson::new(&SignalError::new(
                ErrorCode::Internal,
                "the session closed during admission",
            ))));
        }
        let Some(events) = participant.take_events() else {
            participant.leave();
            return Err(SpillError::Join(AsJson::new(&SignalError::new(
                ErrorCode::Internal,
                "the participant's events are taken",
            ))));
        };
        let reply =
            serde_json::to_string(&JoinReply::from(participant.join_info())).unwrap_or_default();
        let forwarding = forward_events(self.fabric.clone(), key.clone(), events)
            .instrument(span.clone())
            .into_actor(self)
            .map(|key, act, _ctx| {
                // The room dropped the participant: the session ends.
                if let Some(h) = act.hosted.remove(&key) {
                    h.participant.leave();
                }
            });
        let forwarder = ctx.spawn(forwarding);
        let _e = span.enter();
        tracing::info!(peer = %participant.id(), "admitted a participant spilled from another node");
        self.hosted.insert(
            key,
            Hosted {
                participant,
                forwarder,
            },
        );
        Ok(SpillAccepted { join: reply })
    }
}

/// Forwards a hosted participant's events to its signalling node, in
/// order, until the room drops it; then tells that node the session ended.
async fn forward_events(
    fabric: Node,
    key: (NodeId, SessionId),
    mut events: mpsc::Receiver<crate::room::Event>,
) -> (NodeId, SessionId) {
    let (origin, session) = key.clone();
    let events_ref = fabric.actor_ref::<SessionEvent>(&origin, SESSIONS_ACTOR);
    while let Some(event) = events.recv().await {
        let frame = event_message(&Event::from(event));
        if let Ok(r) = &events_ref {
            if r.tell(SessionEvent {
                session,
                event: frame,
            })
            .is_err()
            {
                break;
            }
        }
    }
    if let Ok(r) = fabric.actor_ref::<SessionEnded>(&origin, SESSIONS_ACTOR) {
        let _ = r.tell(SessionEnded { session });
    }
    key
}

impl Handler<SessionRequest> for SessionsActor {
    type Result = ResponseFuture<Result<String, AsJson<SignalError>>>;

    fn handle(&mut self, msg: SessionRequest, ctx: &mut Self::Context) -> Self::Result {
        let key = (msg.origin, msg.session);
        let Some(participant) = self.hosted.get(&key).map(|h| h.participant.clone()) else {
            let e = SignalError::new(ErrorCode::NotJoined, "no such spilled session here");
            return Box::pin(async move { Err(AsJson::new(&e)) });
        };
        let request = match parse_request(&msg.request) {
            Ok((_, request)) => request,
            Err(f) => return Box::pin(async move { Err(AsJson::new(&f.error)) }),
        };
        if matches!(request, Request::Leave) {
            self.drop_hosted(&key, ctx);
            return Box::pin(async { Ok("{}".to_owned()) });
        }
        Box::pin(async move {
            let value = on_participant(&participant, request)
                .await
                .map_err(|e| AsJson::new(&e))?;
            Ok(value.to_string())
        })
    }
}

impl Handler<SessionEvent> for SessionsActor {
    type Result = ();
    fn handle(&mut self, msg: SessionEvent, _ctx: &mut Self::Context) {
        let Some(origin) = self.origins.get(&msg.session) else {
            return;
        };
        if origin.events.try_send(msg.event).is_err() {
            // Too slow (or gone): the session ends, which closes the socket,
            // and its participant on the media node goes too.
            tracing::warn!(parent: &self.span, session = msg.session, "spilled session's event queue full: ending it");
            self.close_origin(msg.session);
        }
    }
}

impl Handler<SessionEnded> for SessionsActor {
    type Result = ();
    fn handle(&mut self, msg: SessionEnded, _ctx: &mut Self::Context) {
        // Dropping the sender ends the session's event stream.
        self.origins.remove(&msg.session);
    }
}

impl Handler<SessionClosed> for SessionsActor {
    type Result = ();
    fn handle(&mut self, msg: SessionClosed, ctx: &mut Self::Context) {
        let key = (msg.origin, msg.session);
        if self.hosted.contains_key(&key) {
            self.drop_hosted(&key, ctx);
        } else if self.pending > 0 {
            if self.closed_early.len() >= MAX_CLOSED_EARLY {
                self.closed_early.clear();
            }
            self.closed_early.insert(key);
        }
    }
}

impl Handler<MembershipEvent> for SessionsActor {
    type Result = ();
    fn handle(&mut self, msg: MembershipEvent, ctx: &mut Self::Context) {
        let MembershipEvent::Down(lost) = msg else {
            return;
        };
        // Sessions whose media was there: their clients must join again.
        let moved: Vec<SessionId> = self
            .origins
            .iter()
            .filter(|(_, o)| o.host == lost)
            .map(|(id, _)| *id)
            .collect();
        let frame = event_message(&Event::Reconnect {
            reason: format!("node {lost}, which carried this participant's media, is down"),
            url: None,
        });
        for id in &moved {
            if let Some(origin) = self.origins.remove(id) {
                let _ = origin.events.try_send(frame.clone());
            }
        }
        // Participants whose signalling was there: nobody drives them.
        let orphans: Vec<(NodeId, SessionId)> = self
            .hosted
            .keys()
            .filter(|(origin, _)| *origin == lost)
            .cloned()
            .collect();
        for key in &orphans {
            self.drop_hosted(key, ctx);
        }
        self.closed_early.retain(|(origin, _)| *origin != lost);
        if !moved.is_empty() || !orphans.is_empty() {
            tracing::warn!(parent: &self.span, node = %lost, reconnecting = moved.len(), dropped = orphans.len(), "a node of spilled sessions is down");
        }
    }
}

/// Drain: tells up to `max` of this node's sessions whose media is on
/// another node (and not told yet) to `reconnect` through `url`; answers
/// how many were told. They stay open until their clients leave.
impl Handler<Evacuate> for SessionsActor {
    type Result = usize;
    fn handle(&mut self, msg: Evacuate, _ctx: &mut Self::Context) -> usize {
        let frame = event_message(&Event::Reconnect {
            reason: "this node is draining".into(),
            url: msg.url,
        });
        let mut told = 0;
        for origin in self.origins.values_mut().filter(|o| !o.moving) {
            if told >= msg.max {
                break;
            }
            origin.moving = true;
            let _ = origin.events.try_send(frame.clone());
            told += 1;
        }
        told
    }
}

/// How many sessions of this node have their media on another node.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct OriginCount;

impl Handler<OriginCount> for SessionsActor {
    type Result = usize;
    fn handle(&mut self, _msg: OriginCount, _ctx: &mut Self::Context) -> usize {
        self.origins.len()
    }
}
