//! A WebSocket frame whose header claims more than the message limit is
//! refused at the header: the socket is closed with 1009 within a second
//! while the sender keeps streaming, and the node's memory stays bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// This process's resident set size (the node runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[actix_rt::test]
async fn a_frame_header_over_the_limit_closes_the_socket_with_1009_at_once() {
    let node = start_node(test_config(1)).await;
    let mut tcp = TcpStream::connect(node.http_addr).await.expect("connect");
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        node.http_addr
    );
    tcp.write_all(upgrade.as_bytes()).await.expect("upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.expect("response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    let before = rss_bytes();
    // FIN + text, masked, 64-bit length 2^62, a mask key: then data, forever.
    let mut header = vec![0x81, 0xFF];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&header).await.ok()?;
        let chunk = vec![0x5a_u8; 64 * 1024];
        let start = Instant::now();
        let mut sent = 0usize;
        while start.elapsed() < Duration::from_secs(3) {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        Some(sent)
    });

    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let close_code = loop {
        let n = tokio::time::timeout(Duration::from_secs(2), rd.read(&mut buf))
            .await
            .expect("the node answers within 2 s")
            .expect("read");
        assert!(n > 0, "socket closed without a close frame");
        got.extend_from_slice(&buf[..n]);
        // An unmasked close frame from the server: 0x88, length, code.
        if let Some(i) = got.windows(2).position(|w| w[0] == 0x88) {
            if got.len() >= i + 4 {
                break u16::from_be_bytes([got[i + 2], got[i + 3]]);
            }
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(close_code, 1009, "close code");
    assert!(elapsed < Duration::from_secs(1), "closed after {elapsed:?}");
    // And the connection ends: the node reads no more of the stream.
    let eof = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        eof.is_ok(),
        "the connection stays open after the close frame"
    );
    let sent = writer.await.expect("writer");
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 8 * 1024 * 1024,
        "RSS grew by {grown} bytes while the client sent {sent:?} bytes"
    );
    node.stop().await;
}
