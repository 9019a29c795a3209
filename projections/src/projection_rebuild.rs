//! Rebuilding a read model from the event store without downtime (`device_view`, and
//! `device_stats`'s two tables; a [`RebuildTarget`] names the tables and how to fold).
//!
//! The rebuild folds every event, in commit order, into a shadow table (`device_view_rebuild`)
//! in batches (read a page of events, read the rows they touch, fold, write the rows with one
//! multi-row upsert, advance the checkpoint, all in one transaction). Meanwhile the live table
//! keeps serving reads and the live projector keeps writing it. When the shadow has caught up,
//! it gets the live table's secondary indexes and fresh statistics, and then one short
//! transaction swaps it in:
//!
//! 1. `LOCK <live tables> IN ACCESS EXCLUSIVE MODE`: first `NOWAIT`, tried again after a
//!    short pause while a reader or the live projector is on them (a waiting lock request
//!    would make every reader queue behind it); if the tables are never free (a steady read
//!    load), waiting for the lock with a short `lock_timeout`, so readers queue for at most
//!    that long. Readers wait only milliseconds; none fails; the swap always happens.
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

use std::sync::Arc;

use app::{CommitPosition, EventEnvelope, RebuildState, RebuildStatus, StoreError};
use async_trait::async_trait;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::device_projector::{project_into, ProjectionError};
use crate::device_view_table::{unavailable, DeviceViewTable};
use crate::{DEVICE_STATS, DEVICE_VIEW};

/// A read model that can be rebuilt: its live tables (each gets a `<table>_rebuild` shadow
/// with the same columns and primary key) and how events are folded into the shadows.
#[async_trait]
pub trait RebuildTarget: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn tables(&self) -> &'static [&'static str];
    async fn fold_into_shadow(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<(), ProjectionError>;
}

struct DeviceViewTarget;

#[async_trait]
impl RebuildTarget for DeviceViewTarget {
    fn name(&self) -> &'static str {
        DEVICE_VIEW
    }
    fn tables(&self) -> &'static [&'static str] {
        &["device_view"]
    }
    async fn fold_into_shadow(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<(), ProjectionError> {
        project_into(conn, DeviceViewTable::Shadow, events)
            .await
            .map(|_| ())
    }
}

/// The rebuild of the projection called `name`, if it can be rebuilt.
pub fn rebuild_of(pool: PgPool, name: &str) -> Option<ProjectionRebuild> {
    let target: Arc<dyn RebuildTarget> = match name {
        DEVICE_VIEW => Arc::new(DeviceViewTarget),
        DEVICE_STATS => Arc::new(crate::device_stats::DeviceStatsTarget),
        _ => return None,
    };
    Some(ProjectionRebuild::new(pool, target))
}

/// Events per batch: large enough that round trips are a small part of the work, small enough
/// that a batch commits in tens of milliseconds.
pub(crate) const DEFAULT_BATCH: usize = 5_000;

/// The swap first asks for the live tables' lock with NOWAIT: a lock request that waits makes
/// every reader queue behind it (holding its pool connection). Under a steady read load there
/// is never a moment without a reader, though, so after `SWAP_NOWAIT_ATTEMPTS` tries it waits
/// for the lock, at most `SWAP_LOCK_WAIT` a try (growing to `SWAP_LOCK_WAIT_MAX`): readers that
/// arrive meanwhile queue for no longer than that, and the lock is granted as soon as the
/// readers before it finish. Between tries it pauses, and catches up with new events every
/// few tries; it never gives up (an operator can cancel).
const SWAP_NOWAIT_ATTEMPTS: usize = 20;
const SWAP_PAUSE: Duration = Duration::from_millis(25);
const SWAP_LOCK_WAIT: Duration = Duration::from_millis(50);
const SWAP_LOCK_WAIT_MAX: Duration = Duration::from_millis(500);
const CATCH_UP_EVERY: usize = 20;

