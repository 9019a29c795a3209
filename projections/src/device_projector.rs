//! The device projector: applies a batch of events to `device_view` in one transaction.
//!
//! - **Facts from the event store**: the batch's messages only name the events to apply;
//!   the events themselves are read from Postgres (`notified_events`).
//!
//! - **Idempotent**: a row moves only forward. Each device's row is read once per batch,
//!   its new events are folded in memory, and the row is written with
//!   `WHERE device_view.version < excluded.version` in the same statement: an event at or
//!   below the row's version (a redelivery, or another projector process got there first)
//!   changes nothing. Because the row at version N is a function of events 1..=N, whoever
//!   writes version N writes the same row.
//! - **Gap-filling**: an event whose sequence is beyond version + 1 (an earlier message is
//!   late, lost or still in flight) is preceded by the missing events read from the event
//!   store, never skipped.
//! - **Checkpointed**: the furthest commit position applied and the count of applied events
//!   are written in the same transaction, then a notification wakes long-polling readers.

use std::collections::{HashMap, HashSet};

use app::{CommitPosition, DeviceView, EventEnvelope, StoreError};
use domain::DeviceId;
use sqlx::{PgConnection, PgPool};

use crate::device_view_fold::{fold, FoldError};
use crate::device_view_table::{self, unavailable, DeviceViewTable};
use crate::notified_events::notified_events;

/// This projection's name (its checkpoint row).
pub const DEVICE_VIEW: &str = "device_view";

