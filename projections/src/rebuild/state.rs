//! The rebuild state rows (`projection_rebuilds`): one per projection, its current or last
//! rebuild: state, checkpoint, progress, who asked, the last error. Every statement on that
//! table, and reading a row back as `app::RebuildStatus`.

use app::{CommitPosition, RebuildState, RebuildStatus, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use super::lock::rebuild_lock_held;
use crate::bookkeeping_rows::{bind_position, decode_position, projection_row};
use crate::error::unavailable;

/// Shown for a rebuild whose row says it runs while nobody holds its lock.
const INTERRUPTED: &str =
    "interrupted: the process running the rebuild stopped; start it again to resume from its checkpoint";

/// `projection`'s row, with its recorded state.
async fn stored_row(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<Option<(RebuildState, PgRow)>, StoreError> {
    let row = projection_row(
        conn,
        "SELECT state, transaction_id::text AS xid, position, events_done, events_total,
                requested_by, started_at, updated_at, finished_at, last_error
           FROM projection_rebuilds WHERE projection = $1",
        projection,
    )
    .await?;
    row.map(|row| {
        let state: String = row.try_get("state").map_err(unavailable)?;
        let state = RebuildState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("projection_rebuilds.state".into()))?;
        Ok((state, row))
    })
    .transpose()
}

/// The checkpoint of `projection`'s last rebuild, if that rebuild is unfinished (it can be
/// resumed when its shadows are still there).
pub(super) async fn unfinished_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<Option<CommitPosition>, StoreError> {
    match stored_row(conn, projection).await? {
        Some((state, row)) if state != RebuildState::Completed => {
            decode_position(&row, "projection_rebuilds").map(Some)
        }
        _ => Ok(None),
    }
}

/// Marks the unfinished rebuild running again, for `requested_by`.
pub(super) async fn mark_resumed(
    conn: &mut PgConnection,
    projection: &str,
    requested_by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE projection_rebuilds
            SET state = 'running', requested_by = $2, last_error = NULL,
                finished_at = NULL, updated_at = now()
          WHERE projection = $1",
    )
    .bind(projection)
    .bind(requested_by)
    .execute(conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Records a fresh rebuild, running from the start over `events_total` events.
pub(super) async fn mark_started(
    conn: &mut PgConnection,
    projection: &str,
    requested_by: &str,
    events_total: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO projection_rebuilds (projection, state, events_total, requested_by)
         VALUES ($1, 'running', $3, $2)
         ON CONFLICT (projection) DO UPDATE
            SET state = 'running', transaction_id = '0', position = 0, events_done = 0,
                events_total = excluded.events_total, requested_by = excluded.requested_by,
                started_at = now(), updated_at = now(), finished_at = NULL, last_error = NULL",
    )
    .bind(projection)
    .bind(requested_by)
    .bind(events_total)
    .execute(conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Moves the checkpoint to `position` and counts `events` more, in the caller's
/// transaction; `false` when the rebuild is no longer running (cancel requested).
pub(super) async fn record_progress(
    conn: &mut PgConnection,
    projection: &str,
    position: CommitPosition,
    events: usize,
) -> Result<bool, StoreError> {
    let update = sqlx::query(
        "UPDATE projection_rebuilds
            SET transaction_id = $2::text::xid8, position = $3,
                events_done = events_done + $4, updated_at = now()
          WHERE projection = $1 AND state = 'running'",
    )
    .bind(projection);
    let updated = bind_position(update, position)
        .bind(events as i64)
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(updated.rows_affected() == 1)
}

/// Marks the rebuild cancelled; the events it had done.
pub(super) async fn mark_cancelled(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<u64, StoreError> {
    let events_done: i64 = sqlx::query_scalar(
        "UPDATE projection_rebuilds SET state = 'cancelled', updated_at = now()
          WHERE projection = $1 RETURNING events_done",
    )
    .bind(projection)
    .fetch_one(conn)
    .await
    .map_err(unavailable)?;
    Ok(events_done as u64)
}

/// Marks the rebuild completed at `position` with `events` more, in the swap's transaction;
/// the events it did in all.
pub(super) async fn mark_completed(
    conn: &mut PgConnection,
    projection: &str,
    position: CommitPosition,
    events: u64,
) -> Result<u64, StoreError> {
    let complete = sqlx::query(
        "UPDATE projection_rebuilds
            SET state = 'completed', transaction_id = $2::text::xid8, position = $3,
                events_done = events_done + $4, updated_at = now(), finished_at = now()
          WHERE projection = $1 RETURNING events_done",
    )
    .bind(projection);
    let row = bind_position(complete, position)
        .bind(events as i64)
        .fetch_one(conn)
        .await
        .map_err(unavailable)?;
    Ok(row.try_get::<i64, _>("events_done").map_err(unavailable)? as u64)
}

/// Records why the running rebuild failed.
pub(super) async fn mark_failed(
    conn: &mut PgConnection,
    projection: &str,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE projection_rebuilds SET state = 'failed', last_error = $2, updated_at = now()
          WHERE projection = $1 AND state IN ('running', 'cancelling')",
    )
    .bind(projection)
    .bind(error)
    .execute(conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// The current or last rebuild of `projection`. A rebuild recorded as running (or cancelling)
/// whose runner is gone (nobody holds its lock: the process was killed or stopped) is shown as
/// failed, interrupted, rather than as running for ever.
pub async fn read_status(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<Option<RebuildStatus>, StoreError> {
    let Some((mut state, row)) = stored_row(conn, projection).await? else {
        return Ok(None);
    };
    let mut last_error: Option<String> = row.try_get("last_error").map_err(unavailable)?;
    if matches!(state, RebuildState::Running | RebuildState::Cancelling)
        && !rebuild_lock_held(conn, projection).await?
    {
        state = RebuildState::Failed;
        last_error = Some(INTERRUPTED.to_owned());
    }
    let events_done = row.try_get::<i64, _>("events_done").map_err(unavailable)? as u64;
    let events_total = row.try_get::<i64, _>("events_total").map_err(unavailable)? as u64;
    let started_at: chrono::DateTime<chrono::Utc> =
        row.try_get("started_at").map_err(unavailable)?;
    let updated_at: chrono::DateTime<chrono::Utc> =
        row.try_get("updated_at").map_err(unavailable)?;
    let finished_at: Option<chrono::DateTime<chrono::Utc>> =
        row.try_get("finished_at").map_err(unavailable)?;
    let elapsed = (finished_at.unwrap_or(updated_at) - started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    let events_per_second = if elapsed > 0.0 {
        events_done as f64 / elapsed
    } else {
        0.0
    };
    let eta_seconds = (matches!(state, RebuildState::Running) && events_per_second > 0.0)
        .then(|| events_total.saturating_sub(events_done) as f64 / events_per_second);
    Ok(Some(RebuildStatus {
        state,
        events_done,
        events_total,
        events_per_second,
        eta_seconds,
        requested_by: row.try_get("requested_by").map_err(unavailable)?,
        started_at,
        updated_at,
        finished_at,
        last_error,
    }))
}

/// Asks a running rebuild of `projection` to stop after its batch; the new state.
pub async fn request_cancel(
    pool: &PgPool,
    projection: &str,
) -> Result<Option<RebuildStatus>, StoreError> {
    sqlx::query(
        "UPDATE projection_rebuilds SET state = 'cancelling', updated_at = now()
          WHERE projection = $1 AND state = 'running'",
    )
    .bind(projection)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    read_status(&mut conn, projection).await
}