/// The statement timeout of a rebuild's long steps (counting the events, building the
/// shadow's indexes, ANALYZE): bounded, but far above the pool's per-statement timeout.
const LONG_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of this projection is already running")]
    AlreadyRunning,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildOutcome {
    Completed { events: u64 },
    Cancelled { events_done: u64 },
}

/// Runs rebuilds of one projection (see the module docs).
#[derive(Clone)]
pub struct ProjectionRebuild {
    pool: PgPool,
    batch: usize,
    target: Arc<dyn RebuildTarget>,
}

/// A shadow's name: of a live table, and of its indexes and keys.
const SHADOW_SUFFIX: &str = "_rebuild";

fn shadow_of(live: &str) -> String {
    format!("{live}{SHADOW_SUFFIX}")
}

impl ProjectionRebuild {
    pub fn new(pool: PgPool, target: Arc<dyn RebuildTarget>) -> Self {
        Self {
            pool,
            batch: DEFAULT_BATCH,
            target,
        }
    }

    /// The rebuild of `device_view`.
    pub fn device_view(pool: PgPool) -> Self {
        Self::new(pool, Arc::new(DeviceViewTarget))
    }

    pub fn name(&self) -> &'static str {
        self.target.name()
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
            // If the process running the rebuild dies, its statement (an index build can take
            // minutes) stops within a second instead of running on, holding the rebuild lock
            // (Postgres 14 and later; older servers just run on).
            let _ = execute(&mut conn, "SET client_connection_check_interval = 1000").await;
            self.start_or_resume(&mut conn, requested_by).await
        }
        .await;
        match prepared {
            Ok(checkpoint) => {
                tracing::info!(projection = self.name(), requested_by, "rebuild started");
                Ok(StartedRebuild {
                    rebuild: self.clone(),
                    conn,
                    checkpoint,
                })
            }
            Err(e) => Err(fail(conn, self.name(), e).await),
        }
    }
}

/// A rebuild that holds the lock and is set up.
pub struct StartedRebuild {
    rebuild: ProjectionRebuild,
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
            Err(e) => Err(fail(self.conn, self.rebuild.name(), e).await),
        }
    }
}

/// Records the failure on the rebuild's row and releases the lock.
async fn fail(mut conn: PgConnection, projection: &str, error: RebuildError) -> RebuildError {
    let _ = sqlx::query(
        "UPDATE projection_rebuilds SET state = 'failed', last_error = $2, updated_at = now()
          WHERE projection = $1 AND state IN ('running', 'cancelling')",
    )
    .bind(projection)
    .bind(error.to_string())
    .execute(&mut conn)
    .await;
    tracing::error!(projection, error = %error, "rebuild failed");
    let _ = conn.close().await;
    error
}

impl ProjectionRebuild {
    async fn finish(
        &self,
        conn: &mut PgConnection,
        mut checkpoint: CommitPosition,
        progress: &mut impl FnMut(&RebuildStatus),
    ) -> Result<RebuildOutcome, RebuildError> {
        if let Some(outcome) = self.catch_up(conn, &mut checkpoint, progress).await? {
            return Ok(outcome);
        }
        for table in self.target.tables() {
            prepare_shadow_for_swap(conn, table).await?;
        }
        // Index builds take a while: fold what arrived meanwhile before locking.
        if let Some(outcome) = self.catch_up(conn, &mut checkpoint, progress).await? {
            return Ok(outcome);
        }
        for attempt in 1usize.. {
            let wait = attempt
                .checked_sub(SWAP_NOWAIT_ATTEMPTS)
                .filter(|n| *n > 0)
                .map(|n| (SWAP_LOCK_WAIT * n as u32).min(SWAP_LOCK_WAIT_MAX));
            if let Some(events) = self.swap(conn, checkpoint, wait).await? {
                if let Some(status) = read_status(conn, self.name()).await? {
                    report_metrics(self.name(), &status);
                    progress(&status);
                }
                tracing::info!(
                    projection = self.name(),
                    events,
                    attempts = attempt,
                    "rebuild completed and swapped in"
                );
                return Ok(RebuildOutcome::Completed { events });
            }
            tokio::time::sleep(SWAP_PAUSE).await;
            if attempt % CATCH_UP_EVERY == 0 {
                tracing::warn!(
                    projection = self.name(),
                    attempt,
                    "the live tables stay busy; catching up before trying the swap again"
                );
                if let Some(outcome) = self.catch_up(conn, &mut checkpoint, progress).await? {
                    return Ok(outcome);
                }
            }
        }
        unreachable!("the attempts never run out")
    }

