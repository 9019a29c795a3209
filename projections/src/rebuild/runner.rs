//! The rebuild runner: takes the rebuild lock, sets the shadows up (or resumes), folds the
//! event store into them batch by batch, prepares them and swaps them in (see the module docs
//! of `rebuild`).

use std::time::Duration;

use app::{CommitPosition, EventEnvelope, RebuildStatus, StoreError};
use sqlx::{Connection, PgConnection, PgPool};

use super::state::{self, read_status};
use super::{lock, long_steps, shadow_tables};
use crate::checkpoint::furthest_position;
use crate::error::unavailable;
use crate::runner::RunnableProjection;
use crate::table_copies::{execute, TableSet};
use crate::ProjectionError;

/// Events per batch: large enough that round trips are a small part of the work, small enough
/// that a batch commits in tens of milliseconds.
const DEFAULT_BATCH: usize = 5_000;

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
    projection: &'static dyn RunnableProjection,
}

impl ProjectionRebuild {
    pub(crate) fn new(pool: PgPool, projection: &'static dyn RunnableProjection) -> Self {
        Self {
            pool,
            batch: DEFAULT_BATCH,
            projection,
        }
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn with_batch(self, batch: usize) -> Self {
        Self {
            batch: batch.max(1),
            ..self
        }
    }

    fn live_tables(&self) -> Vec<&'static str> {
        self.projection.tables().iter().map(|t| t.name).collect()
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

    /// Takes the rebuild lock and sets the rebuild up (fresh shadows, or the unfinished ones
    /// to resume); [`StartedRebuild::run`] does the work. Fails at once if a rebuild runs.
    pub async fn start(&self, requested_by: &str) -> Result<StartedRebuild, RebuildError> {
        let mut conn = self.lock().await?;
        let prepared = async {
            // The shadows' rows and checkpoint commit together: losing the last commits in a
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
    let _ = state::mark_failed(&mut conn, projection, &error.to_string()).await;
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
        for table in self.live_tables() {
            shadow_tables::prepare_for_swap(conn, table).await?;
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

    /// Takes the rebuild lock on a connection of its own (`lock.rs`).
    async fn lock(&self) -> Result<PgConnection, RebuildError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?.detach();
        if !lock::try_lock(&mut conn, self.name()).await? {
            let _ = conn.close().await;
            return Err(RebuildError::AlreadyRunning);
        }
        Ok(conn)
    }

    /// The checkpoint to continue from: the last one when an unfinished rebuild left its
    /// shadows, else the start, with fresh shadows.
    async fn start_or_resume(
        &self,
        conn: &mut PgConnection,
        requested_by: &str,
    ) -> Result<CommitPosition, RebuildError> {
        let tables = self.live_tables();
        let shadows_exist = shadow_tables::shadows_exist(conn, &tables).await?;
        if let Some(checkpoint) = state::unfinished_checkpoint(conn, self.name()).await? {
            if shadows_exist {
                state::mark_resumed(conn, self.name(), requested_by).await?;
                tracing::info!(projection = self.name(), "resuming the unfinished rebuild");
                return Ok(checkpoint);
            }
        }
        // Counted before the DDL's transaction, which holds a transaction id: an id held while
        // the whole event store is counted would hold back the commit-order horizon (the
        // relay and the feed publish nothing past it).
        let events_total = long_steps::count_events(conn).await?;
        let mut tx = conn.begin().await.map_err(unavailable)?;
        shadow_tables::create_shadows(&mut tx, &tables).await?;
        state::mark_started(&mut tx, self.name(), requested_by, events_total).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(CommitPosition::START)
    }

    /// Folds settled events into the shadows until none is left. `Some` when the rebuild was
    /// cancelled meanwhile.
    async fn catch_up(
        &self,
        conn: &mut PgConnection,
        checkpoint: &mut CommitPosition,
        progress: &mut impl FnMut(&RebuildStatus),
    ) -> Result<Option<RebuildOutcome>, RebuildError> {
        loop {
            let batch = store::committed_events_after(conn, *checkpoint, self.batch).await?;
            let Some(last) = furthest_position(&batch.events) else {
                if batch.held_back {
                    // An older transaction is still open; its events come in a moment.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Ok(None);
            };
            let full = batch.events.len() == self.batch;
            let events: Vec<EventEnvelope> = batch
                .events
                .into_iter()
                .map(app::RecordedEvent::into_envelope)
                .collect();
            let mut tx = conn.begin().await.map_err(unavailable)?;
            self.projection
                .fold_into(&mut tx, TableSet::Shadow, &events)
                .await?;
            if !state::record_progress(&mut tx, self.name(), last, events.len()).await? {
                tx.rollback().await.map_err(unavailable)?;
                let events_done = state::mark_cancelled(conn, self.name()).await?;
                tracing::info!(projection = self.name(), events_done, "rebuild cancelled");
                return Ok(Some(RebuildOutcome::Cancelled { events_done }));
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

    /// The swap transaction (module docs): asks for the lock without waiting, or waiting at
    /// most `wait`. `None` when the lock was not granted.
    async fn swap(
        &self,
        conn: &mut PgConnection,
        mut checkpoint: CommitPosition,
        wait: Option<Duration>,
    ) -> Result<Option<u64>, RebuildError> {
        let tables = self.live_tables();
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
            tables.join(", "),
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
        let mut folded = 0u64;
        loop {
            let recorded = store::visible_events_after(&mut tx, checkpoint, self.batch).await?;
            let Some(last) = furthest_position(&recorded) else {
                break;
            };
            let events: Vec<EventEnvelope> = recorded
                .into_iter()
                .map(app::RecordedEvent::into_envelope)
                .collect();
            self.projection
                .fold_into(&mut tx, TableSet::Shadow, &events)
                .await?;
            folded += events.len() as u64;
            checkpoint = last;
        }
        for live in &tables {
            shadow_tables::swap_in(&mut tx, live).await?;
        }
        let events = state::mark_completed(&mut tx, self.name(), checkpoint, folded).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(events))
    }
}

fn report_metrics(projection: &'static str, status: &RebuildStatus) {
    metrics::gauge!("projection_rebuild_events_done", "projection" => projection)
        .set(status.events_done as f64);
    metrics::gauge!("projection_rebuild_events_total", "projection" => projection)
        .set(status.events_total as f64);
    metrics::gauge!("projection_rebuild_events_per_second", "projection" => projection)
        .set(status.events_per_second);
}
