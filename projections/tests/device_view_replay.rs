//! Replaying `device_view` from a point repairs exactly the devices that changed after it.

mod provisioned_devices;

use app::CommitPosition;
use projections::{ReplayFrom, DEVICE_VIEW};
use provisioned_devices::{projector, provisioned_device, read_model};
use sqlx::PgPool;

async fn models(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT model FROM device_view ORDER BY created_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replay_from_a_position_repairs_only_what_changed_after_it() {
    let (_, pool) = testkit::migrated_database().await;
    let mut events = provisioned_device(&pool).await;
    events.extend(provisioned_device(&pool).await);
    let before_third = CommitPosition::from_cursor(&events.last().unwrap().position).unwrap();
    events.extend(provisioned_device(&pool).await);
    projector(&pool, DEVICE_VIEW).apply(&events).await.unwrap();
    sqlx::query("UPDATE device_view SET model = 'damaged'")
        .execute(&pool)
        .await
        .unwrap();

    let report = read_model(DEVICE_VIEW)
        .replay(&pool, ReplayFrom::Position(before_third))
        .await
        .unwrap();
    assert_eq!((report.devices, report.events), (1, 2));
    assert_eq!(models(&pool).await, ["damaged", "damaged", "Gateway X1"]);

    let since_the_start: ReplayFrom = "2000-01-01T00:00:00Z".parse().unwrap();
    let report = read_model(DEVICE_VIEW)
        .replay(&pool, since_the_start)
        .await
        .unwrap();
    assert_eq!((report.devices, report.events), (3, 6));
    assert_eq!(models(&pool).await, ["Gateway X1"; 3]);
    assert!(read_model(DEVICE_VIEW)
        .verify(&pool)
        .await
        .unwrap()
        .differences
        .is_empty());
}

#[test]
fn a_replay_point_is_a_time_or_a_position() {
    assert!(matches!(
        "2026-11-25T10:00:00+01:00".parse::<ReplayFrom>(),
        Ok(ReplayFrom::Time(_))
    ));
    let cursor = CommitPosition {
        transaction_id: 7,
        position: 9,
    }
    .to_cursor();
    assert_eq!(
        cursor.parse::<ReplayFrom>(),
        Ok(ReplayFrom::Position(CommitPosition {
            transaction_id: 7,
            position: 9
        }))
    );
    assert!("yesterday".parse::<ReplayFrom>().is_err());
}
