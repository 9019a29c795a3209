//! Rebuilding `device_view` from the event store without downtime.
//!
//! The rebuild folds every event, in commit order, into a shadow table (`device_view_rebuild`)
//! in batches (read a page of events, read the rows they touch, fold, write the rows with one
//! multi-row upsert, advance the checkpoint, all in one transaction). Meanwhile the live table
//! keeps serving reads and the live projector keeps writing it. When the shadow has caught up,
//! it gets the live table's secondary indexes and fresh statistics, and then one short
//! transaction swaps it in:
//!
//! 1. `LOCK device_view IN ACCESS EXCLUSIVE MODE` (bounded by `lock_timeout`; on timeout the
//!    swap is tried again after another catch-up). Readers queue for these milliseconds; none
//!    fails.
//! 2. Every event committed since the checkpoint is folded into the shadow. Events still
//!    uncommitted reach the new table later through the live projector, whose statements
//!    resolve the table by name once the lock is released.
//! 3. `DROP TABLE device_view`, rename the shadow and its indexes to the live names, mark the
//!    rebuild completed; commit.
//!
//! A row in the shadow is never behind the live row it replaces (the shadow holds every
//! committed event), so no reader sees a device go back in time.
//!
//! One rebuild per projection at a time (a session advisory lock on the runner's own
//! connection, released if the process dies). Cancel marks the row `cancelling`; the runner
//! stops after its batch. Starting again resumes from the checkpoint in `projection_rebuilds`.
//! Only the shadow table is written: no side effect (certificates, NATS) can fire again.

use std::time::Duration;

use app::{CommitPosition, EventEnvelope, RebuildState, RebuildStatus, StoreError};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::device_projector::{project_into, ProjectionError};
use crate::device_view_table::{unavailable, DeviceViewTable};
use crate::DEVICE_VIEW;

/// Events per batch: large enough that round trips are a small part of the work, small enough
/// that a batch commits in tens of milliseconds.
pub(crate) const DEFAULT_BATCH: usize = 5_000;

/// Longest a swap waits for the live table's lock before backing off (readers queue behind a
/// waiting lock request, so this bounds their extra wait too).
const SWAP_LOCK_TIMEOUT: &str = "1s";

const SWAP_ATTEMPTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {DEVICE_VIEW} is already running")]
    AlreadyRunning,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("could not take the live table's lock for the swap after {SWAP_ATTEMPTS} attempts")]
    SwapLockUnavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildOutcome {
    Completed { events: u64 },
    Cancelled { events_done: u64 },
}

/// Runs rebuilds of `device_view` (see the module docs).
#[derive(Clone)]
pub struct DeviceViewRebuild {
    pool: PgPool,
    batch: usize,
}

const SHADOW: DeviceViewTable = DeviceViewTable::Shadow;

impl DeviceViewRebuild {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            batch: DEFAULT_BATCH,
        }
    }

    pub fn with_batch(self, batch: usize) -> Self {
        Self {
            batch: batch.max(1),
            ..self
        }
    }

    /// Rebuilds (or resumes the last unfinished rebuild) and swaps the result in; calls
    /// `progress` after every batch.
    pub async fn run(
        &self,
        requested_by: &str,
        progress: impl FnMut(&RebuildStatus),
    ) -> Result<RebuildOutcome, RebuildError> {
        self.start(requested_by).await?.run(progress).await
    }

    /// Takes the rebuild lock and sets the rebuild up (a fresh shadow, or the unfinished one
    /// to resume); [`StartedRebuild::run`] does the work. Fails at once if a rebuild runs.
    pub async fn start(&self, requested_by: &str) -> Result<StartedRebuild, RebuildError> {
        let mut conn = self.lock().await?;
        let prepared = async {
            // The shadow's rows and checkpoint commit together: losing the last commits in a
            // crash loses both, and the rebuild resumes from the older checkpoint.
            execute(&mut conn, "SET synchronous_commit = off").await?;
            self.start_or_resume(&mut conn, requested_by).await
        }
        .await;
        match prepared {
            Ok(checkpoint) => {
                tracing::info!(projection = DEVICE_VIEW, requested_by, "rebuild started");
                Ok(StartedRebuild {
                    rebuild: self.clone(),
                    conn,
                    checkpoint,
                })
            }
            Err(e) => Err(fail(conn, e).await),
        }
    }
}

/// A rebuild that holds the lock and is set up.
pub struct StartedRebuild {
    rebuild: DeviceViewRebuild,
    conn: PgConnection,
    checkpoint: CommitPosition,
}

