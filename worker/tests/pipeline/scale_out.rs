//! Several processes at once, as a scaled-out deployment runs: two `api` processes and three
//! `worker` processes on one database and stream share the load (one relay active, the
//! consumers competing); SIGKILL of one api and one worker in the middle of it loses nothing
//! and doubles nothing: every registration a client got a 202 for is provisioned, each
//! device has exactly one certificate, and the stream holds every event once.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack, JWT_SECRET, TENANT};

const PATIENCE: Duration = Duration::from_secs(90);
const DEVICES: usize = 600;

/// A real `api serve` process on the stack's database; killed on drop.
struct ApiServer {
    base: String,
    child: Child,
}

impl ApiServer {
    async fn start(stack: &Stack) -> Self {
        // Built next to the worker by `cargo test --workspace` (scripts/test, .ci/run).
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_worker")).with_file_name("api");
        assert!(
            binary.exists(),
            "{} is missing: build it first (cargo build --bin api)",
            binary.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(stack.dir.join(format!("api-{port}.log"))).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &stack.database_url)
            .env("NATS_URL", &stack.nats_url)
            .env("AUTH_JWT_SECRET", JWT_SECRET)
            .env("LOG_FORMAT", "json")
            .env("RATE_LIMIT_PER_SECOND", "0")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while !client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        {
            assert!(
                started.elapsed() < PATIENCE,
                "the api at {base} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { base, child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Registers one device, as a client that retries does: on any failure (a dead process, a
/// 5xx) the same request with the same key goes to the next api. Its id once a 202 came.
async fn register_retrying(
    client: &reqwest::Client,
    apis: &[String],
    token: &str,
    start_at: usize,
) -> Uuid {
    let body = registration(&unique_serial());
    let key = format!("\"{}\"", Uuid::new_v4());
    let started = Instant::now();
    for attempt in start_at.. {
        let base = &apis[attempt % apis.len()];
        let sent = client
            .post(format!("{base}/v1/devices"))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent {
            if response.status() == 202 {
                let accepted: serde_json::Value = response.json().await.unwrap();
                return accepted["id"].as_str().unwrap().parse().unwrap();
            }
            assert!(
                response.status().is_server_error(),
                "refused: {}",
                response.status()
            );
        }
        assert!(started.elapsed() < PATIENCE, "never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn two_apis_and_three_workers_lose_and_double_nothing_when_one_of_each_is_killed() {
    let mut stack = Stack::start().await;
    let workers: Vec<usize> = (0..3).map(|_| stack.spawn_worker()).collect();
    let mut first = ApiServer::start(&stack).await;
    let second = ApiServer::start(&stack).await;
    let apis = vec![first.base.clone(), second.base.clone()];
    let token = stack.token(TENANT, "devices:write devices:read");
    let client = reqwest::Client::new();

    // 16 clients at once, alternating between the apis; one api and one worker are killed
    // once a third of the registrations were accepted.
    let accepted = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let clients = (0..16).map(|lane| {
        let (client, apis, token, accepted, next) = (
            client.clone(),
            apis.clone(),
            token.clone(),
            accepted.clone(),
            next.clone(),
        );
        async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::SeqCst) < DEVICES {
                ids.push(register_retrying(&client, &apis, &token, lane).await);
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            ids
        }
    });
    let load = tokio::spawn(join_all(clients));
    let started = Instant::now();
    while accepted.load(Ordering::SeqCst) < DEVICES / 3 {
        assert!(started.elapsed() < PATIENCE, "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    stack.kill_worker(workers[0]);
    let issued_at_kill = stack.count_events("CertificateIssued").await;
    let ids: Vec<Uuid> = load.await.unwrap().into_iter().flatten().collect();
    assert_eq!(ids.len(), DEVICES);
    assert!(
        (issued_at_kill as usize) < DEVICES,
        "the kills came while work was in flight"
    );

    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), DEVICES, "every 202 was a device of its own");
    stack
        .assert_provisioned_once_and_streamed(DEVICES, PATIENCE)
        .await;
    drop(second);
    stack.delete_stream().await;
}
