//! The relay keeps the stream in commit order when one publish of a pipelined batch is lost
//! (as when the stream's leader changes under it, or its connection breaks): no event is
//! stored after a later one, and each is stored once. The relay runs in the test, straight on
//! Postgres, and publishes through a proxy that drops one chosen message on its way to the
//! real NATS server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{registration, unique_serial, Stack};

const PATIENCE: Duration = Duration::from_secs(60);

/// A TCP proxy to a NATS server that passes the client's protocol on frame by frame, except
/// the first publish (`PUB`/`HPUB` with its payload) that contains `needle`: that one never
/// reaches the server. Everything else, both ways, goes through unchanged.
struct PublishDroppingProxy {
    addr: SocketAddr,
    needle: Arc<Mutex<Option<String>>>,
    serving: JoinHandle<()>,
}

impl Drop for PublishDroppingProxy {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl PublishDroppingProxy {
    async fn start(target: SocketAddr, needle: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let needle = Arc::new(Mutex::new(Some(needle)));
        let shared = needle.clone();
        let serving = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, mut client_write) = inbound.into_split();
                let (mut server_read, server_write) = outbound.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                tokio::spawn(forward_dropping(client_read, server_write, shared.clone()));
            }
        });
        Self {
            addr,
            needle,
            serving,
        }
    }

    fn dropped(&self) -> bool {
        self.needle.lock().unwrap().is_none()
    }
}

async fn forward_dropping(
    client: tokio::net::tcp::OwnedReadHalf,
    mut server: tokio::net::tcp::OwnedWriteHalf,
    needle: Arc<Mutex<Option<String>>>,
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    loop {
        let mut frame = Vec::new();
        if client.read_until(b'\n', &mut frame).await? == 0 {
            return Ok(());
        }
        if frame.starts_with(b"PUB ") || frame.starts_with(b"HPUB ") {
            // `PUB <subject> [reply] <bytes>` / `HPUB <subject> [reply] <header bytes> <bytes>`,
            // then the payload and CRLF.
            let line = String::from_utf8_lossy(&frame).trim_end().to_owned();
            let total: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
            let mut payload = vec![0; total + 2];
            client.read_exact(&mut payload).await?;
            frame.extend_from_slice(&payload);
            let mut needle = needle.lock().unwrap();
            let hit = needle
                .as_ref()
                .is_some_and(|n| frame.windows(n.len()).any(|window| window == n.as_bytes()));
            if hit {
                *needle = None;
                continue;
            }
        }
        server.write_all(&frame).await?;
    }
}

/// The stream's messages in stream order: (Nats-Msg-Id, Dp-Position).
async fn stored(stack: &Stack) -> Vec<(String, String)> {
    let js = jetstream::new(stack.nats_client().await);
    let mut stream = js.get_stream(&stack.stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut messages = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let header = |name: &str| message.headers.get(name).unwrap().as_str().to_owned();
        messages.push((
            header(nats::headers::MSG_ID),
            header(nats::headers::POSITION),
        ));
    }
    messages
}

/// How many messages the stream holds (0 before the relay created it).
async fn stream_len(stack: &Stack) -> u64 {
    let js = jetstream::new(stack.nats_client().await);
    match js.get_stream(&stack.stream).await {
        Ok(mut stream) => stream.info().await.unwrap().state.messages,
        Err(_) => 0,
    }
}

