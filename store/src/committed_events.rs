//! Reading every tenant's device events in commit order, gap-safely: the relay and projection
//! rebuilds both use it. Another aggregate's events are skipped (selected out): the relay
//! publishes device events only, and the read models fold only them (ARCHITECTURE.md,
//! "Aggregates other than devices").
//!
//! Rows come ordered by `(transaction_id, position)`; only the prefix written by transactions
//! older than every transaction still open (`pg_snapshot_xmin`) is returned, so a transaction
//! that commits late can never land behind a reader's checkpoint.

use std::sync::LazyLock;

use app::{CommitPosition, RecordedEvent, StoreError};
use cqrs_es::Aggregate;
use domain::Device;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::recorded_event_row::{self, unavailable, COLUMNS};

static SELECT_AFTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AS settled
           FROM events
          WHERE (transaction_id, position) > ($1::text::xid8, $2)
            AND aggregate_type = $4
          ORDER BY transaction_id, position
          LIMIT $3"
    )
});

pub struct CommittedBatch {
    pub events: Vec<RecordedEvent>,
    /// Events exist after `events` that are not yet safe to read past (an older transaction is
    /// still open). Worth asking again soon rather than waiting for a notification.
    pub held_back: bool,
}

/// Up to `limit` settled events after `after`, in commit order.
pub async fn committed_events_after(
    conn: &mut PgConnection,
    after: CommitPosition,
    limit: usize,
) -> Result<CommittedBatch, StoreError> {
    let rows = rows_after(conn, after, limit).await?;
    let mut events = Vec::with_capacity(rows.len());
    let mut held_back = false;
    for row in &rows {
        let settled: bool = row.try_get("settled").map_err(unavailable)?;
        if !settled {
            held_back = true;
            break;
        }
        events.push(recorded_event_row::decode(row)?);
    }
    Ok(CommittedBatch { events, held_back })
}

/// Up to `limit` events after `after` in commit order, settled or not: every committed event
/// this transaction sees. Only for a reader that holds a lock keeping its target's other
/// writers out (a rebuild's swap), so that what commits later reaches the target through them.
pub async fn visible_events_after(
    conn: &mut PgConnection,
    after: CommitPosition,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = rows_after(conn, after, limit).await?;
    rows.iter().map(recorded_event_row::decode).collect()
}

async fn rows_after(
    conn: &mut PgConnection,
    after: CommitPosition,
    limit: usize,
) -> Result<Vec<PgRow>, StoreError> {
    sqlx::query(&SELECT_AFTER)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit as i64)
        .bind(Device::TYPE)
        .fetch_all(conn)
        .await
        .map_err(unavailable)
}
