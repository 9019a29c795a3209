//! The api holds at most `HTTP_MAX_CONNECTIONS` client connections: past that, a new one is
//! answered 503 `overloaded` (problem+json, `Retry-After`) as soon as its request's head has
//! arrived, and closed, until a held one closes; one on which nothing is asked is closed
//! unanswered. A connection that moves no byte for `HTTP_IDLE_TIMEOUT_SECONDS` is closed, so
//! connections that send nothing cannot hold the bound for ever.

use std::time::Duration;

use api::http::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::serve_application;

async fn serve(connections: ConnectionLimits) -> std::net::SocketAddr {
    serve_application(|config| config.connections = connections).await
}

/// Sends `GET /livez` on `stream` and waits (up to `within`) for the status line.
async fn livez(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(within, stream.read(&mut answer))
        .await
        .ok()?
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    answer.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn past_the_bound_a_connection_is_answered_503_overloaded_until_another_closes() {
    let addr = serve(ConnectionLimits {
        max_connections: 2,
        idle_timeout: Duration::from_secs(60),
        ..ConnectionLimits::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        livez(&mut first, Duration::from_secs(5)).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    assert_eq!(
        livez(&mut second, Duration::from_secs(5)).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );

    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut refused = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut refused))
        .await
        .expect("answered at once, then closed")
        .unwrap();
    let refused = String::from_utf8_lossy(&refused).to_lowercase();
    assert!(
        refused.starts_with("http/1.1 503 service unavailable"),
        "{refused}"
    );
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(
        refused.contains("content-type: application/problem+json"),
        "{refused}"
    );
    assert!(
        refused.contains("\"type\":\"/problems/overloaded\""),
        "{refused}"
    );
    assert!(refused.contains("2 connections"), "{refused}");

    drop(first);
    assert_served_soon(addr).await;
}

#[tokio::test]
async fn past_the_bound_the_answer_waits_for_the_request_head_and_a_silent_connection_is_closed_unanswered(
) {
    let addr = serve(ConnectionLimits {
        max_connections: 1,
        idle_timeout: Duration::from_secs(60),
        ..ConnectionLimits::default()
    })
    .await;
    let mut held = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        livez(&mut held, Duration::from_secs(5)).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );

    // A request whose head arrives in two parts is answered only after the second: an answer
    // before the request is written is, to an HTTP/1.1 client, a broken connection.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /v1/devices HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let mut early = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), slow.read(&mut early))
            .await
            .is_err(),
        "nothing is answered before the request's head is complete"
    );
    slow.write_all(b"Content-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut refused = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut refused))
        .await
        .expect("answered once the head is complete, then closed")
        .unwrap();
    let refused = String::from_utf8_lossy(&refused).to_lowercase();
    assert!(
        refused.starts_with("http/1.1 503 service unavailable"),
        "{refused}"
    );
    assert!(
        refused.contains("\"type\":\"/problems/overloaded\""),
        "{refused}"
    );

    // A connection that asks nothing (a pooling client's spare) gets no answer it did not ask
    // for: it is closed.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut unasked = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut unasked))
        .await
        .expect("a silent connection past the bound is closed")
        .unwrap();
    assert!(
        unasked.is_empty(),
        "closed without an answer: {:?}",
        String::from_utf8_lossy(&unasked)
    );
}

#[tokio::test]
async fn an_answer_given_before_the_body_is_read_leaves_the_connection_usable() {
    let addr = serve(ConnectionLimits::default()).await;
    let mut connection = TcpStream::connect(addr).await.unwrap();
    // A bad token is refused before the body is looked at; the body comes a little later,
    // as it may from a client on a busy machine.
    let body = format!(
        r#"{{"serial_number":"X","model":"m","csr":"{}"}}"#,
        "a".repeat(2000)
    );
    connection
        .write_all(
            format!(
                "POST /v1/devices HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer bad\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    connection.write_all(body.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), connection.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    // The same connection serves the next request (it used to be closed after the answer).
    assert_eq!(
        livez(&mut connection, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("HTTP/1.1 200 OK")
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_gives_its_place_up() {
    let addr = serve(ConnectionLimits {
        max_connections: 1,
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    })
    .await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        livez(&mut idle, Duration::from_secs(5)).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );

    // Nothing more is sent: within one to two idle timeouts the api hangs up.
    let mut rest = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut rest))
        .await
        .expect("an idle connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered");

    assert_served_soon(addr).await;
}

/// A new connection is served within a few seconds (a closed connection's place is given back
/// as the api finishes with it, just after the client sees it close).
async fn assert_served_soon(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut next = TcpStream::connect(addr).await.unwrap();
        if livez(&mut next, Duration::from_secs(5)).await.as_deref() == Some("HTTP/1.1 200 OK") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed connection's place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
