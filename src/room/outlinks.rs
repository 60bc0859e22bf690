//! The source end of cross-node pipes: the links from this node's routers
//! to other nodes' routers, the pipe consumers feeding them (one per hop),
//! the changes reported to the far end, and where another node should take
//! a producer from so that fan-out across nodes stays a tree. The target
//! end is in `remote`; the handshake is described in
//! [`fabric`](super::fabric).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use mafalda_actors::NodeId;
use mediasoup::prelude::*;
use mediasoup::types::rtp_parameters::RtpCapabilities;

use super::fabric::{HopChange, PipeTuple, ShardCall, ShardError, ShardReply};
use super::remote::{far_pipe_options, tuple_of};
use super::wire::AsJson;
use super::RoomActor;
use crate::ids::RouterLoc;
use crate::metrics::{Resource, Tracked};

/// The sending end of a link to another node's router.
#[derive(Debug)]
pub(super) struct OutLink {
    transport: PipeTransport,
    hops: HashMap<ProducerId, OutHop>,
}

impl OutLink {
    /// How many producers it carries.
    pub(super) fn hop_count(&self) -> usize {
        self.hops.len()
    }
}

#[derive(Debug)]
struct OutHop {
    /// Kept open while the far end uses it.
    _consumer: Consumer,
    seq: Arc<AtomicU64>,
}

