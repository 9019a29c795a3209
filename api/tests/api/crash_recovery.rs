//! A command whose response never reaches the client, because the process died between the
//! commit and the response, must be answered with its original outcome on retry, and never
//! take effect twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use app::{Append, AppendOutcome, EventStore, Loaded, StoreError};
use async_trait::async_trait;
use domain::{Device, DeviceId};
use serde_json::Value;
use store::PostgresEventStore;

use crate::helpers::*;

/// Fault injection: appends for real, then never returns, like a process frozen (and then
/// killed) right after its commit.
struct CommitsThenHangs(PostgresEventStore<Device>);

#[async_trait]
impl EventStore<Device> for CommitsThenHangs {
    async fn load(&self, id: DeviceId) -> Result<Loaded<Device>, StoreError> {
        self.0.load(id).await
    }

    async fn load_at(&self, id: DeviceId, version: u64) -> Result<Loaded<Device>, StoreError> {
        self.0.load_at(id, version).await
    }

    async fn append(
        &self,
        appends: &[Append<'_, Device>],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let _committed = self.0.append(appends).await;
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_retry_after_a_crash_between_commit_and_response_gets_the_original_outcome() {
    let (url, pool) = migrated_database().await;
    let doomed = spawn_app_with_store(
        url.clone(),
        pool.clone(),
        CommitsThenHangs(PostgresEventStore::new(pool.clone())),
        limits(),
    )
    .await;
    let body = registration(&unique_serial());
    let in_flight = {
        let (client, url, token, body) = (
            doomed.client.clone(),
            doomed.url("/v1/devices"),
            doomed.writer(),
            body.clone(),
        );
        tokio::spawn(async move {
            // The client gives up, as it would when the connection dies with the process.
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "crash-key")
                .json(&body)
                .timeout(Duration::from_secs(2))
                .send()
                .await
        })
    };
    wait_for_events(&doomed, 1).await;

    let lost = in_flight.await.unwrap();
    assert!(lost.is_err(), "the first client never got an answer");
    drop(doomed);

    let restarted = spawn_app_on(url, pool).await;
    let retry = restarted.register("crash-key", &body).await;

    assert_eq!(retry.status(), 202);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["status"], "pending");
    assert_eq!(retry["version"], 1);
    assert_eq!(restarted.count_events("DeviceRegistered").await, 1);
}

async fn wait_for_events(app: &TestApp, at_least: i64) {
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if n >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the command was never committed");
}

/// The real binary, killed with SIGKILL in the middle of a burst of registrations.
struct ApiProcess {
    child: Child,
    address: String,
}

impl ApiProcess {
    async fn start(database_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_api"))
            .arg("serve")
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("AUTH_JWT_SECRET", JWT_SECRET)
            .env("DB_MAX_CONNECTIONS", "8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start api serve");
        let process = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/livez", process.address))
                .send()
                .await
                .is_ok()
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("api serve did not start");
    }

    /// SIGKILL: no graceful anything.
    fn kill(self) {
        drop(self);
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BURST: usize = 200;

#[tokio::test]
async fn killing_the_server_mid_burst_loses_and_duplicates_nothing() {
    let app = spawn_app().await; // for its database, tokens and helpers
    let server = ApiProcess::start(&app.database_url).await;
    let requests: Vec<(String, Value)> = (0..BURST)
        .map(|i| (format!("burst-{i}"), registration(&unique_serial())))
        .collect();

    let burst = {
        let (client, address, token, requests) = (
            app.client.clone(),
            server.address.clone(),
            app.writer(),
            requests.clone(),
        );
        tokio::spawn(async move {
            let sends = requests.into_iter().map(|(key, body)| {
                let (client, address, token) = (client.clone(), address.clone(), token.clone());
                async move {
                    client
                        .post(format!("{address}/v1/devices"))
                        .bearer_auth(token)
                        .header("Idempotency-Key", key)
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                }
            });
            // Eight clients at a time, so that the burst is still going when the kill comes.
            futures::StreamExt::collect::<Vec<_>>(futures::StreamExt::buffer_unordered(
                futures::stream::iter(sends),
                8,
            ))
            .await
        })
    };
    wait_for_events(&app, 5).await;
    server.kill();
    let first_round = burst.await.unwrap();
    let unanswered = first_round.iter().filter(|r| r.is_err()).count();
    assert!(unanswered > 0, "the kill landed mid-burst");
    assert!(
        first_round.iter().all(|r| matches!(r, Ok(202) | Err(_))),
        "{first_round:?}"
    );

    let server = ApiProcess::start(&app.database_url).await;
    for (key, body) in &requests {
        let response = app
            .client
            .post(format!("{}/v1/devices", server.address))
            .bearer_auth(app.writer())
            .header("Idempotency-Key", key.as_str())
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "retry of {key}");
    }
    server.kill();

    let per_device: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'DeviceRegistered' GROUP BY aggregate_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(per_device.len(), BURST, "every registration landed");
    assert!(per_device.iter().all(|n| *n == 1), "none landed twice");
}
