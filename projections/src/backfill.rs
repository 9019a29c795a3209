//! Filling a read model from the event store's whole history, once: a read model added
//! after events were recorded (or whose stream no longer holds the oldest events) starts
//! this way, and then follows the stream.
//!
//! The events are folded in commit order (gap-safe) into the live tables, each batch a live
//! batch (`RunnableProjection::apply_live`: idempotent by version, checkpointed), so the
//! stream replaying what the backfill already folded changes nothing. Resumable: each batch
//! commits with the backfill's own position (`projection_backfills`), and the backfill
//! counts as done only once it reached the end of the event store; an interrupted one (an
//! error, a stopped worker) goes on from its position the next time.

use std::time::Duration;

use app::{CommitPosition, EventEnvelope};
use sqlx::{PgConnection, PgPool, Row};

use crate::bookkeeping_rows::{bind_position, decode_position, projection_row};
use crate::checkpoint::{advance_checkpoint, furthest_position};
use crate::error::unavailable;
use crate::runner::RunnableProjection;
use crate::ProjectionError;

/// Fills `projection` from the whole event store unless that was done before, `batch`
/// events a transaction; the number of events folded (`None`: done before).
pub(crate) async fn fill_from_history(
    pool: &PgPool,
    projection: &dyn RunnableProjection,
    batch: usize,
) -> Result<Option<u64>, ProjectionError> {
    let name = projection.name();
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    let Some(mut position) = backfill_position(&mut conn, name).await? else {
        return Ok(None);
    };
    if position != CommitPosition::START {
        tracing::info!(projection = name, "resuming an interrupted backfill");
    }
    let mut folded = 0u64;
    loop {
        let page = store::committed_events_after(&mut conn, position, batch).await?;
        let Some(last) = furthest_position(&page.events) else {
            if page.held_back {
                // An older transaction is still open; its events come in a moment.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            break;
        };
        let events: Vec<EventEnvelope> = page
            .events
            .into_iter()
            .map(app::RecordedEvent::into_envelope)
            .collect();
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(unavailable)?;
        projection.apply_live(&mut tx, &events, last).await?;
        record_backfill(&mut tx, name, last, events.len(), false).await?;
        tx.commit().await.map_err(unavailable)?;
        folded += events.len() as u64;
        position = last;
    }
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(unavailable)?;
    // Also when the store was empty: the projection has started all the same.
    advance_checkpoint(&mut tx, name, position, 0).await?;
    record_backfill(&mut tx, name, position, 0, true).await?;
    tx.commit().await.map_err(unavailable)?;
    tracing::info!(
        projection = name,
        events = folded,
        "filled from the event store"
    );
    Ok(Some(folded))
}

/// Where `projection`'s backfill stands: `None` when it is done, else the position to go on
/// from.
async fn backfill_position(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<Option<CommitPosition>, ProjectionError> {
    let row = projection_row(
        conn,
        "SELECT transaction_id::text AS xid, position, completed_at IS NOT NULL AS done
           FROM projection_backfills WHERE projection = $1",
        projection,
    )
    .await?;
    let Some(row) = row else {
        return Ok(Some(CommitPosition::START));
    };
    if row.try_get::<bool, _>("done").map_err(unavailable)? {
        return Ok(None);
    }
    Ok(Some(decode_position(&row, "projection_backfills")?))
}

/// Records the backfill's progress (and, at the end, that it is done) in the caller's
/// transaction, with the batch it covers.
async fn record_backfill(
    conn: &mut PgConnection,
    projection: &str,
    position: CommitPosition,
    events: usize,
    done: bool,
) -> Result<(), ProjectionError> {
    let record = sqlx::query(
        "INSERT INTO projection_backfills AS b (projection, transaction_id, position, events_folded, completed_at)
         VALUES ($1, $2::text::xid8, $3, $4, CASE WHEN $5 THEN now() END)
         ON CONFLICT (projection) DO UPDATE
            SET transaction_id = excluded.transaction_id,
                position = excluded.position,
                events_folded = b.events_folded + excluded.events_folded,
                completed_at = excluded.completed_at,
                updated_at = now()",
    )
    .bind(projection);
    bind_position(record, position)
        .bind(events as i64)
        .bind(done)
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}