impl RoomActor {
    /// Source end: a new link from our router `from` to the caller's `to`.
    pub(super) fn open_out_link(
        &mut self,
        caller: NodeId,
        from: RouterLoc,
        to: RouterLoc,
        tuple: PipeTuple,
        srtp: Option<AsJson<mediasoup::types::srtp_parameters::SrtpParameters>>,
    ) -> ResponseActFuture<Self, Result<ShardReply, ShardError>> {
        let checked = (|| {
            if from.node != self.env.node || to.node != caller {
                return Err(ShardError::WrongNode(format!(
                    "{from} -> {to} from {caller}"
                )));
            }
            let lease = self
                .lease(&from)
                .map_err(|_| ShardError::UnknownRouter(from.clone()))?;
            tuple.check()?;
            let srtp = srtp.map(|s| s.get()).transpose()?;
            let ip = self
                .env
                .pipe_ip()
                .ok_or_else(|| ShardError::Refused("this node is not clustered".into()))?;
            Ok((lease, srtp, ip))
        })();
        let (lease, srtp, ip) = match checked {
            Ok(v) => v,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let options = far_pipe_options(
            ip,
            self.env.config.rtc.pipe_socket_buffer_bytes,
            srtp.is_some(),
        );
        let caller_log = caller.clone();
        let fut = async move {
            let refused = |e: mediasoup::worker::RequestError| ShardError::Refused(e.to_string());
            let transport = lease
                .router
                .create_pipe_transport(options)
                .await
                .map_err(refused)?;
            transport
                .connect(PipeTransportRemoteParameters {
                    ip: tuple.ip,
                    port: tuple.port,
                    srtp_parameters: srtp,
                })
                .await
                .map_err(refused)?;
            tracing::info!(caller = %caller_log, "cross-node pipe link opened for a caller");
            Ok::<_, ShardError>(transport)
        };
        let fut = self.traced("serve_link", fut);
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            let transport = res?;
            let reply = ShardReply::Link {
                tuple: tuple_of(&transport).map_err(ShardError::Refused)?,
                srtp: transport.srtp_parameters().map(|p| AsJson::new(&p)),
            };
            if act.closing {
                return Err(ShardError::UnknownRoom(act.id.clone()));
            }
            // A link opened again (the caller's room restarted) replaces
            // the old one and its hops.
            act.out_links.insert(
                (from, to),
                OutLink {
                    transport,
                    hops: HashMap::new(),
                },
            );
            Ok(reply)
        }))
    }

    /// Source end: pipes one of our producers over an open link.
    pub(super) fn open_out_hop(
        &mut self,
        from: RouterLoc,
        to: RouterLoc,
        producer_id: ProducerId,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ShardReply, ShardError>> {
        let key = (from.clone(), to.clone());
        let Some(link) = self.out_links.get(&key) else {
            return Box::pin(fut::ready(Err(ShardError::UnknownLink(from, to))));
        };
        if !self.holds(producer_id, &from) {
            return Box::pin(fut::ready(Err(ShardError::UnknownProducer(producer_id))));
        }
        let transport = link.transport.clone();
        let me = ctx.address();
        let node = Arc::clone(&self.env.counters);
        let worker = self.lease(&from).ok().map(|l| l.worker_counters);
        let fut = async move {
            let consumer = transport
                .consume(ConsumerOptions::new(
                    producer_id,
                    RtpCapabilities::default(),
                ))
                .await
                .map_err(|e| match e {
                    ConsumeError::ProducerNotFound(id) => ShardError::UnknownProducer(id),
                    other => ShardError::Refused(other.to_string()),
                })?;
            let consumer_id = consumer.id();
            for change in [HopChange::Paused, HopChange::Resumed, HopChange::Closed] {
                let (me, key) = (me.clone(), key.clone());
                let report = move || {
                    me.do_send(OutHopChanged {
                        from: key.0.clone(),
                        to: key.1.clone(),
                        producer_id,
                        consumer_id,
                        change,
                    })
                };
                match change {
                    HopChange::Paused => consumer.on_pause(report).detach(),
                    HopChange::Resumed => consumer.on_resume(report).detach(),
                    HopChange::Closed => consumer.on_close(report).detach(),
                }
            }
            if let Some(worker) = worker {
                let guards = (
                    Tracked::new(Resource::Consumer, &[&node, &worker]),
                    Tracked::new(Resource::PipeConsumer, &[&node, &worker]),
                );
                consumer.on_close(move || drop(guards)).detach();
            }
            tracing::debug!(producer = %producer_id, "producer piped to another node");
            Ok::<_, ShardError>(consumer)
        };
        let fut = self.traced("serve_hop", fut);
        Box::pin(fut.into_actor(self).map(move |res, act, _ctx| {
            let consumer = res?;
            let Some(link) = act.out_links.get_mut(&(from.clone(), to.clone())) else {
                return Err(ShardError::UnknownLink(from, to));
            };
            let reply = ShardReply::Hop {
                kind: consumer.kind(),
                rtp_parameters: AsJson::new(consumer.rtp_parameters()),
                paused: consumer.producer_paused(),
                seq: 0,
            };
            let consumer_id = consumer.id();
            let replaced = link.hops.insert(
                producer_id,
                OutHop {
                    _consumer: consumer,
                    seq: Arc::new(AtomicU64::new(0)),
                },
            );
            // A producer piped into `from` keeps its hop there while we
            // feed the other node from it.
            if let Some(old) = replaced {
                act.release_consumer(producer_id, &from, old._consumer.id());
            }
            if let Some(hop) = act
                .pipes
                .get_mut(&producer_id)
                .and_then(|t| t.hop_mut(&from))
            {
                hop.consumers.insert(consumer_id);
            }
            Ok(reply)
        }))
    }

    /// Whether router `loc` of this node has `producer_id`: its own, or
    /// piped into it.
    pub(super) fn holds(&self, producer_id: ProducerId, loc: &RouterLoc) -> bool {
        let own = self
            .find_producer(producer_id)
            .is_some_and(|(owner, _)| self.peers.get(&owner).is_some_and(|p| &p.loc == loc));
        own || self
            .pipes
            .get(&producer_id)
            .and_then(|t| t.hop(loc))
            .is_some_and(|h| matches!(h.handle.peek(), Some(Ok(_))))
    }

    /// Source end: where another node should take `producer_id` from, to
    /// keep fan-out across nodes a tree.
    pub(super) fn pipe_source(
        &self,
        producer_id: ProducerId,
        from: RouterLoc,
    ) -> Result<ShardReply, ShardError> {
        if from.node != self.env.node {
            return Err(ShardError::WrongNode(format!("{from} is not on this node")));
        }
        if !self.holds(producer_id, &from) {
            return Err(ShardError::UnknownProducer(producer_id));
        }
        let fanout = self.env.config.placement.pipe_fanout.max(1) as usize;
        let mut fed: Vec<&RouterLoc> = self
            .out_links
            .iter()
            .filter(|((f, _), l)| f == &from && l.hops.contains_key(&producer_id))
            .map(|((_, to), _)| to)
            .collect();
        let local = self
            .pipes
            .get(&producer_id)
            .map_or(0, |t| t.children(&from));
        if fed.len() + local < fanout || fed.is_empty() {
            return Ok(ShardReply::Source(from));
        }
        fed.sort();
        Ok(ShardReply::Source(fed[0].clone()))
    }

    /// Source end: drops the hops of link `key` (one producer's, or all),
    /// releasing the pipe hops here they were fed from.
    pub(super) fn drop_out_hops(
        &mut self,
        key: &(RouterLoc, RouterLoc),
        producer: Option<ProducerId>,
    ) {
        let Some(link) = self.out_links.get_mut(key) else {
            return;
        };
        let gone: Vec<(ProducerId, ConsumerId)> = link
            .hops
            .iter()
            .filter(|(p, _)| producer.is_none_or(|want| **p == want))
            .map(|(p, h)| (*p, h._consumer.id()))
            .collect();
        for (p, _) in &gone {
            link.hops.remove(p);
        }
        for (p, c) in gone {
            self.release_consumer(p, &key.0, c);
        }
        self.gc_routers();
    }
}

/// Internal: a pipe consumer we feed another node with changed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct OutHopChanged {
    from: RouterLoc,
    to: RouterLoc,
    producer_id: ProducerId,
    /// The pipe consumer that changed (a hop opened again has a new one).
    consumer_id: ConsumerId,
    change: HopChange,
}

impl Handler<OutHopChanged> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: OutHopChanged, _ctx: &mut Self::Context) {
        let key = (msg.from.clone(), msg.to.clone());
        let Some(link) = self.out_links.get_mut(&key) else {
            return;
        };
        let Some(hop) = link
            .hops
            .get(&msg.producer_id)
            .filter(|h| h._consumer.id() == msg.consumer_id)
        else {
            return;
        };
        let seq = hop.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if msg.change == HopChange::Closed {
            self.drop_out_hops(&key, Some(msg.producer_id));
        }
        match self.far(&msg.to.node) {
            Ok(far) => far.tell(ShardCall::HopChanged {
                from: msg.from,
                to: msg.to,
                producer_id: msg.producer_id,
                change: msg.change,
                seq,
            }),
            Err(e) => tracing::debug!(error = %e, "cannot report a hop change"),
        }
    }
}
