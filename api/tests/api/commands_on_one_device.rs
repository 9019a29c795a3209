//! Many clients, one device: optimistic concurrency must neither lose an update nor fail
//! with a server error; conflicts are retried, then answered 409 with "retry".

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn fifty_concurrent_renewals_lose_no_update() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;

    let keys: Vec<String> = (0..50).map(|_| new_key()).collect();
    let responses = futures::future::join_all(keys.iter().map(|key| app.renew(id, key))).await;

    let mut accepted_versions = BTreeSet::new();
    let mut retry_later = 0;
    for response in responses {
        match response.status().as_u16() {
            202 => {
                let body: Value = response.json().await.unwrap();
                assert!(
                    accepted_versions.insert(body["version"].as_u64().unwrap()),
                    "versions are unique"
                );
            }
            409 => {
                assert_problem(response, 409, "concurrent-modification").await;
                retry_later += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_id = $1 AND event_type = 'CertificateRenewalRequested' ORDER BY sequence",
    )
    .bind(id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let stored: BTreeSet<u64> = stored.into_iter().map(|s| s as u64).collect();
    assert_eq!(
        stored, accepted_versions,
        "every 202 is one stored event, and nothing else is"
    );
    assert_eq!(accepted_versions.len() + retry_later, 50);
    assert!(
        accepted_versions.len() >= 25,
        "most renewals get through: {}",
        accepted_versions.len()
    );
}

#[tokio::test]
async fn fifty_concurrent_decommissions_decommission_once() {
    let app = spawn_app().await;
    let id = app.registered_device().await;

    let (token, keys): (String, Vec<String>) = (app.writer(), (0..50).map(|_| new_key()).collect());
    let responses =
        futures::future::join_all(keys.iter().map(|key| app.decommission(id, &token, key))).await;

    let mut accepted = 0;
    for response in responses {
        match response.status().as_u16() {
            202 => accepted += 1,
            409 => {
                let body: Value = response.json().await.unwrap();
                let kind = body["type"].as_str().unwrap();
                assert!(
                    kind == "/problems/device-decommissioned"
                        || kind == "/problems/concurrent-modification",
                    "{body}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(
        app.event_types(id).await,
        ["DeviceRegistered", "DeviceDecommissioned"]
    );
}
