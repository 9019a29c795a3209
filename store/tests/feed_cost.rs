//! The analysts' feed costs what it returns: a read filtered by event type examines the
//! events it returns, not the tenant's history of other types, and its cursor moves past
//! the events it considered, so the next read (a poll, a long-poll woken by an append, a
//! live tail) does not consider them again.
//!
//! Rows examined are counted by Postgres itself (`pg_stat_user_tables`: rows read by
//! sequential scans and fetched by index scans), on a connection of the test's own, flushed
//! before each count; autovacuum is off on the table so that nothing else reads it.

use app::{CommitPosition, EventLog};
use domain::{DecommissionReason, DeviceEvent, DeviceId, TenantId};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use store::PostgresEventLog;

/// `count` events of `event_type` for `tenant`, in transactions of 500.
async fn events_of_one_type(pool: &PgPool, tenant: &str, count: usize) {
    let payload = serde_json::to_value(DeviceEvent::DeviceDecommissioned {
        reason: DecommissionReason::parse("test").unwrap(),
    })
    .unwrap();
    let ids: Vec<String> = (0..count)
        .map(|_| DeviceId::from_uuid(uuid::Uuid::new_v4()).to_string())
        .collect();
    for chunk in ids.chunks(500) {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata)
             SELECT 'device', id, 1, 'DeviceDecommissioned', '1', $2, $3 FROM unnest($1::text[]) AS id",
        )
        .bind(chunk)
        .bind(&payload)
        .bind(serde_json::json!({"tenant": tenant}))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Rows of `events` read by sequential scans and fetched by index scans so far, counting
/// everything this connection did (its statistics are flushed first).
async fn rows_examined(reader: &PgPool) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(reader)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
           FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .fetch_one(reader)
    .await
    .unwrap()
}

/// The position of the tenant's last event.
async fn last_position(pool: &PgPool, tenant: &str) -> CommitPosition {
    let (transaction_id, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, position FROM events WHERE tenant = $1
          ORDER BY transaction_id DESC, position DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap();
    CommitPosition {
        transaction_id: transaction_id.parse().unwrap(),
        position,
    }
}

#[tokio::test]
async fn a_read_filtered_by_a_type_the_tenant_lacks_examines_nothing_of_its_history() {
    let (url, pool) = testkit::migrated_database().await;
    sqlx::query("ALTER TABLE events SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .unwrap();
    events_of_one_type(&pool, "acme", 2_000).await;
    events_of_one_type(&pool, "globex", 500).await;
    let reader = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let log = PostgresEventLog::new(reader.clone());
    let acme = TenantId::parse("acme").unwrap();

    let before = rows_examined(&reader).await;
    let read = log
        .tenant_events_after(&acme, CommitPosition::START, 100, Some("CertificateIssued"))
        .await
        .unwrap();
    let examined = rows_examined(&reader).await - before;

    assert!(
        examined <= 101,
        "an empty page of 100 examined {examined} rows of the tenant's 2,000 other events"
    );
    assert!(read.events.is_empty());
    assert_eq!(
        read.next,
        last_position(&pool, "acme").await,
        "the cursor moves past the 2,000 events of another type the read passed over"
    );

    // The next read (a poll, or a waiter woken by an append) starts there: nothing again.
    let before = rows_examined(&reader).await;
    let again = log
        .tenant_events_after(&acme, read.next, 100, Some("CertificateIssued"))
        .await
        .unwrap();
    let examined = rows_examined(&reader).await - before;
    assert!(
        examined <= 1,
        "a read from the moved cursor examined {examined} rows"
    );
    assert!(again.events.is_empty());
    assert_eq!(again.next, read.next, "nothing new: the same cursor");
}

#[tokio::test]
async fn a_page_of_a_type_examines_about_its_size_and_continues_after_its_last_event() {
    let (url, pool) = testkit::migrated_database().await;
    sqlx::query("ALTER TABLE events SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .unwrap();
    events_of_one_type(&pool, "acme", 2_000).await;
    let reader = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let log = PostgresEventLog::new(reader.clone());
    let acme = TenantId::parse("acme").unwrap();

    let before = rows_examined(&reader).await;
    let page = log
        .tenant_events_after(
            &acme,
            CommitPosition::START,
            100,
            Some("DeviceDecommissioned"),
        )
        .await
        .unwrap();
    let examined = rows_examined(&reader).await - before;

    assert_eq!(page.events.len(), 100);
    assert!(examined <= 101, "a page of 100 examined {examined} rows");
    assert_eq!(
        page.next,
        page.events.last().unwrap().position,
        "a full page continues after its last event"
    );
    let all = log
        .tenant_events_after(&acme, CommitPosition::START, 2_000, None)
        .await
        .unwrap();
    assert_eq!(all.events.len(), 2_000);
    assert_eq!(all.next, last_position(&pool, "acme").await);
}
