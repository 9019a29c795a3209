//! `device_stats` gets verify and replay like every registered read model: damage to a
//! device's place in the counts (its member row and the counts it moved) is reported, a
//! replay from a point repairs it by the difference, and verify is clean again.

mod provisioned_devices;

use app::{CommitPosition, EventEnvelope};
use projections::{DifferenceKind, ReplayFrom, DEVICE_STATS};
use provisioned_devices::{projector, provisioned_device, read_model};
use sqlx::PgPool;

async fn counts(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, devices FROM device_stats ORDER BY status")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn damaged_counts_are_reported_by_verify_and_repaired_by_a_replay() {
    let (_, pool) = testkit::migrated_database().await;
    let mut events: Vec<EventEnvelope> = Vec::new();
    for _ in 0..2 {
        events.extend(provisioned_device(&pool).await);
    }
    let before_third = CommitPosition::from_cursor(&events.last().unwrap().position).unwrap();
    let third = provisioned_device(&pool).await;
    let damaged = third[0].subject.as_uuid();
    events.extend(third);
    projector(&pool, DEVICE_STATS).apply(&events).await.unwrap();
    let stats = read_model(DEVICE_STATS);
    assert!(stats.verify(&pool).await.unwrap().is_clean());
    assert_eq!(counts(&pool).await, [("provisioned".to_owned(), 3)]);

    // The third device is counted as failed, in its member row and in the counts.
    sqlx::raw_sql(&format!(
        "UPDATE device_stats_members SET status = 'failed' WHERE id = '{damaged}';
         UPDATE device_stats SET devices = 2 WHERE status = 'provisioned';
         INSERT INTO device_stats (tenant, model, status, devices)
              VALUES ('acme', 'Gateway X1', 'failed', 1);"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let report = stats.verify(&pool).await.unwrap();
    assert_eq!((report.devices, report.events), (3, 6));
    assert_eq!(report.differences.len(), 1, "{:?}", report.differences);
    assert_eq!(report.differences[0].device, damaged);
    assert_eq!(report.differences[0].kind, DifferenceKind::ContentDiffers);
    assert_eq!(report.differences[0].table, "device_stats_members");
    let mut rows: Vec<(&str, Option<&str>, Option<&str>)> = report
        .row_differences
        .iter()
        .map(|d| (d.table, d.live.as_deref(), d.rebuilt.as_deref()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("device_stats", Some("(acme,\"Gateway X1\",failed,1)"), None),
            (
                "device_stats",
                Some("(acme,\"Gateway X1\",provisioned,2)"),
                Some("(acme,\"Gateway X1\",provisioned,3)")
            ),
        ]
    );

    // A replay from before the third device folds only it again, and repairs it.
    let replayed = stats
        .replay(&pool, ReplayFrom::Position(before_third))
        .await
        .unwrap();
    assert_eq!(
        (replayed.devices, replayed.events, replayed.repaired),
        (1, 2, 1)
    );
    assert_eq!(counts(&pool).await, [("provisioned".to_owned(), 3)]);
    assert!(stats.verify(&pool).await.unwrap().is_clean());

    // Replaying what is right changes nothing.
    let since_the_start: ReplayFrom = "2000-01-01T00:00:00Z".parse().unwrap();
    let replayed = stats.replay(&pool, since_the_start).await.unwrap();
    assert_eq!(
        (replayed.devices, replayed.events, replayed.repaired),
        (3, 6, 0)
    );
    assert_eq!(counts(&pool).await, [("provisioned".to_owned(), 3)]);
}

/// A replay never moves a device back: a member at a newer version than its history gives
/// (the live projector got there after the replay read the events) is left alone.
#[tokio::test]
async fn a_replay_leaves_a_member_that_is_further_along_alone() {
    let (_, pool) = testkit::migrated_database().await;
    let events = provisioned_device(&pool).await;
    let id = events[0].subject.as_uuid();
    projector(&pool, DEVICE_STATS).apply(&events).await.unwrap();
    sqlx::query("UPDATE device_stats_members SET version = 9, status = 'decommissioned'")
        .execute(&pool)
        .await
        .unwrap();
    let since_the_start: ReplayFrom = "2000-01-01T00:00:00Z".parse().unwrap();
    let replayed = read_model(DEVICE_STATS)
        .replay(&pool, since_the_start)
        .await
        .unwrap();
    assert_eq!(replayed.repaired, 0);
    let (status, version): (String, i64) =
        sqlx::query_as("SELECT status, version FROM device_stats_members WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), version), ("decommissioned", 9));
}