impl StartedRebuild {
    pub async fn run(
        mut self,
        mut progress: impl FnMut(&RebuildStatus),
    ) -> Result<RebuildOutcome, RebuildError> {
        let result = self
            .rebuild
            .finish(&mut self.conn, self.checkpoint, &mut progress)
            .await;
        match result {
            Ok(outcome) => {
                // Closing the connection releases the advisory lock.
                let _ = self.conn.close().await;
                Ok(outcome)
            }
            Err(e) => Err(fail(self.conn, e).await),
        }
    }
}

/// Records the failure on the rebuild's row and releases the lock.
async fn fail(mut conn: PgConnection, error: RebuildError) -> RebuildError {
    let _ = sqlx::query(
        "UPDATE projection_rebuilds SET state = 'failed', last_error = $2, updated_at = now()
          WHERE projection = $1 AND state IN ('running', 'cancelling')",
    )
    .bind(DEVICE_VIEW)
    .bind(error.to_string())
    .execute(&mut conn)
    .await;
    tracing::error!(projection = DEVICE_VIEW, error = %error, "rebuild failed");
    let _ = conn.close().await;
    error
}

impl DeviceViewRebuild {
    async fn finish(
        &self,
        conn: &mut PgConnection,
        mut checkpoint: CommitPosition,
        progress: &mut impl FnMut(&RebuildStatus),
    ) -> Result<RebuildOutcome, RebuildError> {
        if let Some(outcome) = self.catch_up(conn, &mut checkpoint, progress).await? {
            return Ok(outcome);
        }
        prepare_shadow_for_swap(conn).await?;
        // Index builds take a while: fold what arrived meanwhile before locking.
        if let Some(outcome) = self.catch_up(conn, &mut checkpoint, progress).await? {
            return Ok(outcome);
        }
        for _ in 0..SWAP_ATTEMPTS {
            if let Some(events) = self.swap(conn, checkpoint).await? {
                if let Some(status) = read_status(conn).await? {
                    report_metrics(&status);
                    progress(&status);
                }
                tracing::info!(
                    projection = DEVICE_VIEW,
                    events,
                    "rebuild completed and swapped in"
                );
                return Ok(RebuildOutcome::Completed { events });
            }
            tracing::warn!(
                projection = DEVICE_VIEW,
                "swap lock not granted in time; catching up and trying again"
            );
            if let Some(outcome) = self.catch_up(conn, &mut checkpoint, progress).await? {
                return Ok(outcome);
            }
        }
        Err(RebuildError::SwapLockUnavailable)
    }