    /// Takes the rebuild lock on a connection of its own (session-level: held exactly as long
    /// as the runner's connection lives, so a dead runner holds nothing).
    async fn lock(&self) -> Result<PgConnection, RebuildError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?.detach();
        let locked: bool =
            sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({REBUILD_LOCK_KEY})"))
                .bind(self.name())
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
        let shadows: Vec<String> = self.target.tables().iter().map(|t| shadow_of(t)).collect();
        let shadow_exists: bool = sqlx::query_scalar(
            "SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest($1::text[]) AS t",
        )
        .bind(&shadows)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        let previous = sqlx::query(
            "SELECT state, transaction_id::text AS xid, position FROM projection_rebuilds
              WHERE projection = $1",
        )
        .bind(self.name())
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
                .bind(self.name())
                .bind(requested_by)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
                tracing::info!(projection = self.name(), "resuming the unfinished rebuild");
                return Ok(checkpoint);
            }
        }
        // Counted before the DDL's transaction, which holds a transaction id: an id held while
        // the whole event store is counted would hold back the commit-order horizon (the
        // relay and the feed publish nothing past it).
        lengthen_statement_timeout(conn).await?;
        let events_total: Result<i64, StoreError> =
            sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable);
        restore_statement_timeout(conn).await?;
        let events_total = events_total?;
        let mut tx = conn.begin().await.map_err(unavailable)?;
        for live in self.target.tables() {
            let shadow = shadow_of(live);
            let (key, key_definition) = primary_key(&mut tx, live).await?;
            for statement in [
                format!("DROP TABLE IF EXISTS {shadow}"),
                // Secondary indexes come after the bulk load (prepare_shadow_for_swap).
                format!(
                    "CREATE TABLE {shadow} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                ),
                format!(
                    "ALTER TABLE {shadow} ADD CONSTRAINT {} {key_definition}",
                    shadow_of(&key)
                ),
            ] {
                execute(&mut tx, &statement).await?;
            }
        }
        sqlx::query(
            "INSERT INTO projection_rebuilds (projection, state, events_total, requested_by)
             VALUES ($1, 'running', $3, $2)
             ON CONFLICT (projection) DO UPDATE
                SET state = 'running', transaction_id = '0', position = 0, events_done = 0,
                    events_total = excluded.events_total, requested_by = excluded.requested_by,
                    started_at = now(), updated_at = now(), finished_at = NULL, last_error = NULL",
        )
        .bind(self.name())
        .bind(requested_by)
        .bind(events_total)
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
            self.target.fold_into_shadow(&mut tx, &envelopes).await?;
            let still_running = sqlx::query(
                "UPDATE projection_rebuilds
                    SET transaction_id = $2::text::xid8, position = $3,
                        events_done = events_done + $4, updated_at = now()
                  WHERE projection = $1 AND state = 'running'",
            )
            .bind(self.name())
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
            if let Some(status) = read_status(conn, self.name()).await? {
                report_metrics(self.name(), &status);
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
        .bind(self.name())
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        tracing::info!(projection = self.name(), events_done, "rebuild cancelled");
        Ok(RebuildOutcome::Cancelled {
            events_done: events_done as u64,
        })
    }

    /// The swap transaction (module docs): asks for the lock without waiting, or waiting at
    /// most `wait`. `None` when the lock was not granted.
    async fn swap(
        &self,
        conn: &mut PgConnection,
        mut checkpoint: CommitPosition,
        wait: Option<Duration>,
    ) -> Result<Option<u64>, RebuildError> {
        let mut tx = conn.begin().await.map_err(unavailable)?;
        if let Some(wait) = wait {
            execute(
                &mut tx,
                &format!("SET LOCAL lock_timeout = {}", wait.as_millis()),
            )
            .await?;
        }
        let locked = sqlx::query(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE{}",
            self.target.tables().join(", "),
            if wait.is_some() { "" } else { " NOWAIT" }
        ))
        .execute(&mut *tx)
        .await;
        match locked {
            Ok(_) => {}
            // lock_not_available: a reader or the live projector is on the table right now
            // (NOWAIT), or stayed on it for all of `wait` (lock_timeout).
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
            self.target.fold_into_shadow(&mut tx, &envelopes).await?;
            folded += envelopes.len() as i64;
            checkpoint = last;
        }
        for live in self.target.tables() {
            let shadow = shadow_of(live);
            let (key, _) = primary_key(&mut tx, live).await?;
            let mut renames = vec![
                format!("DROP TABLE {live}"),
                format!("ALTER TABLE {shadow} RENAME TO {live}"),
                format!(
                    "ALTER TABLE {live} RENAME CONSTRAINT {} TO {key}",
                    shadow_of(&key)
                ),
            ];
            for index in shadow_secondary_indexes(&mut tx, live).await? {
                let live_name = index.trim_end_matches(SHADOW_SUFFIX);
                renames.push(format!("ALTER INDEX {index} RENAME TO {live_name}"));
            }
            for statement in renames {
                execute(&mut tx, &statement).await?;
            }
        }
        let events: i64 = sqlx::query_scalar(
            "UPDATE projection_rebuilds
                SET state = 'completed', transaction_id = $2::text::xid8, position = $3,
                    events_done = events_done + $4, updated_at = now(), finished_at = now()
              WHERE projection = $1 RETURNING events_done",
        )
        .bind(self.name())
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

/// The live table's primary key: its name and definition (`PRIMARY KEY (…)`).
async fn primary_key(conn: &mut PgConnection, live: &str) -> Result<(String, String), StoreError> {
    sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = to_regclass($1) AND contype = 'p'",
    )
    .bind(live)
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::Corrupt(format!("{live} has no primary key").into()))
}

