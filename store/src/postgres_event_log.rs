//! `app::EventLog` on Postgres: a tenant's events in gap-safe commit order, a device's
//! history (whole or a page), and the per-device reads projectors use to fill a gap.

use std::sync::LazyLock;

use app::{CommitPosition, EventLog, RecordedEvent, StoreError};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::{Device, DeviceId, TenantId};
use sqlx::{PgConnection, PgPool};

use crate::recorded_event_row::{self, unavailable, COLUMNS};

pub struct PostgresEventLog {
    pool: PgPool,
}

impl PostgresEventLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Only rows of transactions below the snapshot's xmin: every such transaction has ended, so
/// no row can still appear before the last one returned (see the event store migration).
fn tenant_feed_sql(with_type: bool) -> String {
    format!(
        "SELECT {COLUMNS} FROM events
          WHERE tenant = $1
            AND (transaction_id, position) > ($2::text::xid8, $3)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            {}
          ORDER BY transaction_id, position
          LIMIT $4",
        if with_type { "AND event_type = $5" } else { "" }
    )
}

#[async_trait]
impl EventLog for PostgresEventLog {
    async fn tenant_events_after(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Built once each: the SQL text is the same for every page.
        static ALL_TYPES: LazyLock<String> = LazyLock::new(|| tenant_feed_sql(false));
        static ONE_TYPE: LazyLock<String> = LazyLock::new(|| tenant_feed_sql(true));
        let sql = if event_type.is_some() {
            &ONE_TYPE
        } else {
            &ALL_TYPES
        };
        let mut query = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(limit as i64);
        if let Some(event_type) = event_type {
            query = query.bind(event_type);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter().map(recorded_event_row::decode).collect()
    }

    async fn device_history(&self, id: DeviceId) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        device_events_between(&mut conn, id, 0, u64::MAX).await
    }

    async fn device_events_after(
        &self,
        id: DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // The primary key (aggregate type, aggregate id, sequence) serves it: a page costs
        // its size, wherever it starts.
        static SELECT_DEVICE_EVENTS_PAGE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {COLUMNS} FROM events
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
                  ORDER BY sequence
                  LIMIT $4"
            )
        });
        let rows = sqlx::query(&SELECT_DEVICE_EVENTS_PAGE)
            .bind(Device::TYPE)
            .bind(id.to_string())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(recorded_event_row::decode).collect()
    }
}

/// The device's events with `after < sequence <= up_to`, oldest first.
pub async fn device_events_between(
    conn: &mut PgConnection,
    id: DeviceId,
    after: u64,
    up_to: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if after >= up_to {
        return Ok(Vec::new());
    }
    // One device's events in commit order are its events in sequence order.
    device_events_in_ranges(conn, &[(id, after + 1, up_to)]).await
}

/// Every event of the given devices, grouped by device, each device's oldest first.
pub async fn events_of_devices(
    conn: &mut PgConnection,
    ids: &[DeviceId],
) -> Result<Vec<RecordedEvent>, StoreError> {
    static SELECT_DEVICES_EVENTS: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM events
              WHERE aggregate_type = $1 AND aggregate_id = ANY($2)
              ORDER BY aggregate_id, sequence"
        )
    });
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows = sqlx::query(&SELECT_DEVICES_EVENTS)
        .bind(Device::TYPE)
        .bind(ids)
        .fetch_all(conn)
        .await
        .map_err(unavailable)?;
    rows.iter().map(recorded_event_row::decode).collect()
}

/// The devices with an event committed after `after`, or recorded at or after `since`.
pub async fn devices_changed_since(
    conn: &mut PgConnection,
    after: Option<CommitPosition>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Vec<DeviceId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events
          WHERE aggregate_type = $1
            AND ($2::text IS NULL OR (transaction_id, position) > ($2::text::xid8, $3))
            AND ($4::timestamptz IS NULL OR recorded_at >= $4)",
    )
    .bind(Device::TYPE)
    .bind(after.map(|p| p.transaction_id.to_string()))
    .bind(after.map_or(0, |p| p.position))
    .bind(since)
    .fetch_all(conn)
    .await
    .map_err(unavailable)?;
    ids.iter()
        .map(|id| {
            uuid::Uuid::parse_str(id)
                .map(DeviceId::from_uuid)
                .map_err(|_| StoreError::Corrupt(format!("event of aggregate {id:?}").into()))
        })
        .collect()
}

/// The events of each `(device, first, last)` range (sequences `first..=last`), in commit
/// order. Projectors use it to turn the notifications they receive into the facts they fold.
pub async fn device_events_in_ranges(
    conn: &mut PgConnection,
    ranges: &[(DeviceId, u64, u64)],
) -> Result<Vec<RecordedEvent>, StoreError> {
    static SELECT_RANGES: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM events
               JOIN unnest($2::text[], $3::bigint[], $4::bigint[]) AS wanted(aggregate, low, high)
                 ON aggregate_id = wanted.aggregate AND sequence BETWEEN wanted.low AND wanted.high
              WHERE aggregate_type = $1
              ORDER BY transaction_id, position"
        )
    });
    let sequence = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    let rows = sqlx::query(&SELECT_RANGES)
        .bind(Device::TYPE)
        .bind(ranges.iter().map(|r| r.0.to_string()).collect::<Vec<_>>())
        .bind(ranges.iter().map(|r| sequence(r.1)).collect::<Vec<_>>())
        .bind(ranges.iter().map(|r| sequence(r.2)).collect::<Vec<_>>())
        .fetch_all(conn)
        .await
        .map_err(unavailable)?;
    rows.iter().map(recorded_event_row::decode).collect()
}
