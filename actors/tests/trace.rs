//! Trace ids across the fabric: a message's trace reaches the remote
//! handler (asks and tells), asks pick up the current trace, a handler
//! forwarding under its message's trace keeps it on a third node, and both
//! ends log the same id.

mod common;

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
};

use actix::prelude::*;
use common::*;
use mafalda_actors::{
    trace::{self, TraceId},
    ActorRef, Node, RemoteMessage,
};
use serde::{Deserialize, Serialize};

/// Replies with the trace its handler saw, and records it by label.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "Option<TraceId>")]
struct Traced {
    label: String,
    #[serde(skip)]
    trace: Option<TraceId>,
}

impl Traced {
    fn new(label: &str) -> Self {
        Self {
            label: label.into(),
            trace: None,
        }
    }

    fn under(label: &str, trace: TraceId) -> Self {
        Self {
            label: label.into(),
            trace: Some(trace),
        }
    }
}

impl RemoteMessage for Traced {
    const TAG: &'static str = "test.Traced/v1";
    fn trace(&self) -> Option<TraceId> {
        self.trace
    }
    fn set_trace(&mut self, trace: TraceId) {
        self.trace = Some(trace);
    }
}

/// The trace recorded for a label, if a `Traced` of that label arrived.
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "Option<TraceId>")]
struct Seen(String);

impl RemoteMessage for Seen {
    const TAG: &'static str = "test.Seen/v1";
}

/// Asks `Traced` of the relay's next hop under its own trace; replies with
/// (the trace seen here, the trace the next hop saw).
#[derive(Debug, Message, Serialize, Deserialize)]
#[rtype(result = "(Option<TraceId>, Option<TraceId>)")]
struct Relay {
    #[serde(skip)]
    trace: Option<TraceId>,
}

impl RemoteMessage for Relay {
    const TAG: &'static str = "test.Relay/v1";
    fn trace(&self) -> Option<TraceId> {
        self.trace
    }
    fn set_trace(&mut self, trace: TraceId) {
        self.trace = Some(trace);
    }
}

#[derive(Default)]
struct Tracer {
    seen: HashMap<String, Option<TraceId>>,
    next: Option<ActorRef<Traced>>,
}

impl Actor for Tracer {
    type Context = Context<Self>;
}

impl Handler<Traced> for Tracer {
    type Result = Option<TraceId>;
    fn handle(&mut self, msg: Traced, _: &mut Context<Self>) -> Option<TraceId> {
        self.seen.insert(msg.label, msg.trace);
        msg.trace
    }
}

impl Handler<Seen> for Tracer {
    type Result = Option<TraceId>;
    fn handle(&mut self, msg: Seen, _: &mut Context<Self>) -> Option<TraceId> {
        self.seen.get(&msg.0).copied().flatten()
    }
}

impl Handler<Relay> for Tracer {
    type Result = ResponseFuture<(Option<TraceId>, Option<TraceId>)>;
    fn handle(&mut self, msg: Relay, _: &mut Context<Self>) -> Self::Result {
        let here = msg.trace();
        let next = self.next.clone().expect("a relay has a next hop");
        // The ask takes the current trace when it is made.
        let _trace = trace::enter(msg.trace());
        let asked = next.ask(Traced::new("relayed"));
        Box::pin(async move { (here, asked.await.expect("next hop answers")) })
    }
}

/// Starts a tracer on `node` as `tracer`, relaying to `next` if given.
fn spawn_tracer(node: &Node, next: Option<ActorRef<Traced>>) -> Addr<Tracer> {
    let addr = Tracer {
        next,
        ..Default::default()
    }
    .start();
    node.register_actor::<Tracer, Traced>("tracer", &addr)
        .unwrap();
    node.register_actor::<Tracer, Seen>("tracer", &addr)
        .unwrap();
    node.register_actor::<Tracer, Relay>("tracer", &addr)
        .unwrap();
    addr
}

/// `node-a` and `node-b` with a tracer, and node-a's references to it.
struct Pair {
    a: Node,
    b: Node,
    remote: ActorRef<Traced>,
    seen: ActorRef<Seen>,
}

impl Pair {
    async fn start() -> Self {
        let pki = Pki::new();
        let a = start(&pki, "node-a", vec![]).await;
        let b = start(&pki, "node-b", vec![a.addr()]).await;
        spawn_tracer(&b, None);
        wait_members(&a, &["node-b"]).await;
        Self {
            remote: a.actor_ref(b.id(), "tracer").unwrap(),
            seen: a.actor_ref(b.id(), "tracer").unwrap(),
            a,
            b,
        }
    }

    /// The trace node-b's tracer recorded for `label`, once it arrived.
    async fn seen(&self, label: &str) -> TraceId {
        eventually(&format!("the tell {label:?}"), SOON, async || {
            self.seen.ask(Seen(label.into())).await.unwrap()
        })
        .await
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        assert_no_panic();
    }
}