    /// Takes the rebuild lock on a connection of its own.
    async fn lock(&self) -> Result<PgConnection, RebuildError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?.detach();
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('device-provisioning rebuild ' || $1, 0))",
        )
        .bind(DEVICE_VIEW)
        .fetch_one(&mut conn)
        .await
        .map_err(unavailable)?;
        if !locked {
            let _ = conn.close().await;
            return Err(RebuildError::AlreadyRunning);
        }
        Ok(conn)
    }

    /// The checkpoint to continue from: the last one when an unfinished rebuild left its
    /// shadow, else the start, with a fresh shadow.
    async fn start_or_resume(
        &self,
        conn: &mut PgConnection,
        requested_by: &str,
    ) -> Result<CommitPosition, RebuildError> {
        let shadow_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(SHADOW.name())
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        let previous = sqlx::query(
            "SELECT state, transaction_id::text AS xid, position FROM projection_rebuilds
              WHERE projection = $1",
        )
        .bind(DEVICE_VIEW)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        if let Some(row) = previous {
            let state: String = row.try_get("state").map_err(unavailable)?;
            if shadow_exists && state != RebuildState::Completed.as_str() {
                let xid: String = row.try_get("xid").map_err(unavailable)?;
                let checkpoint = CommitPosition {
                    transaction_id: xid
                        .parse()
                        .map_err(|_| StoreError::Corrupt("rebuild checkpoint xid".into()))?,
                    position: row.try_get("position").map_err(unavailable)?,
                };
                sqlx::query(
                    "UPDATE projection_rebuilds
                        SET state = 'running', requested_by = $2, last_error = NULL,
                            finished_at = NULL, updated_at = now()
                      WHERE projection = $1",
                )
                .bind(DEVICE_VIEW)
                .bind(requested_by)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
                tracing::info!(projection = DEVICE_VIEW, "resuming the unfinished rebuild");
                return Ok(checkpoint);
            }
        }
        let mut tx = conn.begin().await.map_err(unavailable)?;
        for statement in [
            format!("DROP TABLE IF EXISTS {}", SHADOW.name()),
            // Secondary indexes come after the bulk load (prepare_shadow_for_swap).
            format!(
                "CREATE TABLE {shadow} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
                shadow = SHADOW.name(),
                live = DeviceViewTable::Live.name()
            ),
            format!(
                "ALTER TABLE {shadow} ADD CONSTRAINT {shadow}_pkey PRIMARY KEY (id)",
                shadow = SHADOW.name()
            ),
        ] {
            execute(&mut tx, &statement).await?;
        }
        sqlx::query(
            "INSERT INTO projection_rebuilds (projection, state, events_total, requested_by)
             VALUES ($1, 'running', (SELECT count(*) FROM events), $2)
             ON CONFLICT (projection) DO UPDATE
                SET state = 'running', transaction_id = '0', position = 0, events_done = 0,
                    events_total = excluded.events_total, requested_by = excluded.requested_by,
                    started_at = now(), updated_at = now(), finished_at = NULL, last_error = NULL",
        )
        .bind(DEVICE_VIEW)
        .bind(requested_by)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(CommitPosition::START)
    }

    /// Folds settled events into the shadow until none is left. `Some` when the rebuild was
    /// cancelled meanwhile.
    async fn catch_up(
        &self,
        conn: &mut PgConnection,
        checkpoint: &mut CommitPosition,
        progress: &mut impl FnMut(&RebuildStatus),
    ) -> Result<Option<RebuildOutcome>, RebuildError> {
        loop {
            let batch = store::committed_events_after(conn, *checkpoint, self.batch).await?;
            if batch.events.is_empty() {
                if batch.held_back {
                    // An older transaction is still open; its events come in a moment.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Ok(None);
            }
            let full = batch.events.len() == self.batch;
            let last = batch.events.last().expect("not empty").position;
            let envelopes: Vec<EventEnvelope> = batch
                .events
                .into_iter()
                .map(app::RecordedEvent::into_envelope)
                .collect();
            let mut tx = conn.begin().await.map_err(unavailable)?;
            project_into(&mut tx, SHADOW, &envelopes).await?;
            let still_running = sqlx::query(
                "UPDATE projection_rebuilds
                    SET transaction_id = $2::text::xid8, position = $3,
                        events_done = events_done + $4, updated_at = now()
                  WHERE projection = $1 AND state = 'running'",
            )
            .bind(DEVICE_VIEW)
            .bind(last.transaction_id.to_string())
            .bind(last.position)
            .bind(envelopes.len() as i64)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected()
                == 1;
            if !still_running {
                tx.rollback().await.map_err(unavailable)?;
                return self.stop_cancelled(conn).await.map(Some);
            }
            tx.commit().await.map_err(unavailable)?;
            *checkpoint = last;
            if let Some(status) = read_status(conn).await? {
                report_metrics(&status);
                progress(&status);
            }
            if !full && !batch.held_back {
                return Ok(None);
            }
        }
    }

    async fn stop_cancelled(
        &self,
        conn: &mut PgConnection,
    ) -> Result<RebuildOutcome, RebuildError> {
        let events_done: i64 = sqlx::query_scalar(
            "UPDATE projection_rebuilds SET state = 'cancelled', updated_at = now()
              WHERE projection = $1 RETURNING events_done",
        )
        .bind(DEVICE_VIEW)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        tracing::info!(projection = DEVICE_VIEW, events_done, "rebuild cancelled");
        Ok(RebuildOutcome::Cancelled {
            events_done: events_done as u64,
        })
    }

    /// The swap transaction (module docs). `None` when the lock was not granted in time.
    async fn swap(
        &self,
        conn: &mut PgConnection,
        mut checkpoint: CommitPosition,
    ) -> Result<Option<u64>, RebuildError> {
        let mut tx = conn.begin().await.map_err(unavailable)?;
        execute(
            &mut tx,
            &format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"),
        )
        .await?;
        let locked = sqlx::query(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            DeviceViewTable::Live.name()
        ))
        .execute(&mut *tx)
        .await;
        match locked {
            Ok(_) => {}
            // lock_not_available: someone held the table too long; back off and retry.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                return Ok(None)
            }
            Err(e) => return Err(unavailable(e).into()),
        }
        let mut folded = 0i64;
        loop {
            let events = store::visible_events_after(&mut tx, checkpoint, self.batch).await?;
            let Some(last) = events.last().map(|e| e.position) else {
                break;
            };
            let envelopes: Vec<EventEnvelope> = events
                .into_iter()
                .map(app::RecordedEvent::into_envelope)
                .collect();
            project_into(&mut tx, SHADOW, &envelopes).await?;
            folded += envelopes.len() as i64;
            checkpoint = last;
        }
        let live = DeviceViewTable::Live.name();
        let shadow = SHADOW.name();
        let mut renames = vec![
            format!("DROP TABLE {live}"),
            format!("ALTER TABLE {shadow} RENAME TO {live}"),
            format!("ALTER TABLE {live} RENAME CONSTRAINT {shadow}_pkey TO {live}_pkey"),
        ];
        for index in shadow_secondary_indexes(&mut tx).await? {
            let live_name = index.trim_end_matches(SHADOW_INDEX_SUFFIX);
            renames.push(format!("ALTER INDEX {index} RENAME TO {live_name}"));
        }
        for statement in renames {
            execute(&mut tx, &statement).await?;
        }
        let events: i64 = sqlx::query_scalar(
            "UPDATE projection_rebuilds
                SET state = 'completed', transaction_id = $2::text::xid8, position = $3,
                    events_done = events_done + $4, updated_at = now(), finished_at = now()
              WHERE projection = $1 RETURNING events_done",
        )
        .bind(DEVICE_VIEW)
        .bind(checkpoint.transaction_id.to_string())
        .bind(checkpoint.position)
        .bind(folded)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(events as u64))
    }
}

