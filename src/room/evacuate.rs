//! Drain: the room tells its local participants to move to another node,
//! a batch at a time; each stays (and keeps its media) until it leaves.

use actix::prelude::*;

use super::messages::Event;
use super::RoomActor;
use crate::ids::PeerId;

/// Tells up to `max` of the room's local participants not told yet to
/// `reconnect` through `url`; answers how many were told.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct Evacuate {
    /// Most participants to tell.
    pub max: usize,
    /// Where they should join again.
    pub url: Option<String>,
}

impl Handler<Evacuate> for RoomActor {
    type Result = usize;
    fn handle(&mut self, msg: Evacuate, ctx: &mut Self::Context) -> usize {
        let batch: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.moving)
            .map(|(id, _)| *id)
            .take(msg.max)
            .collect();
        for id in &batch {
            if let Some(p) = self.peers.get_mut(id) {
                p.moving = true;
            }
            let event = Event::Reconnect {
                reason: "this node is draining".into(),
                url: msg.url.clone(),
            };
            self.send_to(*id, event, ctx);
        }
        if !batch.is_empty() {
            let _e = self.span.clone().entered();
            tracing::info!(told = batch.len(), url = ?msg.url, "drain: participants told to move");
        }
        batch.len()
    }
}