#[actix_rt::test]
async fn a_message_keeps_its_trace_to_the_remote_handler() {
    init();
    let pair = Pair::start().await;
    let remote = &pair.remote;

    // Ask: the message's own trace, not the current one.
    let id = TraceId::random();
    let asked = {
        let _other = trace::enter(TraceId::random());
        remote.ask(Traced::under("ask", id))
    };
    assert_eq!(asked.await.unwrap(), Some(id));

    // Tell: the same, delivered on the tell stream.
    let id = TraceId::random();
    remote.tell(Traced::under("tell", id)).unwrap();
    assert_eq!(pair.seen("tell").await, id);

    // No trace anywhere: the handler still sees one, a fresh one per send.
    let first = remote.ask(Traced::new("fresh")).await.unwrap().unwrap();
    let second = remote.ask(Traced::new("fresh")).await.unwrap().unwrap();
    assert_ne!(first, second);
    pair.shutdown().await;
}

#[actix_rt::test]
async fn asks_and_tells_carry_the_current_trace() {
    init();
    let pair = Pair::start().await;
    let remote = &pair.remote;

    // Inside a scope, across awaits.
    let id = TraceId::random();
    let got = trace::scope(id, async {
        let first = remote.ask(Traced::new("scoped")).await.unwrap();
        let second = remote.ask(Traced::new("scoped")).await.unwrap();
        remote.tell(Traced::new("scoped tell")).unwrap();
        (first, second)
    })
    .await;
    assert_eq!(got, (Some(id), Some(id)));
    assert_eq!(pair.seen("scoped tell").await, id);

    // Local targets (an anonymous recipient, a named local actor) are
    // given the trace too, the one current when the ask is made.
    let id = TraceId::random();
    let local = spawn_tracer(&pair.a, None);
    let anonymous = ActorRef::local(local.recipient::<Traced>());
    let named = pair.a.actor_ref::<Traced>(pair.a.id(), "tracer").unwrap();
    assert!(named.is_local());
    let (by_recipient, by_name) = {
        let _trace = trace::enter(id);
        (
            anonymous.ask(Traced::new("local")),
            named.ask(Traced::new("named")),
        )
    };
    assert_eq!(by_recipient.await.unwrap(), Some(id));
    assert_eq!(by_name.await.unwrap(), Some(id));
    pair.shutdown().await;
}

#[actix_rt::test]
async fn a_handler_forwarding_under_its_trace_keeps_it_on_a_third_node() {
    init();
    let pki = Pki::new();
    let a = start(&pki, "node-a", vec![]).await;
    let b = start(&pki, "node-b", vec![a.addr()]).await;
    let c = start(&pki, "node-c", vec![a.addr()]).await;
    spawn_tracer(&c, None);
    wait_members(&b, &["node-a", "node-c"]).await;
    let to_c = b.actor_ref::<Traced>(c.id(), "tracer").unwrap();
    spawn_tracer(&b, Some(to_c));
    wait_members(&a, &["node-b", "node-c"]).await;

    let id = TraceId::random();
    let relay = a.actor_ref::<Relay>(b.id(), "tracer").unwrap();
    let (on_b, on_c) = relay.ask(Relay { trace: Some(id) }).await.unwrap();
    assert_eq!((on_b, on_c), (Some(id), Some(id)));

    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
    assert_no_panic();
}

/// Log lines of this thread's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[actix_rt::test]
async fn both_ends_log_the_same_trace() {
    install_panic_hook();
    // Both nodes run on this test's thread: a thread-local subscriber
    // hears them both and nothing of the other tests.
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("warn,mafalda_actors=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let pair = Pair::start().await;

    let ask = TraceId::random();
    pair.remote.ask(Traced::under("logged", ask)).await.unwrap();
    let tell = TraceId::random();
    pair.remote
        .tell(Traced::under("logged tell", tell))
        .unwrap();
    pair.seen("logged tell").await;

    let route = "tracer/test.Traced/v1";
    for (id, sent, received) in [
        (ask, "ask to node-b", "ask from node-a"),
        (tell, "tell to node-b", "tell from node-a"),
    ] {
        let lines = logs.lines_with(&format!("trace={id}"));
        // Each line names the node that logged it (`node=`).
        let on = |node: &str, what: &str| {
            lines.iter().any(|l| {
                l.contains(&format!("node={node}")) && l.contains(&format!("{what} {route}"))
            })
        };
        assert!(on("node-a", sent), "sender's log of {id}: {lines:#?}");
        assert!(on("node-b", received), "receiver's log of {id}: {lines:#?}");
    }
    pair.shutdown().await;
}
