//! Waiting long-polls are bounded per tenant (`LONG_POLL_MAX_PER_TENANT`) and in all
//! (`LONG_POLL_MAX`): past a bound, 429 problem+json with `Retry-After` at once, while other
//! tenants, and requests that need not wait, are still served.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_tenant_cannot_hold_more_waiting_long_polls_than_its_limit_and_others_are_served() {
    let (url, pool) = migrated_database().await;
    let api = ApiProcess::start(
        &url,
        &[
            ("LONG_POLL_MAX_PER_TENANT", "2".into()),
            ("LONG_POLL_MAX", "3".into()),
        ],
    )
    .await;
    let keys = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes());
    let token = |tenant: &str| {
        keys.issue(
            "poller",
            tenant,
            "devices:write devices:read",
            Duration::from_secs(600),
        )
    };
    let client = reqwest::Client::new();
    let get = |tenant: &str, path: String| {
        let request = client
            .get(format!("{}{path}", api.base))
            .bearer_auth(token(tenant));
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            (response, started.elapsed())
        }
    };
    // Waits for a device that never appears: holds its slot for the whole wait.
    let wait_for_nothing = |seconds: u64| {
        format!(
            "/v1/devices/{}?min_version=1&wait={seconds}",
            Uuid::new_v4()
        )
    };

    // Another tenant's device, in the read model at version 1.
    let registered: Value = client
        .post(format!("{}/v1/devices", api.base))
        .bearer_auth(token(OTHER_TENANT))
        .header("Idempotency-Key", "\"k\"")
        .json(&registration(&unique_serial()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_device = registered["id"].as_str().unwrap().to_owned();
    project_device(&pool, other_device.parse().unwrap()).await;

    // The tenant's limit: two waiting.
    let waiting = [
        tokio::spawn(get(TENANT, wait_for_nothing(4))),
        tokio::spawn(get(TENANT, wait_for_nothing(4))),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (refused, took) = get(TENANT, wait_for_nothing(4)).await;
    assert!(
        took < Duration::from_secs(1),
        "answered at once, took {took:?}"
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem = assert_problem(refused, 429, "too-many-long-polls").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("tenant"),
        "{problem}"
    );
    // What need not wait is still answered.
    let (plain, _) = get(TENANT, format!("/v1/devices/{}", Uuid::new_v4())).await;
    assert_eq!(plain.status(), 404);

    // Another tenant may still wait (the third slot of all), and gets its device.
    let other = tokio::spawn(get(
        OTHER_TENANT,
        format!("/v1/devices/{other_device}?min_version=2&wait=1"),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // All three slots taken: a third tenant is refused too.
    let (refused, took) = get("initech", wait_for_nothing(1)).await;
    assert!(
        took < Duration::from_secs(1),
        "answered at once, took {took:?}"
    );
    assert_problem(refused, 429, "too-many-long-polls").await;

    let (served, took) = other.await.unwrap();
    assert_eq!(served.status(), 200);
    assert!(took >= Duration::from_secs(1), "it waited, {took:?}");
    assert_eq!(served.json::<Value>().await.unwrap()["version"], 1);

    // Slots come back when the waits end.
    for poll in waiting {
        let (response, took) = poll.await.unwrap();
        assert_eq!(response.status(), 404);
        assert!(took >= Duration::from_secs(4), "it waited, {took:?}");
    }
    let (again, took) = get(TENANT, wait_for_nothing(1)).await;
    assert_eq!(again.status(), 404);
    assert!(took >= Duration::from_secs(1), "it waited, {took:?}");
}
