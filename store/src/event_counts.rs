//! Counting events, for readers that report how far they are: a projection's lag behind the
//! store (its status) and a rebuild's total. The one place these reads of `events` live, so
//! that `projections` reads events only through this crate. Device events only, as the read
//! models fold only them (ARCHITECTURE.md, "Aggregates other than devices"): another
//! aggregate's events would otherwise be a lag no projector can ever work off.

use app::{CommitPosition, StoreError};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::Device;
use sqlx::{PgConnection, PgPool, Row};

use crate::recorded_event_row::unavailable;

const SELECT_BACKLOG_AFTER: &str = "
SELECT count(*) AS events, min(recorded_at) AS oldest FROM events
 WHERE (transaction_id, position) > ($1::text::xid8, $2) AND aggregate_type = $3";

const COUNT_EVENTS: &str = "SELECT count(*) FROM events WHERE aggregate_type = $1";

/// The device events after a commit-order position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBacklog {
    pub events: u64,
    /// When the oldest of them was recorded; `None` when there are none.
    pub oldest_recorded_at: Option<DateTime<Utc>>,
}

/// The device events committed after `after`, and when the oldest was recorded.
pub async fn backlog_after(
    pool: &PgPool,
    after: CommitPosition,
) -> Result<EventBacklog, StoreError> {
    let row = sqlx::query(SELECT_BACKLOG_AFTER)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(Device::TYPE)
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    let events: i64 = row.try_get("events").map_err(unavailable)?;
    Ok(EventBacklog {
        events: events as u64,
        oldest_recorded_at: row.try_get("oldest").map_err(unavailable)?,
    })
}

/// Every device event in the store, counted on `conn` (under whatever statement timeout the caller
/// set on it: on a large store this is a long step).
pub async fn count_events(conn: &mut PgConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar(COUNT_EVENTS)
        .bind(Device::TYPE)
        .fetch_one(conn)
        .await
        .map_err(unavailable)
}
