//! Rebuilding the device read model while the system is in use: registrations keep coming,
//! the worker keeps projecting, readers keep reading. No read fails, no device is ever seen
//! at an older version than before, and afterwards the read model matches the event store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use projections::{registered_named, ProjectionRebuild, RebuildOutcome, DEVICE_VIEW};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack};

const PATIENCE: Duration = Duration::from_secs(60);

fn device_view_rebuild(pool: &sqlx::PgPool) -> ProjectionRebuild {
    registered_named(DEVICE_VIEW).unwrap().rebuild(pool.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_fails_no_read_goes_back_in_no_time_and_verifies_clean() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let stack = Arc::new(stack);
    // History to rebuild from.
    let mut seeded = Vec::new();
    for _ in 0..150 {
        seeded.push(stack.register(&registration(&unique_serial())).await);
    }
    stack
        .wait_for_status(*seeded.last().unwrap(), "provisioned", PATIENCE)
        .await;

    let visible: Arc<Mutex<Vec<Uuid>>> = Arc::new(Mutex::new(seeded.clone()));
    let registered: Arc<Mutex<Vec<Uuid>>> = Arc::new(Mutex::new(seeded));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));

    let writer = tokio::spawn({
        let (stack, registered, stop) = (stack.clone(), registered.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let id = stack.register(&registration(&unique_serial())).await;
                registered.lock().unwrap().push(id);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let mut readers = Vec::new();
    for reader in 0..2 {
        let (stack, visible, stop, reads, failures) = (
            stack.clone(),
            visible.clone(),
            stop.clone(),
            reads.clone(),
            failures.clone(),
        );
        readers.push(tokio::spawn(async move {
            let token = stack.reader();
            let mut last_seen: HashMap<Uuid, u64> = HashMap::new();
            let mut i = reader;
            while !stop.load(Ordering::Relaxed) {
                let id = {
                    let visible = visible.lock().unwrap();
                    visible[i % visible.len()]
                };
                i += 7;
                let response = stack.get(&format!("/v1/devices/{id}"), &token).await;
                reads.fetch_add(1, Ordering::Relaxed);
                if response.status() != 200 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("GET {id}: {}", response.status()));
                    continue;
                }
                let device: Value = response.json().await.unwrap();
                let version = device["version"].as_u64().unwrap();
                let before = last_seen.insert(id, version).unwrap_or(0);
                if version < before {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{id} went back from version {before} to {version}"));
                }
                let list = stack.get("/v1/devices?limit=20", &token).await;
                reads.fetch_add(1, Ordering::Relaxed);
                if list.status() != 200 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("list: {}", list.status()));
                }
            }
        }));
    }

    let reads_before = reads.load(Ordering::Relaxed);
    let outcome = device_view_rebuild(&stack.pool)
        .with_batch(40)
        .run("test-operator", |_| {})
        .await
        .unwrap();
    assert!(matches!(outcome, RebuildOutcome::Completed { events } if events >= 300));
    let reads_during = reads.load(Ordering::Relaxed) - reads_before;
    // Some more traffic on the swapped-in table, then stop the load.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(reads_during > 0, "the readers ran during the rebuild");

    // Everything registered during the rebuild is projected into the new table too.
    let registered = registered.lock().unwrap().clone();
    for id in registered.iter().rev().take(5) {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    stack.assert_read_model_matches_events().await;
    let report = registered_named(DEVICE_VIEW)
        .unwrap()
        .verify(&stack.pool)
        .await
        .unwrap();
    assert_eq!(report.devices as usize, registered.len());
}

/// While a rebuild builds the shadow's indexes (slow here: an index whose expression takes
/// 0.1 s a row), events keep flowing: a device registered meanwhile is published, provisioned
/// and projected before the index build ends. A build that held a transaction id would hold
/// back the commit-order horizon, and the relay would publish nothing until it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_flowing_while_a_rebuild_builds_its_indexes() {
    let mut stack = Stack::start().await;
    // Small projector batches: every row written costs the slow index's 0.1 s (twice for an
    // update), and a batch of many rows would outlast the statement timeout (5 s) on a busy
    // machine and be redelivered whole, again and again.
    stack.spawn_worker_with_env(&[("PROJECTOR_BATCH_SIZE", "8".to_owned())]);
    testkit::slow_device_view_index(&stack.pool, 0.1).await;
    let mut seeded = Vec::new();
    for _ in 0..50 {
        seeded.push(stack.register(&registration(&unique_serial())).await);
    }
    // Seeding is set-up, not the behaviour under test: every row costs the slow index's
    // 0.2 s, and beside the other pipeline tests on two cores that can outlast PATIENCE.
    for id in &seeded {
        stack
            .wait_for_status(*id, "provisioned", 3 * PATIENCE)
            .await;
    }

    let rebuild = tokio::spawn({
        let pool = stack.pool.clone();
        async move {
            device_view_rebuild(&pool)
                .run("test-operator", |_| {})
                .await
        }
    });
    let building = || testkit::slow_index_build_running(&stack.pool);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !building().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the index build never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let during = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(during, "provisioned", PATIENCE).await;
    assert!(
        building().await,
        "the device was provisioned only after the index build ended"
    );

    let outcome = rebuild.await.unwrap().unwrap();
    assert!(
        matches!(outcome, RebuildOutcome::Completed { .. }),
        "{outcome:?}"
    );
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}