/// Notified after every batch that changed the read model, with the changed devices' ids
/// (comma-separated; `ReadModelChanges` listens).
pub const READ_MODEL_CHANGED_CHANNEL: &str = "dp_read_model_changed";

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// Transient: try the batch again later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event cannot follow what the store holds: a poison message, or a bug.
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("event {sequence} of device {device} arrived but events before it are missing from the event store")]
    UnfillableGap { device: DeviceId, sequence: u64 },
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub applied: usize,
    /// Already reflected in the read model.
    pub skipped: usize,
    /// Read from the event store to fill gaps.
    pub gap_filled: usize,
}

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
/// events, in the caller's transaction: every live projector's one checkpoint statement.
pub(crate) async fn advance_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
    position: CommitPosition,
    applied: usize,
) -> Result<(), ProjectionError> {
    sqlx::query(ADVANCE_CHECKPOINT)
        .bind(projection)
        .bind(position.transaction_id.to_string())
        .bind(position.position)
        .bind(applied as i64)
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[derive(Clone)]
pub struct DeviceProjector {
    pool: PgPool,
}

impl DeviceProjector {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies the events `notifications` name, read from the event store (see
    /// `notified_events`), in one transaction. On error nothing is written.
    pub async fn apply(
        &self,
        notifications: &[EventEnvelope],
    ) -> Result<BatchReport, ProjectionError> {
        if notifications.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let (events, furthest) = notified_events(&mut tx, notifications).await?;
        let Some(furthest) = furthest else {
            return Ok(BatchReport {
                skipped: notifications.len(),
                ..BatchReport::default()
            });
        };
        let (rows, report) = project_into(&mut tx, DeviceViewTable::Live, &events).await?;
        advance_checkpoint(
            &mut tx,
            DEVICE_VIEW,
            furthest,
            report.applied + report.gap_filled,
        )
        .await?;
        if !rows.is_empty() {
            // Which devices changed, so that only their waiters re-read; split to stay under
            // NOTIFY's 8000-byte payload limit.
            let payloads: Vec<String> = rows
                .chunks(150)
                .map(|chunk| {
                    chunk
                        .iter()
                        .map(|r| r.id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
                .bind(READ_MODEL_CHANGED_CHANNEL)
                .bind(payloads)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(report)
    }
}

/// Applies `events` to `table` on `conn` (the caller's transaction): reads the rows they
/// touch, folds (filling gaps from the event store), writes the rows that moved forward.
/// Returns those rows, in id order.
pub(crate) async fn project_into(
    conn: &mut PgConnection,
    table: DeviceViewTable,
    events: &[EventEnvelope],
) -> Result<(Vec<DeviceView>, BatchReport), ProjectionError> {
    let (rows, report) = fold_batch(conn, table, events).await?;
    if !rows.is_empty() {
        upsert(conn, table, &rows).await?;
    }
    Ok((rows, report))
}

/// The rows that change, each at its new version.
async fn fold_batch(
    conn: &mut PgConnection,
    table: DeviceViewTable,
    events: &[EventEnvelope],
) -> Result<(Vec<DeviceView>, BatchReport), ProjectionError> {
    let mut ids: Vec<uuid::Uuid> = events.iter().map(|e| e.subject.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let stored = sqlx::query(table.select_rows())
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
    let mut rows: HashMap<DeviceId, DeviceView> = HashMap::with_capacity(ids.len());
    for row in &stored {
        let view = device_view_table::decode(row)?;
        rows.insert(view.id, view);
    }
    let (changed, report) = fold_events(
        conn,
        &mut rows,
        events,
        |row| row.version,
        |row, event| Ok(fold(row, event)?),
    )
    .await?;
    // Written in id order: concurrent projectors then lock rows in the same order and
    // cannot deadlock each other.
    let mut rows: Vec<DeviceView> = changed
        .into_iter()
        .filter_map(|id| rows.remove(&id))
        .collect();
    rows.sort_unstable_by_key(|r| r.id.as_uuid());
    Ok((rows, report))
}

/// Folds `events` (in order) into `states`, a state per device at its version: an event at or
/// below the state's version is skipped, one beyond the next version is preceded by the
/// missing events read from the event store. Every read model's projector shares this.
/// Returns the devices whose state moved.
pub(crate) async fn fold_events<T>(
    conn: &mut PgConnection,
    states: &mut HashMap<DeviceId, T>,
    events: &[EventEnvelope],
    version_of: impl Fn(&T) -> u64,
    follow: impl Fn(Option<T>, &EventEnvelope) -> Result<T, ProjectionError>,
) -> Result<(HashSet<DeviceId>, BatchReport), ProjectionError> {
    let mut changed = HashSet::new();
    let mut report = BatchReport::default();
    for event in events {
        let id = event.subject;
        let version = states.get(&id).map_or(0, &version_of);
        if event.sequence <= version {
            report.skipped += 1;
            continue;
        }
        let mut current = states.remove(&id);
        if event.sequence > version + 1 {
            let missing =
                store::device_events_between(conn, id, version, event.sequence - 1).await?;
            if missing.len() as u64 != event.sequence - 1 - version {
                return Err(ProjectionError::UnfillableGap {
                    device: id,
                    sequence: event.sequence,
                });
            }
            for recorded in &missing {
                current = Some(follow(current, &recorded.to_envelope())?);
            }
            report.gap_filled += missing.len();
        }
        states.insert(id, follow(current, event)?);
        report.applied += 1;
        changed.insert(id);
    }
    Ok((changed, report))
}

async fn upsert(
    conn: &mut PgConnection,
    table: DeviceViewTable,
    rows: &[DeviceView],
) -> Result<(), ProjectionError> {
    write_rows(conn, table.upsert_rows(), rows).await
}

/// Writes `rows` with `statement`, one of [`DeviceViewTable`]'s row upserts.
pub(crate) async fn write_rows(
    conn: &mut PgConnection,
    statement: &'static str,
    rows: &[DeviceView],
) -> Result<(), ProjectionError> {
    let json =
        |v: serde_json::Result<serde_json::Value>| v.map_err(|e| StoreError::Corrupt(e.into()));
    let mut labels = Vec::with_capacity(rows.len());
    let mut certificates = Vec::with_capacity(rows.len());
    let mut failures = Vec::with_capacity(rows.len());
    for row in rows {
        labels.push(json(serde_json::to_value(&row.labels))?);
        certificates.push(
            row.certificate
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.into()))?,
        );
        failures.push(
            row.failure
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.into()))?,
        );
    }
    sqlx::query(statement)
        .bind(rows.iter().map(|r| r.id.as_uuid()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.tenant.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.serial_number.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>())
        .bind(labels)
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(certificates)
        .bind(failures)
        .bind(rows.iter().map(|r| r.version as i64).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// A read model fed with batches of events (the worker's projector consumers use it).
#[async_trait::async_trait]
pub trait BatchProjector: Send + Sync + 'static {
    /// The projection's name (metrics, checkpoints).
    fn name(&self) -> &'static str;
    async fn apply(&self, events: &[EventEnvelope]) -> Result<BatchReport, ProjectionError>;
}

#[async_trait::async_trait]
impl BatchProjector for DeviceProjector {
    fn name(&self) -> &'static str {
        DEVICE_VIEW
    }
    async fn apply(&self, events: &[EventEnvelope]) -> Result<BatchReport, ProjectionError> {
        DeviceProjector::apply(self, events).await
    }
}
