//! One trace id across the fabric: a consumer on node B of a producer on
//! node A makes B set up a cross-node pipe (a link, then a hop), and both
//! nodes' logs show the same trace id for it.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{certs, cluster, clustered};
use common::facade::{caps, dtls, publish};
use common::*;
use mafalda::ids::RoomId;
use mafalda::sfu::{ConsumerOptions, Direction, Event, Sfu};

/// Every log line of the process (both nodes run in it).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lines").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The value of `trace=` in a log line's span context.
fn trace_of(line: &str) -> Option<&str> {
    let at = line.find("trace=")? + "trace=".len();
    line[at..].get(..16)
}

#[actix_rt::test]
async fn a_cross_node_pipe_setup_shows_one_trace_id_on_both_nodes() {
    let lines = Lines::default();
    tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_ansi(false)
        .with_env_filter("info")
        .try_init()
        .expect("the only subscriber of this test binary");

    let dir = certs(&["trace-a", "trace-b"]);
    let a = start_node(clustered("trace-a", &dir, vec![])).await;
    let b = start_node(clustered("trace-b", &dir, vec![cluster(&a).node().addr()])).await;
    eventually(
        "the nodes to see each other",
        Duration::from_secs(15),
        async || {
            let alive = |n: &mafalda::node::RunningNode, other: &str| {
                cluster(n)
                    .members()
                    .iter()
                    .any(|m| m.node == other && m.state == "alive")
            };
            (alive(&a, "trace-b") && alive(&b, "trace-a")).then_some(())
        },
    )
    .await;

    let room = RoomId::new("traced");
    let alice = Sfu::from_node(&a)
        .room(room.as_str())
        .await
        .expect("room on A")
        .join("alice")
        .await
        .expect("alice joins on A");
    let bob = Sfu::from_node(&b)
        .room(room.as_str())
        .await
        .expect("room on B")
        .join("bob")
        .await
        .expect("bob joins on B");
    let mut bob_events = bob.take_events().expect("events");
    let producer = publish(&alice, 4242).await;
    let announced = tokio::time::timeout(TIMEOUT, async {
        loop {
            match bob_events.recv().await {
                Some(Event::NewProducer(i)) if i.producer_id == producer.id() => break,
                Some(_) => continue,
                None => panic!("bob was removed"),
            }
        }
    })
    .await;
    assert!(announced.is_ok(), "bob hears of alice's producer");
    let recv = bob
        .create_webrtc_transport(Direction::Recv)
        .await
        .expect("recv transport");
    recv.connect(dtls()).await.expect("connect");
    let _consumer = recv
        .consume(ConsumerOptions::new(producer.id(), caps()))
        .await
        .expect("bob consumes across nodes");

    // B logged the link up under some trace id; A logged opening its end
    // under the same one.
    let (up, opened) = eventually("both ends of the link in the logs", TIMEOUT, async || {
        let text = String::from_utf8_lossy(&lines.0.lock().expect("lines")).into_owned();
        let up = text
            .lines()
            .find(|l| l.contains("cross-node pipe link up") && l.contains("node=trace-b"))?
            .to_owned();
        let id = trace_of(&up)?.to_owned();
        let opened = text
            .lines()
            .find(|l| {
                l.contains("cross-node pipe link opened")
                    && l.contains("node=trace-a")
                    && trace_of(l) == Some(id.as_str())
            })?
            .to_owned();
        Some((up, opened))
    })
    .await;
    assert_eq!(trace_of(&up), trace_of(&opened), "{up}\n{opened}");
    assert!(
        trace_of(&up).is_some_and(|t| t.chars().all(|c| c.is_ascii_hexdigit())),
        "{up}"
    );

    drop((_consumer, recv, producer, alice, bob, bob_events));
    wait_idle(&a).await;
    wait_idle(&b).await;
    b.stop().await;
    a.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
