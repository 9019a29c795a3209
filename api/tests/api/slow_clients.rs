//! No unauthenticated client can take capacity from authenticated ones:
//! - a request trickling its body holds a command slot (`COMMAND_MAX_IN_FLIGHT`) only once
//!   its token is accepted: without a valid one it is answered 401 before its body is read;
//! - a client that sends request heads a byte at a time (slowloris) is cut off by the head's
//!   deadline (`HTTP_HEADER_READ_TIMEOUT_SECONDS`), and one address may hold only so many
//!   connections that have not sent a complete head
//!   (`HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS`): meanwhile, a tenant's commands and the
//!   readiness probe from another address are answered as usual.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::http::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{
    registration, serve_application, spawn_app_with, unique_serial, ApiProcess, TENANT,
};

/// A connection to `server` from the loopback address `from` (127.0.0.0/8 is all loopback
/// on Linux: a second client address without a second machine).
async fn connect_from(from: [u8; 4], server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

/// Writes `head` one byte every `pace` until the server closes the connection (or `for_at_most`
/// passes); whether the server closed it.
async fn trickle(
    mut stream: TcpStream,
    head: &[u8],
    pace: Duration,
    for_at_most: Duration,
) -> bool {
    let started = Instant::now();
    for byte in head.iter().cycle() {
        if started.elapsed() > for_at_most {
            return false;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(pace, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (a 408 or a 503): the server is done with it; it closes next.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    unreachable!("cycle never ends")
}

/// `per_address` connections from each address of `from` to `server`, each sending a request
/// head a byte every 500 ms (never idle, never complete) until the server closes it or
/// `for_at_most` passes: whether the server closed each.
async fn trickling_heads(
    from: &[[u8; 4]],
    per_address: usize,
    server: SocketAddr,
    for_at_most: Duration,
) -> Vec<tokio::task::JoinHandle<bool>> {
    const HEAD: &[u8] =
        b"GET /readyz HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n";
    let mut held = Vec::new();
    for address in from {
        for _ in 0..per_address {
            if let Ok(stream) = connect_from(*address, server).await {
                held.push(tokio::spawn(trickle(
                    stream,
                    HEAD,
                    Duration::from_millis(500),
                    for_at_most,
                )));
            }
        }
    }
    // Let them all start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    held
}

/// A client that opens a new connection for every request (none waits in a pool).
fn client_on_new_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_body_trickled_without_a_valid_token_takes_no_command_slot() {
    let app = spawn_app_with(|config| config.command_max_in_flight = 4).await;
    let server: SocketAddr = app.address.trim_start_matches("http://").parse().unwrap();
    // Eight clients with a bad token each start a registration and send its body a byte at
    // a time.
    let mut trickling = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(server).await.unwrap();
        stream
            .write_all(
                b"POST /v1/devices HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer not-a-token\r\n\
                  Idempotency-Key: \"k\"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await
            .unwrap();
        trickling.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for stream in &mut trickling {
        let _ = stream.write_all(b" ").await;
    }
    // A tenant's command is accepted all the same.
    for _ in 0..3 {
        let response = app
            .register(
                &uuid::Uuid::new_v4().to_string(),
                &registration(&unique_serial()),
            )
            .await;
        let status = response.status();
        assert_eq!(status, 202, "{}", response.text().await.unwrap());
    }
    // And the trickling ones were answered 401 without their bodies.
    for mut stream in trickling {
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .expect("answered")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let _ = TENANT;
}

/// A free loopback address for a listener of the api's.
fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn a_slowloris_from_one_address_holds_no_connection_a_tenant_needs() {
    let (database_url, _pool) = crate::helpers::migrated_database().await;
    let api = ApiProcess::start(
        &database_url,
        &[
            ("HTTP_MAX_CONNECTIONS", "32".to_owned()),
            ("LONG_POLL_MAX", "16".to_owned()),
            ("LONG_POLL_MAX_PER_TENANT", "8".to_owned()),
            ("HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS", "8".to_owned()),
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "2".to_owned()),
        ],
    )
    .await;
    let server: SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    // More connections than the bound, from 127.0.0.2, sending their heads a byte at a time.
    let attackers = trickling_heads(&[[127, 0, 0, 2]], 40, server, Duration::from_secs(30)).await;

    // Meanwhile, from 127.0.0.1: readiness and a tenant's command, on new connections.
    let client = client_on_new_connections();
    for _ in 0..3 {
        let ready = client
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let token = crate::helpers::token_for(TENANT, "devices:write");
        let registered = client
            .post(format!("{}/v1/devices", api.base))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("\"{}\"", uuid::Uuid::new_v4()))
            .json(&registration(&unique_serial()))
            .send()
            .await
            .unwrap();
        let status = registered.status();
        assert_eq!(status, 202, "{}", registered.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every trickling connection is closed by the server: by the head's deadline, or at once
    // past the address's bound.
    for attacker in attackers {
        assert!(
            attacker.await.unwrap(),
            "a trickling connection was kept open"
        );
    }
}

#[tokio::test]
async fn probes_on_the_health_listener_are_answered_when_clients_hold_every_connection() {
    let (database_url, _pool) = crate::helpers::migrated_database().await;
    let health = free_address();
    let api = ApiProcess::start(
        &database_url,
        &[
            ("HTTP_MAX_CONNECTIONS", "8".to_owned()),
            ("LONG_POLL_MAX", "4".to_owned()),
            ("LONG_POLL_MAX_PER_TENANT", "2".to_owned()),
            ("HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS", "4".to_owned()),
            ("API_HEALTH_ADDR", health.to_string()),
        ],
    )
    .await;
    let server: SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();

    // Clients from three addresses, each within its own bound, hold every connection of the
    // api's listener, sending their heads a byte at a time.
    let from = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]];
    let held = trickling_heads(&from, 4, server, Duration::from_secs(6)).await;
    let client = client_on_new_connections();
    let crowded = client.get(format!("{}/readyz", api.base)).send().await;
    assert!(
        !matches!(&crowded, Ok(r) if r.status() == 200),
        "the api's listener still had room: {crowded:?}"
    );
    // The health listener answers all the same, health and metrics only.
    for path in ["/livez", "/readyz", "/metrics"] {
        let answer = client
            .get(format!("http://{health}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
    let other = client
        .get(format!("http://{health}/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    for connection in held {
        let _ = connection.await;
    }
}

#[tokio::test]
async fn many_devices_behind_one_address_are_not_capped_while_there_is_room() {
    let limits = ConnectionLimits {
        max_pending_per_address: 2,
        ..ConnectionLimits::default()
    };
    let server = serve_application(|config| config.connections = limits).await;
    // Fifty new connections at once from one address (a factory behind one NAT).
    let client = client_on_new_connections();
    let answers = futures::future::join_all(
        (0..50).map(|_| client.get(format!("http://{server}/readyz")).send()),
    )
    .await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|answer| answer.map_or(0, |a| a.status().as_u16()))
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