/// Gives the shadow of `live` the live table's secondary indexes (from the catalog, so they
/// cannot drift from the migrations) and fresh planner statistics.
///
/// The indexes are built `CONCURRENTLY`: a plain `CREATE INDEX` holds a transaction id for the
/// whole build, and while it does the commit-order horizon cannot pass it, so the relay and
/// the feed would publish nothing until the build ends. A concurrent build holds none (and
/// nobody else writes the shadow anyway). An interrupted concurrent build leaves an invalid
/// index behind: it is dropped and built again. Each step has the long-step timeout, not the
/// pool's statement timeout, so that a large table does not fail at the same step on every
/// resume.
async fn prepare_shadow_for_swap(conn: &mut PgConnection, live: &str) -> Result<(), RebuildError> {
    let definitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname::text, i.indexdef FROM pg_indexes i
          WHERE i.schemaname = current_schema() AND i.tablename = $1
            AND i.indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let shadow = shadow_of(live);
    for (name, definition) in definitions {
        // `CREATE [UNIQUE] INDEX <name> ON <schema>.<live> USING <method> (<columns>)`
        let unexpected =
            || StoreError::Corrupt(format!("unexpected index definition: {definition}").into());
        let on = definition.find(" ON ").ok_or_else(unexpected)?;
        let using = on + definition[on..].find(" USING ").ok_or_else(unexpected)?;
        let shadow_index = shadow_of(&name);
        let invalid: Option<bool> = sqlx::query_scalar(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
        )
        .bind(&shadow_index)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
        if invalid == Some(true) {
            execute(conn, &format!("DROP INDEX {shadow_index}")).await?;
        }
        let head = definition[..on].replacen(
            &format!("INDEX {name}"),
            &format!("INDEX CONCURRENTLY IF NOT EXISTS {shadow_index}"),
            1,
        );
        execute_long(conn, &format!("{head} ON {shadow}{}", &definition[using..])).await?;
    }
    execute_long(conn, &format!("ANALYZE {shadow}")).await?;
    Ok(())
}

