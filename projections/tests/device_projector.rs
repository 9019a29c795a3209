//! The device projector against a real Postgres: idempotent, gap-filling, checkpointed.

mod provisioned_devices;

use app::EventEnvelope;
use domain::DeviceId;
use projections::DEVICE_VIEW;
use provisioned_devices::{projector, provisioned_device};
use sqlx::PgPool;

async fn row(pool: &PgPool, id: DeviceId) -> Option<(String, i64)> {
    sqlx::query_as("SELECT status, version FROM device_view WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_gap_is_filled_from_the_event_store_and_old_events_change_nothing() {
    let (_, pool) = testkit::migrated_database().await;
    let events = provisioned_device(&pool).await;
    let id = events[0].subject;
    let projector = projector(&pool, DEVICE_VIEW);

    // Event 2 arrives first: event 1 is read from the store, then both are applied.
    let report = projector.apply(&events[1..]).await.unwrap();
    assert_eq!((report.applied, report.gap_filled), (1, 1));
    assert_eq!(row(&pool, id).await, Some(("provisioned".into(), 2)));

    // Event 1 arriving late, and the whole history again: nothing moves back.
    let report = projector.apply(&events[..1]).await.unwrap();
    assert_eq!((report.applied, report.skipped), (0, 1));
    let report = projector.apply(&events).await.unwrap();
    assert_eq!((report.applied, report.skipped), (0, 2));
    assert_eq!(row(&pool, id).await, Some(("provisioned".into(), 2)));

    let (applied, position): (i64, i64) = sqlx::query_as(
        "SELECT events_applied, position FROM projection_checkpoints WHERE projection = 'device_view'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(applied, 2);
    let last = app::CommitPosition::from_cursor(&events[1].position).unwrap();
    assert_eq!(
        position, last.position,
        "the checkpoint is the furthest event"
    );
}

#[tokio::test]
async fn concurrent_projectors_converge_on_the_latest_version() {
    let (_, pool) = testkit::migrated_database().await;
    let mut devices = Vec::new();
    for _ in 0..10 {
        devices.push(provisioned_device(&pool).await);
    }
    let all: Vec<EventEnvelope> = devices.iter().flatten().cloned().collect();
    // Two projector processes get the stream interleaved and out of order.
    let (first, second) = (projector(&pool, DEVICE_VIEW), projector(&pool, DEVICE_VIEW));
    let reversed: Vec<EventEnvelope> = all.iter().rev().cloned().collect();
    let (a, b) = tokio::join!(first.apply(&all), second.apply(&reversed));
    a.unwrap();
    b.unwrap();
    for events in &devices {
        assert_eq!(
            row(&pool, events[0].subject).await,
            Some(("provisioned".into(), 2))
        );
    }
}
