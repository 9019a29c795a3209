//! Readers of all events (the analysts' feed, the relay) page in commit order: by transaction
//! id as a number, then position. A regression once ordered by the id's text, where "1000"
//! sorts before "999", which made a page boundary skip events.

use app::{CommitPosition, EventLog};
use domain::{DecommissionReason, DeviceEvent, DeviceId, TenantId};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use store::{PostgresEventLog, RelayLeases};

/// Events committed by "transactions" 9, 10, 999 and 1000 (all long finished), inserted in
/// an order that differs from both numeric and text order.
async fn events_across_digit_boundaries(pool: &PgPool) -> Vec<u64> {
    let xids = [1000u64, 9, 999, 10];
    for (i, xid) in xids.iter().enumerate() {
        let event = DeviceEvent::DeviceDecommissioned {
            reason: DecommissionReason::parse("test").unwrap(),
        };
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata, transaction_id)
             VALUES ('device', $1, 1, 'DeviceDecommissioned', '1', $2, $3, $4::text::xid8)",
        )
        .bind(DeviceId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1)).to_string())
        .bind(serde_json::to_value(&event).unwrap())
        .bind(serde_json::json!({"tenant": "acme"}))
        .bind(xid.to_string())
        .execute(pool)
        .await
        .unwrap();
    }
    vec![9, 10, 999, 1000]
}

#[tokio::test]
async fn the_feed_pages_by_numeric_transaction_order() {
    let (_, pool) = testkit::migrated_database().await;
    let expected = events_across_digit_boundaries(&pool).await;
    let log = PostgresEventLog::new(pool.clone());
    let tenant = TenantId::parse("acme").unwrap();

    let mut seen = Vec::new();
    let mut after = CommitPosition::START;
    loop {
        let page = log
            .tenant_events_after(&tenant, after, 1, None)
            .await
            .unwrap();
        let Some(event) = page.events.first() else {
            break;
        };
        seen.push(event.position.transaction_id);
        after = event.position;
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_relay_reads_by_numeric_transaction_order() {
    let (url, pool) = testkit::migrated_database().await;
    let expected = events_across_digit_boundaries(&pool).await;
    let options: PgConnectOptions = url.parse().unwrap();
    let mut lease = RelayLeases::new(options, "test")
        .try_acquire()
        .await
        .unwrap()
        .expect("no other relay");

    let mut seen = Vec::new();
    let mut after = CommitPosition::START;
    loop {
        let batch = lease.committed_after(after, 1).await.unwrap();
        let Some(event) = batch.events.first() else {
            break;
        };
        seen.push(event.position.transaction_id);
        after = event.position;
    }
    assert_eq!(seen, expected);
}
