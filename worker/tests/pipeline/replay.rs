//! `worker replay`: one consumer gets the stream again from a point; the others do not.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack};

const PATIENCE: Duration = Duration::from_secs(60);

async fn rows(stack: &Stack) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM device_view ORDER BY created_at")
        .fetch_all(&stack.pool)
        .await
        .unwrap()
}

async fn wait_for_rows(stack: &Stack, expected: &[Uuid]) {
    let deadline = Instant::now() + PATIENCE;
    while rows(stack).await != expected {
        assert!(
            Instant::now() < deadline,
            "rows {:?}, expected {expected:?}",
            rows(stack).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_consumer_replays_from_a_position_or_a_time_and_the_others_do_not() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = stack.register(&registration(&unique_serial())).await;
        stack.wait_for_status(id, "provisioned", PATIENCE).await;
        ids.push(id);
    }
    let history: Value = stack
        .get(&format!("/v1/devices/{}/history", ids[0]), &stack.reader())
        .await
        .json()
        .await
        .unwrap();
    let after_first_device = history["events"][1]["position"]
        .as_str()
        .unwrap()
        .to_owned();
    let issued_before = stack.count_events("CertificateIssued").await;

    // The read model loses its rows; replaying its consumer after the first device's events
    // brings back the other two (events at or below a row's version would change nothing).
    sqlx::query("DELETE FROM device_view")
        .execute(&stack.pool)
        .await
        .unwrap();
    let output = stack.worker_command(&[
        "replay",
        "projector-device_view",
        "--from",
        &after_first_device,
    ]);
    assert!(output.status.success(), "{output:?}");
    wait_for_rows(&stack, &ids[1..]).await;

    let output = stack.worker_command(&[
        "replay",
        "projector-device_view",
        "--from",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(output.status.success(), "{output:?}");
    wait_for_rows(&stack, &ids).await;

    // An operator's shell has no CA variables and may have no $USER: the replay needs
    // neither, says what it did, and is on record with the operator's name.
    let output = stack.worker_operator_command(&[
        "replay",
        "projector-device_stats",
        "--from",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.starts_with("projector-device_stats: replaying from"),
        "{said}"
    );
    let recorded: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, action, target FROM operator_actions ORDER BY at")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    let (actor, action, target) = &recorded[2];
    assert_eq!(
        (action.as_str(), target.as_str()),
        ("replay", "consumer:projector-device_stats")
    );
    assert!(
        actor.starts_with("cli:") && actor != "cli:unknown",
        "{actor}"
    );

    // The provisioner consumers were not replayed: nothing was signed again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.count_events("CertificateIssued").await, issued_before);
    let unknown = stack.worker_command(&[
        "replay",
        "no-such-consumer",
        "--from",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(!unknown.status.success());
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}
