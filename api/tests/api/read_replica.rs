//! The query side on a real streaming replica (a private primary and a `pg_basebackup` of it,
//! started by the test): reads come from the replica; `min_version` never answers with a
//! version the replica has not reached, however far behind it is (replay paused); and a
//! long-poll wakes within a second of the projection's commit once the replica has it,
//! although Postgres does not replicate the notification that wakes it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use testkit::StreamingReplica;

use crate::helpers::{
    build_app_on, new_key, project_device, registration, serve_built, unique_serial, JWT_SECRET,
    TENANT,
};

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test]
async fn reads_come_from_the_replica_and_long_polls_wake_when_it_has_caught_up() {
    let postgres = StreamingReplica::start();
    let primary = pool(&postgres.primary_url).await;
    store::schema::migrate(&primary).await.unwrap();
    let replica = pool(&postgres.replica_url).await;
    postgres.caught_up(&primary, &replica).await;
    // As `api serve` with DATABASE_READ_URL.
    let app = build_app_on(&postgres.primary_url, |config| {
        config.read_database = Some(store::DatabaseSettings {
            url: postgres.replica_url.clone(),
            ..config.database.clone()
        });
    })
    .await;
    let keys = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes());
    let token = keys.issue(
        "client",
        TENANT,
        "devices:write devices:read events:read",
        Duration::from_secs(600),
    );
    let base = format!("http://{}", serve_built(app));
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };

    let register = || {
        let request = client
            .post(format!("{base}/v1/devices"))
            .bearer_auth(&token)
            .header("Idempotency-Key", new_key())
            .json(&registration(&unique_serial()));
        async move {
            let accepted: Value = request.send().await.unwrap().json().await.unwrap();
            accepted["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap()
        }
    };

    // Registered on the primary, projected there, read from the replica once it has it.
    let id = register().await;
    project_device(&primary, id).await;
    let device = get(format!("/v1/devices/{id}?min_version=1&wait=10")).await;
    assert_eq!(device["version"], 1);
    let feed = get("/v1/events".into()).await;
    assert_eq!(
        feed["events"].as_array().unwrap().len(),
        1,
        "the feed reads the replica too"
    );

    // The replica stops replaying: what the primary now holds is not on it.
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&replica)
        .await
        .unwrap();
    let decommissioned = client
        .post(format!("{base}/v1/devices/{id}/decommission"))
        .bearer_auth(&token)
        .header("Idempotency-Key", new_key())
        .json(&json!({"reason": "returned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(decommissioned.status(), 202);

    // A long-poll for version 2 waits; the projection commits on the primary meanwhile
    // (its notification wakes the waiter, which finds the replica behind).
    let waiting = {
        let request = client
            .get(format!("{base}/v1/devices/{id}?min_version=2&wait=20"))
            .bearer_auth(&token);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (Instant::now(), response.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    project_device(&primary, id).await;
    let projected = Instant::now();
    let on_primary: i64 = sqlx::query_scalar("SELECT version FROM device_view WHERE id = $1")
        .bind(id)
        .fetch_one(&primary)
        .await
        .unwrap();
    assert_eq!(on_primary, 2);

    // No stale answer: while the replica lacks version 2, a read asking for it says so by
    // its version, never by pretending.
    let behind = get(format!("/v1/devices/{id}?min_version=2&wait=1")).await;
    assert_eq!(behind["version"], 1, "{behind}");
    assert_eq!(behind["status"], "pending");
    assert!(!waiting.is_finished(), "the long-poll still waits");

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&replica)
        .await
        .unwrap();
    let resumed = Instant::now();
    let (answered, device) = waiting.await.unwrap();
    assert_eq!(device["version"], 2, "{device}");
    assert_eq!(device["status"], "decommissioned");
    // Behind for over a second, the waiter is back on its one-second recheck by now.
    let woke = answered.duration_since(resumed);
    assert!(
        woke < Duration::from_millis(1500),
        "woke {woke:?} after the replica caught up"
    );
    assert!(answered > projected);

    // Replicating as usual: a long-poll answers within a second of the projection's commit.
    let other = register().await;
    let waiting = {
        let request = client
            .get(format!("{base}/v1/devices/{other}?min_version=1&wait=20"))
            .bearer_auth(&token);
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (Instant::now(), response.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    project_device(&primary, other).await;
    let projected = Instant::now();
    let (answered, device) = waiting.await.unwrap();
    assert_eq!(device["version"], 1, "{device}");
    let woke = answered.duration_since(projected);
    assert!(
        woke < Duration::from_secs(1),
        "woke {woke:?} after the projection's commit"
    );
}
