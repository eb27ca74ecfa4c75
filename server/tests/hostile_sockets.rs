//! A thousand slow-body sockets against the real binary under `ulimit -n 1024`: one address
//! holds at most its share of connections, the rest are refused as their heads arrive, and
//! `/healthz` keeps answering another address. The latency printed is for the closing note
//! and `bench/`; the test asserts only that the server answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::zombie_processes,
    reason = "test helpers: a broken assumption is a failed test; children are reaped in stop()"
)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn connect(port: u16, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// `GET /healthz` from `from`; the status, once the server has answered and closed.
async fn healthz(port: u16, from: IpAddr) -> u16 {
    let mut s = connect(port, from).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf).split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_thousand_slow_bodies_under_ulimit_1024_leave_healthz_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::serve_limited(
        dir.path(),
        &[("RUST_LOG", "error"), ("PRAMAAN__HTTP__BODY_READ_TIMEOUT_SECS", "60")],
        1024,
    );
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let attacker = IpAddr::from([127, 0, 0, 1]);
    let mut held = Vec::new();
    for _ in 0..1000 {
        let mut s = connect(port, attacker).await.unwrap();
        // A form body of 1,000 bytes is declared; 5 arrive, the rest never will.
        s.write_all(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 1000\r\n\r\ngrant",
        )
        .await
        .unwrap();
        held.push(s);
    }
    let started = Instant::now();
    let status = healthz(port, IpAddr::from([127, 0, 0, 2])).await;
    let took = started.elapsed();
    println!("healthz with 1000 slow sockets open under ulimit -n 1024: {status} in {took:?}");
    assert_eq!(status, 200);
    // The sockets past the address's share were answered 503 and closed at once; the others
    // are still waiting for their bodies.
    let mut refused = 0;
    for s in &mut held {
        let mut buf = [0u8; 12];
        if let Ok(Ok(12)) = tokio::time::timeout(Duration::from_millis(20), s.read_exact(&mut buf)).await {
            refused += usize::from(&buf[9..12] == b"503");
        }
    }
    println!("{refused} of 1000 slow sockets were refused at once");
    // The open-file limit lowers the server's connection cap to 896; one address may hold at
    // most a quarter of it.
    assert!(refused >= 1000 - 224, "at most 224 are held: {refused} refused");
    drop(held);
    let err = common::stop(server);
    assert!(!err.contains("Too many open files"), "{err}");
}