/// Suffix of the shadow's copies of the live table's secondary indexes.
const SHADOW_INDEX_SUFFIX: &str = "_rebuild";

/// Gives the shadow the live table's secondary indexes (from the catalog, so they cannot
/// drift from the migrations) and fresh planner statistics.
async fn prepare_shadow_for_swap(conn: &mut PgConnection) -> Result<(), RebuildError> {
    let definitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname::text, i.indexdef FROM pg_indexes i
          WHERE i.schemaname = current_schema() AND i.tablename = $1
            AND i.indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')",
    )
    .bind(DeviceViewTable::Live.name())
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let shadow = SHADOW.name();
    for (name, definition) in definitions {
        // `CREATE [UNIQUE] INDEX <name> ON <schema>.device_view USING <method> (<columns>)`
        let unexpected =
            || StoreError::Corrupt(format!("unexpected index definition: {definition}").into());
        let on = definition.find(" ON ").ok_or_else(unexpected)?;
        let using = on + definition[on..].find(" USING ").ok_or_else(unexpected)?;
        let head = definition[..on].replacen(
            &format!("INDEX {name}"),
            &format!("INDEX IF NOT EXISTS {name}{SHADOW_INDEX_SUFFIX}"),
            1,
        );
        execute(conn, &format!("{head} ON {shadow}{}", &definition[using..])).await?;
    }
    execute(conn, &format!("ANALYZE {shadow}")).await?;
    Ok(())
}

async fn shadow_secondary_indexes(conn: &mut PgConnection) -> Result<Vec<String>, RebuildError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = $1 AND indexname LIKE '%' || $2",
    )
    .bind(SHADOW.name())
    .bind(SHADOW_INDEX_SUFFIX)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(names
        .into_iter()
        .filter(|n| n != &format!("{}_pkey", SHADOW.name()))
        .collect())
}

/// The current or last rebuild of `device_view`.
pub async fn read_status(conn: &mut PgConnection) -> Result<Option<RebuildStatus>, StoreError> {
    let row = sqlx::query(
        "SELECT state, events_done, events_total, requested_by, started_at, updated_at,
                finished_at, last_error
           FROM projection_rebuilds WHERE projection = $1",
    )
    .bind(DEVICE_VIEW)
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let state: String = row.try_get("state").map_err(unavailable)?;
    let state = RebuildState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt("projection_rebuilds.state".into()))?;
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
        last_error: row.try_get("last_error").map_err(unavailable)?,
    }))
}

/// Asks a running rebuild to stop after its batch; the new state.
pub async fn request_cancel(pool: &PgPool) -> Result<Option<RebuildStatus>, StoreError> {
    sqlx::query(
        "UPDATE projection_rebuilds SET state = 'cancelling', updated_at = now()
          WHERE projection = $1 AND state = 'running'",
    )
    .bind(DEVICE_VIEW)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    read_status(&mut conn).await
}

fn report_metrics(status: &RebuildStatus) {
    metrics::gauge!("projection_rebuild_events_done", "projection" => DEVICE_VIEW)
        .set(status.events_done as f64);
    metrics::gauge!("projection_rebuild_events_total", "projection" => DEVICE_VIEW)
        .set(status.events_total as f64);
    metrics::gauge!("projection_rebuild_events_per_second", "projection" => DEVICE_VIEW)
        .set(status.events_per_second);
}

async fn execute(conn: &mut PgConnection, statement: &str) -> Result<(), StoreError> {
    sqlx::query(statement)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unavailable)
}
