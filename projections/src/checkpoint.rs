//! A projection's checkpoint (`projection_checkpoints`): the furthest commit position its
//! live tables hold and how many events it has applied, moved forward in the transaction
//! of every live batch. The one place that writes or reads that table, and the one
//! definition of "the furthest position" of a batch.

use app::{CommitPosition, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};

use crate::bookkeeping_rows::{bind_position, decode_position, projection_row};
use crate::error::unavailable;
use crate::ProjectionError;

const ADVANCE_CHECKPOINT: &str = "
INSERT INTO projection_checkpoints AS p (projection, transaction_id, position, events_applied)
VALUES ($1, $2::text::xid8, $3, $4)
ON CONFLICT (projection) DO UPDATE
   SET transaction_id = CASE WHEN (excluded.transaction_id, excluded.position) > (p.transaction_id, p.position)
                             THEN excluded.transaction_id ELSE p.transaction_id END,
       position = CASE WHEN (excluded.transaction_id, excluded.position) > (p.transaction_id, p.position)
                       THEN excluded.position ELSE p.position END,
       events_applied = p.events_applied + excluded.events_applied,
       updated_at = now()";

/// Moves `projection`'s checkpoint forward to `position` (never back) and counts `applied`
/// events, in the caller's transaction.
pub(crate) async fn advance_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
    position: CommitPosition,
    applied: usize,
) -> Result<(), ProjectionError> {
    bind_position(sqlx::query(ADVANCE_CHECKPOINT).bind(projection), position)
        .bind(applied as i64)
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The furthest commit position among `events` (`None` when there are none): where a
/// checkpoint moves once they are folded. The greatest, whatever order the events come in.
pub(crate) fn furthest_position(events: &[RecordedEvent]) -> Option<CommitPosition> {
    events.iter().map(|e| e.position).max()
}

/// A checkpoint as stored.
pub(crate) struct Checkpoint {
    pub position: CommitPosition,
    pub events_applied: u64,
    pub updated_at: DateTime<Utc>,
}

/// `projection`'s checkpoint; `None` before its first batch.
pub(crate) async fn read_checkpoint(
    pool: &PgPool,
    projection: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let row = projection_row(
        pool,
        "SELECT transaction_id::text AS xid, position, events_applied, updated_at
           FROM projection_checkpoints WHERE projection = $1",
        projection,
    )
    .await?;
    row.map(|row| {
        Ok(Checkpoint {
            position: decode_position(&row, "projection_checkpoints")?,
            events_applied: row
                .try_get::<i64, _>("events_applied")
                .map_err(unavailable)? as u64,
            updated_at: row.try_get("updated_at").map_err(unavailable)?,
        })
    })
    .transpose()
}