/// Runs `statement` on `conn` under [`LONG_STEP_TIMEOUT`] instead of the session's statement
/// timeout, which is restored afterwards (also when the statement fails).
async fn execute_long(conn: &mut PgConnection, statement: &str) -> Result<(), StoreError> {
    lengthen_statement_timeout(conn).await?;
    let result = execute(conn, statement).await;
    restore_statement_timeout(conn).await?;
    result
}

async fn lengthen_statement_timeout(conn: &mut PgConnection) -> Result<(), StoreError> {
    let timeout = LONG_STEP_TIMEOUT.as_millis();
    execute(conn, &format!("SET statement_timeout = {timeout}")).await
}

/// Back to the value the connection was opened with (the pool's statement timeout, a startup
/// parameter, which is what `RESET` returns to).
async fn restore_statement_timeout(conn: &mut PgConnection) -> Result<(), StoreError> {
    execute(conn, "RESET statement_timeout").await
}

/// The shadow's secondary indexes (its primary key's index is renamed with the constraint).
async fn shadow_secondary_indexes(
    conn: &mut PgConnection,
    live: &str,
) -> Result<Vec<String>, RebuildError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = $1
            AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')",
    )
    .bind(shadow_of(live))
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(names)
}

/// The rebuild lock's key for the projection bound as `$1` (the one definition: taking it, and
/// asking whether anyone holds it).
const REBUILD_LOCK_KEY: &str = "hashtextextended('device-provisioning rebuild ' || $1, 0)";

/// Shown for a rebuild whose row says it runs while nobody holds its lock.
const INTERRUPTED: &str =
    "interrupted: the process running the rebuild stopped; start it again to resume from its checkpoint";

/// Whether some session holds the rebuild lock of `projection` (a runner is alive).
async fn rebuild_lock_held(conn: &mut PgConnection, projection: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (
           SELECT 1 FROM pg_locks, (SELECT {REBUILD_LOCK_KEY} AS k) AS key
            WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = ((key.k >> 32) & 4294967295)::oid
              AND objid = (key.k & 4294967295)::oid)"
    ))
    .bind(projection)
    .fetch_one(conn)
    .await
    .map_err(unavailable)
}

/// The current or last rebuild of `projection`. A rebuild recorded as running (or cancelling)
/// whose runner is gone (nobody holds its lock: the process was killed or stopped) is shown as
/// failed, interrupted, rather than as running for ever.
pub async fn read_status(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<Option<RebuildStatus>, StoreError> {
    let row = sqlx::query(
        "SELECT state, events_done, events_total, requested_by, started_at, updated_at,
                finished_at, last_error
           FROM projection_rebuilds WHERE projection = $1",
    )
    .bind(projection)
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let state: String = row.try_get("state").map_err(unavailable)?;
    let mut state = RebuildState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt("projection_rebuilds.state".into()))?;
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

fn report_metrics(projection: &'static str, status: &RebuildStatus) {
    metrics::gauge!("projection_rebuild_events_done", "projection" => projection)
        .set(status.events_done as f64);
    metrics::gauge!("projection_rebuild_events_total", "projection" => projection)
        .set(status.events_total as f64);
    metrics::gauge!("projection_rebuild_events_per_second", "projection" => projection)
        .set(status.events_per_second);
}

async fn execute(conn: &mut PgConnection, statement: &str) -> Result<(), StoreError> {
    sqlx::query(statement)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unavailable)
}
