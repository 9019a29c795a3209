//! Postgres goes away under the real binary (every connection dropped, new ones refused, as
//! when it is killed) and comes back: `/readyz` turns 503 within 2 s naming it, commands get a
//! prompt 503 problem (bounded by DB_ACQUIRE_TIMEOUT_MS), and the api recovers by itself.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

const ACQUIRE_TIMEOUT_MS: u64 = 1_000;

// Multi-threaded: the proxy must keep running while the api process is stopped (a blocking
// wait) at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_postgres_dies_the_api_says_so_promptly_and_recovers_by_itself() {
    let (url, _) = migrated_database().await;
    let (mut postgres, via_proxy) = testkit::postgres_behind_proxy(&url).await;
    let api = ApiProcess::start(
        &via_proxy,
        &[
            ("DB_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT_MS.to_string()),
            ("NATS_URL", testkit::nats_url()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let token = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue(
        "client-7",
        TENANT,
        "devices:write",
        Duration::from_secs(600),
    );
    let register = || {
        client
            .post(format!("{}/v1/devices", api.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", new_key())
            .json(&registration(&unique_serial()))
            .send()
    };
    let readyz = || client.get(format!("{}/readyz", api.base)).send();
    assert_eq!(register().await.unwrap().status(), 202);
    assert_eq!(readyz().await.unwrap().status(), 200);

    postgres.cut();
    let cut_at = Instant::now();
    let not_ready: Value = loop {
        let response = readyz().await.unwrap();
        if response.status() == 503 {
            break response.json().await.unwrap();
        }
        assert!(cut_at.elapsed() < Duration::from_secs(2), "still ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(cut_at.elapsed() < Duration::from_secs(2));
    assert_eq!(not_ready["status"], "unavailable");
    assert_ne!(not_ready["checks"]["postgres"], "ok");
    assert_eq!(not_ready["checks"]["nats"], "ok");

    for _ in 0..3 {
        let started = Instant::now();
        let response = register().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(
            started.elapsed() < Duration::from_millis(ACQUIRE_TIMEOUT_MS + 1_000),
            "answered in {:?}",
            started.elapsed()
        );
    }

    postgres.restore().await;
    let restored_at = Instant::now();
    loop {
        if readyz().await.unwrap().status() == 200 && register().await.unwrap().status() == 202 {
            break;
        }
        assert!(
            restored_at.elapsed() < Duration::from_secs(10),
            "the api did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
