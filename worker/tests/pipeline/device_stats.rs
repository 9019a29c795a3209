//! A read model added after the fact: `device_stats` counts devices per model and status. It
//! follows live events, and a worker starting on a store it has never counted fills it from
//! the event store's whole history, even when the stream no longer holds those events.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{csr_for, registration, unique_serial, Stack, OTHER_TENANT};

const PATIENCE: Duration = Duration::from_secs(60);

/// The tenant's counts as (status, devices), all for model "Gateway X1", with the total.
async fn stats(stack: &Stack) -> (u64, Vec<(String, u64)>) {
    let response = stack.get("/v1/stats", &stack.reader()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let counts = body["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["model"], "Gateway X1");
            (
                c["status"].as_str().unwrap().to_owned(),
                c["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    (body["total"].as_u64().unwrap(), counts)
}

/// Polls `/v1/stats` until it shows `expected` (the read model follows the events).
async fn wait_for_stats(stack: &Stack, expected: &[(&str, u64)]) {
    let expected: Vec<(String, u64)> = expected.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    let total: u64 = expected.iter().map(|(_, n)| n).sum();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let current = stats(stack).await;
        if current == (total, expected.clone()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stats {current:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn device_counts_follow_events_and_a_fresh_start_fills_them_from_history() {
    let mut stack = Stack::start().await;
    let first_worker = stack.spawn_worker();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(stack.register(&registration(&unique_serial())).await);
    }
    let mut mismatched = registration(&unique_serial());
    mismatched["csr"] = json!(csr_for("SOMEONE-ELSE"));
    let failed = stack.register(&mismatched).await;
    stack.wait_for_status(failed, "failed", PATIENCE).await;
    stack.wait_for_status(ids[0], "provisioned", PATIENCE).await;
    let decommissioned = stack
        .post(
            &format!("/v1/devices/{}/decommission", ids[0]),
            &json!({"reason": "returned"}),
        )
        .await;
    assert_eq!(decommissioned.status(), 202);

    let expected = [("decommissioned", 1), ("failed", 1), ("provisioned", 2)];
    wait_for_stats(&stack, &expected).await;
    let other = stack
        .get("/v1/stats", &stack.token(OTHER_TENANT, "devices:read"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(other, json!({"total": 0, "counts": []}));

    // As if the projection had just been added: no counts, no checkpoint, no backfill, no
    // consumer, and a stream that no longer holds the events (they exist only in Postgres).
    stack.kill_worker(first_worker);
    sqlx::raw_sql(
        "DELETE FROM device_stats; DELETE FROM device_stats_members;
         DELETE FROM projection_checkpoints WHERE projection = 'device_stats';
         DELETE FROM projection_backfills WHERE projection = 'device_stats';",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let client = async_nats::connect(&stack.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(&stack.stream).await.unwrap();
    stream
        .delete_consumer("projector-device_stats")
        .await
        .unwrap();
    stream.purge().await.unwrap();
    stack.spawn_worker();
    wait_for_stats(&stack, &expected).await;

    // And it keeps following.
    let next: Uuid = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(next, "provisioned", PATIENCE).await;
    let now = [("decommissioned", 1), ("failed", 1), ("provisioned", 3)];
    wait_for_stats(&stack, &now).await;

    // Damaged counts are repaired by a rebuild from the event store, like any read model's.
    sqlx::query("UPDATE device_stats SET devices = 99")
        .execute(&stack.pool)
        .await
        .unwrap();
    let rebuild = stack
        .client
        .post(stack.url("/admin/projections/device_stats/rebuild"))
        .bearer_auth(stack.operator_token("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebuild.status(), 202);
    wait_for_stats(&stack, &now).await;
    let next: Uuid = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(next, "provisioned", PATIENCE).await;
    let now = [("decommissioned", 1), ("failed", 1), ("provisioned", 4)];
    wait_for_stats(&stack, &now).await;

    // A device counted in the wrong place (its member row and the counts it moved) is
    // repaired by a replay from a point before its events, like any read model's.
    sqlx::raw_sql(&format!(
        "UPDATE device_stats_members SET status = 'failed' WHERE id = '{next}';
         UPDATE device_stats SET devices = devices - 1 WHERE status = 'provisioned';
         UPDATE device_stats SET devices = devices + 1 WHERE status = 'failed';"
    ))
    .execute(&stack.pool)
    .await
    .unwrap();
    wait_for_stats(
        &stack,
        &[("decommissioned", 1), ("failed", 2), ("provisioned", 3)],
    )
    .await;
    let replayed = projections::registered_named(projections::DEVICE_STATS)
        .unwrap()
        .replay(&stack.pool, "2000-01-01T00:00:00Z".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(replayed.repaired, 1, "{replayed:?}");
    wait_for_stats(&stack, &now).await;
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}