/// A relay for the stack's stream, publishing through `client`, acks awaited for 1 s.
fn relay(
    stack: &Stack,
    client: async_nats::Client,
    name: &str,
    duplicate_window: Duration,
) -> nats::Relay {
    nats::Relay::new(
        store::RelayLeases::new(stack.database_url.parse().unwrap(), name),
        jetstream::new(client),
        nats::StreamSettings {
            name: stack.stream.clone(),
            subject_prefix: stack.prefix.clone(),
            duplicate_window,
            max_age: Duration::from_secs(86_400),
            replicas: 1,
        },
        nats::RelaySettings {
            poll_interval: Duration::from_millis(100),
            takeover_interval: Duration::from_millis(100),
            publish_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
}

/// Waits until the stream holds `n` messages.
async fn wait_for_stream_len(stack: &Stack, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    while stream_len(stack).await < n {
        assert!(
            Instant::now() < deadline,
            "the stream never got {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until relay `name` has saved its checkpoint at `cursor` (all of it acknowledged).
async fn wait_for_checkpoint(stack: &Stack, name: &str, cursor: &str) {
    let expected = app::CommitPosition::from_cursor(cursor).unwrap().position;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let saved: Option<i64> =
            sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE relay = $1")
                .bind(name)
                .fetch_optional(&stack.pool)
                .await
                .unwrap();
        if saved == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never saved its checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that the stream holds exactly `events`, in their (commit) order.
async fn assert_stream_holds(stack: &Stack, events: &[(String, String)]) {
    let stored = stored(stack).await;
    let order: Vec<usize> = stored
        .iter()
        .map(|m| {
            events
                .iter()
                .position(|e| e == m)
                .expect("a stored message is no event")
        })
        .collect();
    assert_eq!(
        order,
        (0..events.len()).collect::<Vec<_>>(),
        "stream order, as commit-order indices"
    );
}

async fn register_many(stack: &Stack, n: usize) {
    let bodies: Vec<_> = (0..n).map(|_| registration(&unique_serial())).collect();
    join_all(bodies.iter().map(|b| stack.register(b))).await;
}

/// The tenant's events in commit order, as the HTTP feed has them: (id, position).
async fn committed(stack: &Stack, expected: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events: Vec<(String, String)> = stack
            .feed()
            .await
            .iter()
            .map(|e| {
                let field = |name: &str| e[name].as_str().unwrap().to_owned();
                (field("id"), field("position"))
            })
            .collect();
        if events.len() >= expected {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the feed never showed every event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_lost_mid_batch_is_republished_in_commit_order() {
    let stack = Stack::start().await;
    // Twenty registrations before any relay runs: the relay publishes them as one batch.
    register_many(&stack, 20).await;
    let events = committed(&stack, 20).await;
    assert_eq!(events.len(), 20);

    // The 8th event's publish is lost on its way; the 9th and later ones arrive.
    let nats_url = testkit::nats_url();
    let target = tokio::net::lookup_host(nats_url.trim_start_matches("nats://"))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = PublishDroppingProxy::start(target, events[7].0.clone()).await;
    let client = async_nats::connect(format!("nats://{}", proxy.addr))
        .await
        .unwrap();
    let relay = relay(&stack, client, "relay:order-test", Duration::from_secs(300));
    let relay = tokio::spawn(relay.run(std::future::pending()));

    wait_for_checkpoint(&stack, "relay:order-test", &events[19].1).await;
    assert!(
        proxy.dropped(),
        "the proxy never saw the 8th event's publish"
    );
    // Every event once, in commit order.
    assert_stream_holds(&stack, &events).await;
    relay.abort();
    stack.delete_stream().await;
}

/// A relay that restarts from an older checkpoint than the stream's end (its predecessor
/// crashed after publishing, before saving the checkpoint), after the duplicate window has
/// passed: it recognises the stream's last message and stores nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_behind_the_stream_beyond_the_duplicate_window_stores_nothing_twice() {
    let stack = Stack::start().await;
    let window = Duration::from_secs(1);
    register_many(&stack, 10).await;
    let first = relay(
        &stack,
        stack.nats_client().await,
        "relay:behind-test",
        window,
    );
    let first = tokio::spawn(first.run(std::future::pending()));
    wait_for_stream_len(&stack, 10).await;
    first.abort();
    let _ = first.await;
    // As if the checkpoint had never been saved; and the duplicate window is over.
    sqlx::query("DELETE FROM relay_checkpoints WHERE relay = 'relay:behind-test'")
        .execute(&stack.pool)
        .await
        .unwrap();
    tokio::time::sleep(window * 2).await;

    register_many(&stack, 5).await;
    let events = committed(&stack, 15).await;
    let second = relay(
        &stack,
        stack.nats_client().await,
        "relay:behind-test",
        window,
    );
    let second = tokio::spawn(second.run(std::future::pending()));
    wait_for_checkpoint(&stack, "relay:behind-test", &events[14].1).await;
    assert_stream_holds(&stack, &events).await;
    second.abort();
    stack.delete_stream().await;
}
