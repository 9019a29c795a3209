//! `device_stats` fills itself from the event store once, and an interrupted fill resumes
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
