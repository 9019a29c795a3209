//! `app::EventLog` on Postgres: a tenant's events in gap-safe commit order, a device's
//! history (whole or a page), and the per-device reads projectors use to fill a gap. Device
//! events only: every query selects `aggregate_type = 'device'`, so another aggregate's
//! events in the table are invisible here (`recorded_event_row`).

use std::sync::LazyLock;

use app::{CommitPosition, EventLog, RecordedEvent, StoreError, TenantEvents};
use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::{Device, DeviceId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

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
/// Served by `events_tenant_commit_order`: a page costs its size. Only device events (`$5`):
/// the feed's envelope describes a device's event, and another aggregate's events are not in
/// the feed (ARCHITECTURE.md, "Aggregates other than devices").
static ALL_TYPES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM events
          WHERE tenant = $1
            AND (transaction_id, position) > ($2::text::xid8, $3)
            AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            AND aggregate_type = $5
          ORDER BY transaction_id, position
          LIMIT $4"
    )
});

/// One type's page, and where the next read starts, in one statement (so one snapshot, one
/// horizon): `considered` is the tenant's last event after the cursor below the horizon, of
/// any type (one entry of `events_tenant_commit_order`, read backwards); `page` the events of
/// the type (`events_tenant_type_commit_order`: only rows of the type are examined). Every
/// event up to `considered` was either returned or is of another type, so, unless the page
/// is full, the next read starts past it. No row when the tenant has nothing after the
/// cursor; one row of NULL event columns when it has only other types. The page holds device
/// events only (`$6`); `considered` may be another aggregate's event, which the feed never
/// shows either, so moving past it is right.
static ONE_TYPE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT considered.considered_transaction_id, considered.considered_position, page.*
           FROM (SELECT transaction_id::text AS considered_transaction_id,
                        position AS considered_position
                   FROM events
                  WHERE tenant = $1
                    AND (transaction_id, position) > ($2::text::xid8, $3)
                    AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                  ORDER BY transaction_id DESC, position DESC
                  LIMIT 1) AS considered
           LEFT JOIN (SELECT {COLUMNS}, transaction_id AS commit_order
                        FROM events
                       WHERE tenant = $1 AND event_type = $5
                         AND (transaction_id, position) > ($2::text::xid8, $3)
                         AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                         AND aggregate_type = $6
                       ORDER BY transaction_id, position
                       LIMIT $4) AS page ON true
          ORDER BY page.commit_order, page.position"
    )
});

#[async_trait]
impl EventLog for PostgresEventLog {
    async fn tenant_events_after(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
    ) -> Result<TenantEvents, StoreError> {
        let limit_param = i64::try_from(limit).unwrap_or(i64::MAX);
        let Some(event_type) = event_type else {
            let rows = sqlx::query(&ALL_TYPES)
                .bind(tenant.as_str())
                .bind(after.transaction_id.to_string())
                .bind(after.position)
                .bind(limit_param)
                .bind(Device::TYPE)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            let events = rows
                .iter()
                .map(recorded_event_row::decode)
                .collect::<Result<Vec<_>, _>>()?;
            let next = events.last().map_or(after, |e| e.position);
            return Ok(TenantEvents { events, next });
        };
        let rows = sqlx::query(&ONE_TYPE)
            .bind(tenant.as_str())
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(limit_param)
            .bind(event_type)
            .bind(Device::TYPE)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let Some(first) = rows.first() else {
            return Ok(TenantEvents {
                events: Vec::new(),
                next: after,
            });
        };
        let considered = considered_position(first)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            // The NULL row of a page with no event of the type.
            let is_event = row
                .try_get::<Option<i64>, _>("position")
                .map_err(unavailable)?
                .is_some();
            if is_event {
                events.push(recorded_event_row::decode(row)?);
            }
        }
        let next = match events.last() {
            // A full page: events of the type may follow, so not past them.
            Some(last) if events.len() >= limit => last.position,
            _ => considered.max(after),
        };
        Ok(TenantEvents { events, next })
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

/// The tenant's last event a filtered read considered ([`ONE_TYPE`]'s first two columns).
fn considered_position(row: &PgRow) -> Result<CommitPosition, StoreError> {
    let transaction_id: String = row
        .try_get("considered_transaction_id")
        .map_err(unavailable)?;
    let position: i64 = row.try_get("considered_position").map_err(unavailable)?;
    Ok(CommitPosition {
        transaction_id: transaction_id.parse().map_err(|_| {
            StoreError::Corrupt(format!("transaction id {transaction_id:?}").into())
        })?,
        position,
    })
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
