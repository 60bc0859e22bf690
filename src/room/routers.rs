//! The room's routers: one per worker it uses, created on demand (callers
//! racing for one share its creation) and dropped when nothing needs it.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::{ListenInfo, Protocol};
use mediasoup::types::rtp_parameters::RtpCapabilitiesFinalized;
use mediasoup::worker::WorkerId;
use tracing::Instrument;

use super::messages::{CanConsume, GetRtpCapabilities, WorkerLost};
use super::{RoomActor, RoomError};
use crate::config::{Config, RtcSection};
use crate::ids::{PeerId, RouterLoc, WorkerSlot};
use crate::worker::{CreateRouter, CreateRouterError, RouterLease};

pub(super) type RouterFuture = Shared<LocalBoxFuture<'static, Result<RouterLease, RoomError>>>;

/// The room's router on one worker. `id` tells incarnations apart, so that a
/// handler can check after an await that the router it used is still the
/// room's.
pub(super) struct RouterEntry {
    pub id: u64,
    /// The mediasoup worker it is (being) created on.
    pub worker_id: WorkerId,
    pub fut: RouterFuture,
}

/// Where the node's client-facing transports listen: `[rtc]`'s address,
/// announced address and port range.
pub fn rtc_listen_info(rtc: &RtcSection, protocol: Protocol) -> ListenInfo {
    ListenInfo {
        protocol,
        ip: rtc.listen_ip,
        announced_address: rtc.announced_address.clone(),
        expose_internal_ip: false,
        port: None,
        port_range: Some(rtc.port_min..=rtc.port_max),
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// The listen addresses of the node's WebRTC transports: UDP, and TCP when
/// `rtc.enable_tcp`.
pub(super) fn webrtc_listen_infos(config: &Config) -> WebRtcTransportListenInfos {
    let info = |protocol| rtc_listen_info(&config.rtc, protocol);
    let infos = WebRtcTransportListenInfos::new(info(Protocol::Udp));
    if config.rtc.enable_tcp {
        infos.insert(info(Protocol::Tcp))
    } else {
        infos
    }
}

impl RoomActor {
    /// The location of this node's worker `slot`.
    pub(super) fn local_loc(&self, slot: WorkerSlot) -> RouterLoc {
        RouterLoc::new(self.env.node.clone(), slot)
    }

    /// The room's router at `loc`, created on demand (concurrent callers
    /// share one creation). Only this node's workers host the room's
    /// routers here.
    pub(super) fn router_for(
        &mut self,
        loc: &RouterLoc,
        ctx: &mut Context<Self>,
    ) -> Result<(u64, RouterFuture), RoomError> {
        if self.closing {
            return Err(RoomError::RoomClosed);
        }
        if let Some(e) = self.routers.get(loc) {
            return Ok((e.id, e.fut.clone()));
        }
        let slot = loc.slot;
        let seat = (loc.node == self.env.node)
            .then(|| self.env.workers.get(slot))
            .flatten()
            .ok_or(RoomError::Router(CreateRouterError::WorkerGone(slot)))?;
        let me = ctx.address();
        let worker_id = seat.worker_id;
        let media_codecs = Arc::clone(&self.codecs);
        let fut = async move {
            let lease = seat
                .addr
                .send(CreateRouter { media_codecs })
                .await
                .map_err(|_| CreateRouterError::WorkerGone(slot))??;
            let worker_id = lease.worker_id;
            lease
                .router
                .on_worker_close(move || {
                    me.do_send(WorkerLost {
                        slot,
                        worker_id,
                        reason: format!("worker {slot} closed"),
                    })
                })
                .detach();
            Ok(lease)
        }
        .instrument(self.span.clone())
        .boxed_local()
        .shared();
        let id = self.fresh_id();
        self.routers.insert(
            loc.clone(),
            RouterEntry {
                id,
                worker_id,
                fut: fut.clone(),
            },
        );
        Ok((id, fut))
    }

    /// The resolved router at `loc`, if it is still the room's.
    pub(super) fn lease(&self, loc: &RouterLoc) -> Result<RouterLease, RoomError> {
        match self.routers.get(loc).and_then(|e| e.fut.peek()) {
            Some(Ok(lease)) => Ok(lease.clone()),
            _ => Err(RoomError::RoomClosed),
        }
    }

    /// The router a peer's transports live on.
    pub(super) fn peer_lease(&self, peer_id: PeerId) -> Result<RouterLease, RoomError> {
        self.lease(&self.peer(peer_id)?.loc)
    }

    /// Whether router incarnation `id` is still the one at `loc`.
    pub(super) fn current_router(&self, loc: &RouterLoc, id: u64) -> bool {
        self.routers.get(loc).is_some_and(|e| e.id == id)
    }

    /// Ends an in-flight operation's use of the router at `loc`.
    pub(super) fn release_router_user(&mut self, loc: &RouterLoc) {
        if let Some(n) = self.router_users.get_mut(loc) {
            *n -= 1;
            if *n == 0 {
                self.router_users.remove(loc);
            }
        }
    }

    /// Drops routers that no peer, pipe or in-flight operation needs (and
    /// failed creations, so that the next use retries), and pipe transport
    /// pairs no hop uses.
    pub(super) fn gc_routers(&mut self) {
        self.gc_data_pipes();
        let mut used: HashSet<RouterLoc> = self.peers.values().map(|p| p.loc.clone()).collect();
        used.extend(self.app.used_routers());
        used.extend(self.speaker.loc().cloned());
        used.extend(self.router_users.keys().cloned());
        let mut links: HashSet<(RouterLoc, RouterLoc)> = HashSet::new();
        for tree in self.pipes.values() {
            for (from, to) in tree.links() {
                used.insert(from.clone());
                used.insert(to.clone());
                links.insert((from.clone(), to.clone()));
            }
        }
        self.pipe_pairs
            .retain(|link, fut| links.contains(link) && !matches!(fut.peek(), Some(Err(_))));
        self.gc_remote_hops();
        let (users, span) = (&self.router_users, &self.span);
        self.routers.retain(|loc, e| {
            let failed = matches!(e.fut.peek(), Some(Err(_)));
            // A failed creation is forgotten once no request waits on it.
            let in_flight = users.contains_key(loc);
            let keep = used.contains(loc) && (in_flight || !failed);
            if !keep {
                let _e = span.enter();
                tracing::debug!(router = %loc, "router no longer needed: closing");
            }
            keep
        });
    }
}

impl Handler<GetRtpCapabilities> for RoomActor {
    type Result = ResponseActFuture<Self, Result<RtpCapabilitiesFinalized, RoomError>>;
    fn handle(&mut self, _msg: GetRtpCapabilities, ctx: &mut Self::Context) -> Self::Result {
        let existing = self.routers.values().find_map(|e| match e.fut.peek() {
            Some(Ok(lease)) => Some(lease.router.rtp_capabilities()),
            _ => None,
        });
        if let Some(caps) = existing {
            return Box::pin(fut::ready(Ok(caps)));
        }
        // No router yet: make one where the next peer would go; it is closed
        // again unless a peer comes to use it.
        let Some(seat) = self.env.workers.pick(&self.env.config.placement) else {
            return Box::pin(fut::ready(Err(RoomError::NoWorker)));
        };
        let loc = self.local_loc(seat.slot);
        let router = match self.router_for(&loc, ctx) {
            Ok((_, r)) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        *self.router_users.entry(loc.clone()).or_default() += 1;
        Box::pin(router.into_actor(self).map(move |res, act, _ctx| {
            act.release_router_user(&loc);
            act.gc_routers();
            Ok(res?.router.rtp_capabilities())
        }))
    }
}

impl Handler<CanConsume> for RoomActor {
    type Result = bool;
    fn handle(&mut self, msg: CanConsume, _ctx: &mut Self::Context) -> bool {
        self.find_producer(msg.producer_id)
            .and_then(|(owner, _)| self.peer_lease(owner).ok())
            .is_some_and(|lease| {
                lease
                    .router
                    .can_consume(&msg.producer_id, &msg.rtp_capabilities)
            })
    }
}
