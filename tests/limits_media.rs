//! Every per-room and per-participant limit, one step past it, next to
//! honest peers in the same room whose media keeps flowing: the limits
//! refuse with `limit_exceeded` naming the limit, and touch nobody else.

mod common;

use std::time::Duration;

use common::*;
use mafalda::loadgen::scenario::{Session, Tracks};
use mafalda::loadgen::target::SignallingTarget;
use mafalda::loadgen::ReceiverSnapshot;
use serde_json::json;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn over_limit(c: &mut Client, method: &str, data: serde_json::Value, limit: &str) {
    let r = c.fails(method, data, "limit_exceeded").await;
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(limit), "{r}");
}

/// Every honest stream received more packets than in `before`.
fn flowing_since(before: &ReceiverSnapshot, now: &ReceiverSnapshot) -> bool {
    !now.streams.is_empty()
        && now.streams.iter().all(|st| {
            let earlier = before
                .streams
                .iter()
                .find(|b| b.label == st.label)
                .map_or(0, |b| b.packets);
            st.packets > earlier + 20
        })
}

#[actix_rt::test]
async fn each_limit_refuses_one_step_past_it_while_honest_media_flows() {
    let mut config = test_config(1);
    config.limits.peers_per_room = 3;
    config.limits.transports_per_peer = 2;
    config.limits.producers_per_peer = 1;
    config.limits.consumers_per_peer = 1;
    config.limits.requests_per_second = 20;
    config.limits.request_burst = 20;
    let node = start_node(config).await;

    // Honest: a publisher (audio) and a subscriber, over signalling.
    let target = SignallingTarget::new(format!("ws://{}/ws", node.http_addr), "limited");
    let tracks = Tracks {
        audio: true,
        video: false,
    };
    let mut session = Session::new(target, tracks, LOCALHOST, 1).expect("engine");
    session.add_publisher().await.expect("publisher");
    session.add_subscriber().await.expect("subscriber");
    eventually_ok("honest media", TIMEOUT, async || {
        let s = session.receiver().snapshot();
        if !s.streams.is_empty() && s.streams.iter().all(|st| st.packets > 20) {
            Ok(())
        } else {
            Err(s.totals)
        }
    })
    .await;
    let before = session.receiver().snapshot();

    // The third participant of the room hits every per-participant limit.
    let mut x = Client::connect(node.http_addr).await;
    let joined = x.join("limited", "x").await;
    let send = x
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    let recv = x
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    over_limit(
        &mut x,
        "createWebRtcTransport",
        json!({"direction": "send"}),
        "transports_per_peer",
    )
    .await;
    x.ok(
        "produce",
        json!({"transportId": send["id"], "kind": "video", "rtpParameters": vp8_rtp_parameters(71)}),
    )
    .await;
    over_limit(
        &mut x,
        "produce",
        json!({"transportId": send["id"], "kind": "audio", "rtpParameters": opus_rtp_parameters(72)}),
        "producers_per_peer",
    )
    .await;
    // The honest publisher's audio producer, consumed once, then once more.
    let producer_id = joined["producers"][0]["producerId"].clone();
    assert!(producer_id.is_string(), "{joined}");
    let consume = json!({"transportId": recv["id"], "producerId": producer_id, "rtpCapabilities": client_rtp_capabilities()});
    x.ok("consume", consume.clone()).await;
    over_limit(&mut x, "consume", consume, "consumers_per_peer").await;

    // A fourth participant would pass peers_per_room.
    let mut y = Client::connect(node.http_addr).await;
    over_limit(
        &mut y,
        "join",
        json!({"room": "limited", "displayName": "y", "token": token("limited", "y")}),
        "peers_per_room",
    )
    .await;

    // Requests faster than requests_per_second (burst 20): the extra ones
    // are refused, the participant stays.
    let mut refused = 0;
    for _ in 0..60 {
        let r = x.request("getRouterRtpCapabilities", json!({})).await;
        if r["error"]["code"] == "limit_exceeded" {
            assert!(
                r["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("requests_per_second")),
                "{r}"
            );
            refused += 1;
        }
    }
    assert!(refused > 0, "60 requests at once passed a 20/s limit");

    // Nobody was disconnected, and the honest media kept flowing.
    let s = status(&node).await;
    assert_eq!(s.peers, 3, "{s:?}");
    eventually_ok("honest media after the refusals", TIMEOUT, async || {
        let now = session.receiver().snapshot();
        if flowing_since(&before, &now) {
            Ok(())
        } else {
            Err(now.totals)
        }
    })
    .await;
    tokio::time::timeout(Duration::from_secs(5), async {
        x.ok("leave", json!({})).await;
    })
    .await
    .ok();
    drop((x, y));
    session.finish().await;
    wait_idle(&node).await;
    node.stop().await;
}
