//! Who sees what of `/api/status`: the counts are public; the rooms,
//! workers and members, and `POST /api/drain`, are for operators (the
//! admin token, or a client of `http.admin_networks`).

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// (status line, body) of a request.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

fn json_of(body: &str) -> serde_json::Value {
    let start = body.find('{').expect("a JSON body");
    let end = body.rfind('}').expect("a JSON body");
    serde_json::from_str(&body[start..=end]).expect("JSON")
}

#[actix_rt::test]
async fn status_detail_and_drain_are_for_operators() {
    let mut config = test_config(1);
    config.http.admin_token = Some("operator-secret".into());
    // This test's client is on loopback: not an operator by network.
    config.http.admin_networks = Vec::new();
    let node = start_node(config).await;
    let addr = node.http_addr;
    let mut c = Client::connect(addr).await;
    c.join("watched", "a").await;

    let (head, body) = request(addr, "GET", "/api/status", None).await;
    assert!(head.contains("200"), "{head}");
    let public = json_of(&body);
    assert_eq!(public["peers"], 1, "{public}");
    assert_eq!(public["detail"], false);
    assert!(
        public.get("roomDetails").is_none() && public.get("workerDetails").is_none(),
        "{public}"
    );

    for (path, bearer) in [
        ("/api/status", Some("operator-secret")),
        ("/api/status?token=operator-secret", None),
    ] {
        let full = json_of(&request(addr, "GET", path, bearer).await.1);
        assert_eq!(full["detail"], true, "{path}");
        assert_eq!(full["roomDetails"][0]["room"], "watched", "{full}");
    }
    let wrong = json_of(
        &request(addr, "GET", "/api/status?token=guess", None)
            .await
            .1,
    );
    assert_eq!(wrong["detail"], false);

    let (head, _) = request(addr, "POST", "/api/drain", None).await;
    assert!(head.contains("403"), "{head}");
    let (head, _) = request(addr, "POST", "/api/drain", Some("guess")).await;
    assert!(head.contains("403"), "{head}");
    // /healthz stays open.
    assert_eq!(http_get(addr, "/healthz").await, "ok");
    let (head, _) = request(addr, "POST", "/api/drain", Some("operator-secret")).await;
    assert!(head.contains("202"), "{head}");
    drop(c);
    node.stop().await;
}

#[actix_rt::test]
async fn clients_of_the_admin_networks_are_operators() {
    // The default: loopback.
    let node = start_node(test_config(1)).await;
    let full = json_of(&http_get(node.http_addr, "/api/status").await);
    assert_eq!(full["detail"], true, "{full}");
    assert!(full["workerDetails"].is_array());
    node.stop().await;
}
