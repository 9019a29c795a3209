//! A read model fills itself from the event store once, and an interrupted fill resumes
//! where it stopped: the counts end up those of a full fold.

mod provisioned_devices;

use app::{DeviceStatsReadModel, EventEnvelope};
use domain::TenantId;
use projections::{PostgresDeviceStats, DEVICE_STATS, DEVICE_VIEW};
use provisioned_devices::{projector, provisioned_device};
use sqlx::PgPool;

/// The counts a full fold gives: `device_view` (another read model, applied in one batch)
/// grouped the way `device_stats` counts.
async fn full_fold_counts(pool: &PgPool, events: &[EventEnvelope]) -> Vec<(String, String, i64)> {
    projector(pool, DEVICE_VIEW).apply(events).await.unwrap();
    sqlx::query_as(
        "SELECT model, status, count(*) FROM device_view GROUP BY model, status ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn stats_counts(pool: &PgPool) -> Vec<(String, String, i64)> {
    PostgresDeviceStats::new(pool.clone())
        .counts(&TenantId::parse("acme").unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.model, c.status.as_str().to_owned(), c.devices as i64))
        .collect()
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_and_counts_every_device() {
    let (_, pool) = testkit::migrated_database().await;
    let mut events = Vec::new();
    for _ in 0..12 {
        events.extend(provisioned_device(&pool).await);
    }
    // The fill is interrupted after its first batch (an error, or the worker stopped).
    sqlx::query(
        "CREATE FUNCTION interrupt_fill() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT 1 FROM device_stats_members) THEN RAISE EXCEPTION 'interrupted'; END IF;
           RETURN NULL;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER interrupt_fill BEFORE INSERT ON device_stats_members
         FOR EACH STATEMENT EXECUTE FUNCTION interrupt_fill()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let stats = projector(&pool, DEVICE_STATS).with_backfill_batch(6);
    let interrupted = stats.fill_from_history().await;
    assert!(
        interrupted.is_err(),
        "the second batch fails: {interrupted:?}"
    );
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM device_stats_members")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        members > 0 && members < 12,
        "interrupted part-way ({members}): {interrupted:?}"
    );

    // The worker starts again.
    sqlx::query("DROP TRIGGER interrupt_fill ON device_stats_members")
        .execute(&pool)
        .await
        .unwrap();
    let folded = stats.fill_from_history().await.unwrap();

    assert!(
        folded.is_some_and(|n| n > 0 && n < 24),
        "resumed, not restarted: {folded:?}"
    );
    assert_eq!(
        stats_counts(&pool).await,
        full_fold_counts(&pool, &events).await
    );
    assert_eq!(
        stats_counts(&pool).await,
        [("Gateway X1".to_owned(), "provisioned".to_owned(), 12)]
    );
    assert_eq!(
        stats.fill_from_history().await.unwrap(),
        None,
        "done once, never again"
    );
}

/// Every read model fills itself from history, `device_view` too; a deployment whose
/// `device_view` was live before that (it has a checkpoint) is marked filled by the
/// migration and does not fold the event store again.
#[tokio::test]
async fn device_view_fills_from_history_unless_it_was_live_before() {
    const MIGRATION: &str =
        include_str!("../../migrations/20261201000003_device_view_backfill.sql");
    let (_, pool) = testkit::migrated_database().await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.extend(provisioned_device(&pool).await);
    }
    let device_view = projector(&pool, DEVICE_VIEW);
    assert_eq!(device_view.fill_from_history().await.unwrap(), Some(6));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM device_view")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
    assert_eq!(device_view.fill_from_history().await.unwrap(), None);

    // Before this release: a live device_view (checkpointed), no backfill row.
    let (_, pool) = testkit::migrated_database().await;
    let mut events = Vec::new();
    for _ in 0..2 {
        events.extend(provisioned_device(&pool).await);
    }
    let device_view = projector(&pool, DEVICE_VIEW);
    device_view.apply(&events).await.unwrap();
    sqlx::query("DELETE FROM projection_backfills")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(MIGRATION).execute(&pool).await.unwrap();
    assert_eq!(
        device_view.fill_from_history().await.unwrap(),
        None,
        "marked filled at its checkpoint"
    );
    // device_stats had no checkpoint: it fills as before.
    assert_eq!(
        projector(&pool, DEVICE_STATS)
            .fill_from_history()
            .await
            .unwrap(),
        Some(4)
    );
}
