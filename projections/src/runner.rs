//! The runner: what every projection's writes have in common, written once. A batch of
//! events is folded into a set of tables (live, a rebuild's shadows, verify's scratch
//! copies) in the caller's transaction:
//!
//! - **Idempotent**: each device's state is read once per batch, and an event at or below
//!   its version (a redelivery, or another projector process got there first) is skipped.
//!   The states that moved are written only over older versions, so whoever writes version
//!   N writes the same state, and nothing moves back.
//! - **Gap-filling**: an event whose sequence is beyond version + 1 (an earlier message is
//!   late, lost or still in flight) is preceded by the missing events read from the event
//!   store, never skipped.
//! - **Live batches** also serialise where the projection asks for it, move the checkpoint
//!   (`checkpoint.rs`) and notify the projection's change channel, if it has one, with the
//!   devices that moved.
//! - **Repairs** (replay) fold devices again from their whole history and write the states
//!   that differ from the stored ones, never one older than what is stored.
//!
//! [`RunnableProjection`] is a [`Projection`] with its state type out of sight, so that the
//! registry can list read models side by side; every projection is one.

use std::collections::{BTreeMap, HashMap, HashSet};

use app::{CommitPosition, EventEnvelope};
use async_trait::async_trait;
use domain::DeviceId;
use sqlx::PgConnection;

use crate::checkpoint::advance_checkpoint;
use crate::error::unavailable;
use crate::projection::{Change, Overwrite, Projection, Table};
use crate::table_copies::TableSet;
use crate::{BatchReport, ProjectionError};

/// A projection as the runner drives it (see the module docs).
#[async_trait]
pub(crate) trait RunnableProjection: Send + Sync {
    fn name(&self) -> &'static str;

    fn tables(&self) -> &'static [Table];

    /// Folds `events` (in commit order) into `tables` on `conn`. Returns what it did and the
    /// devices whose state moved, in id order.
    async fn fold_into(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        events: &[EventEnvelope],
    ) -> Result<(BatchReport, Vec<MovedDevice>), ProjectionError>;

    /// Folds `events` into the live tables, moves the checkpoint to `furthest` and notifies
    /// the changes, in the caller's transaction.
    async fn apply_live(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
        furthest: CommitPosition,
    ) -> Result<BatchReport, ProjectionError>;

    /// Folds every device of `histories` (each device's whole history, oldest first) again
    /// and repairs its live state where it differs, never moving one back; in the caller's
    /// transaction. Returns how many devices were repaired.
    async fn repair_live(
        &self,
        conn: &mut PgConnection,
        histories: &[EventEnvelope],
    ) -> Result<usize, ProjectionError>;
}

#[async_trait]
impl<P: Projection> RunnableProjection for P {
    fn name(&self) -> &'static str {
        Projection::name(self)
    }

    fn tables(&self) -> &'static [Table] {
        Projection::tables(self)
    }

    async fn fold_into(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        events: &[EventEnvelope],
    ) -> Result<(BatchReport, Vec<MovedDevice>), ProjectionError> {
        let mut ids: Vec<DeviceId> = events.iter().map(|e| e.subject).collect();
        ids.sort_unstable_by_key(|id| id.as_uuid());
        ids.dedup();
        let mut stored = self.load(conn, tables, &ids).await?;
        let mut states = stored.clone();
        let (moved, report) = fold_events(self, conn, &mut states, events).await?;
        let changes: Vec<Change<P::State>> = ids
            .into_iter()
            .filter(|id| moved.contains(id))
            .filter_map(|device| {
                let after = states.remove(&device)?;
                Some(Change {
                    device,
                    before: stored.remove(&device),
                    after,
                })
            })
            .collect();
        if !changes.is_empty() {
            self.write(conn, tables, &changes, Overwrite::Older).await?;
        }
        let moved = changes
            .into_iter()
            .map(|c| MovedDevice {
                device: c.device,
                version: P::version(&c.after),
            })
            .collect();
        Ok((report, moved))
    }

    async fn apply_live(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
        furthest: CommitPosition,
    ) -> Result<BatchReport, ProjectionError> {
        self.serialise_live_writes(conn).await?;
        let (report, moved) = self.fold_into(conn, TableSet::Live, events).await?;
        advance_checkpoint(conn, Projection::name(self), furthest, report.folded()).await?;
        if let Some(channel) = self.changes_channel() {
            notify_changes(conn, channel, &moved).await?;
        }
        Ok(report)
    }

    async fn repair_live(
        &self,
        conn: &mut PgConnection,
        histories: &[EventEnvelope],
    ) -> Result<usize, ProjectionError> {
        let mut refolded: BTreeMap<uuid::Uuid, P::State> = BTreeMap::new();
        for event in histories {
            let id = event.subject.as_uuid();
            let current = refolded.remove(&id);
            refolded.insert(id, self.follow(current, event)?);
        }
        self.serialise_live_writes(conn).await?;
        let ids: Vec<DeviceId> = refolded.keys().copied().map(DeviceId::from_uuid).collect();
        let mut stored = self.load(conn, TableSet::Live, &ids).await?;
        let changes: Vec<Change<P::State>> = refolded
            .into_iter()
            .filter_map(|(id, after)| {
                let device = DeviceId::from_uuid(id);
                let before = stored.remove(&device);
                let repaired = before
                    .as_ref()
                    .is_none_or(|b| P::version(b) <= P::version(&after) && *b != after);
                repaired.then_some(Change {
                    device,
                    before,
                    after,
                })
            })
            .collect();
        if !changes.is_empty() {
            self.write(conn, TableSet::Live, &changes, Overwrite::OlderOrSame)
                .await?;
        }
        Ok(changes.len())
    }
}

/// Folds `events` (in order) into `states`, a state per device at its version: an event at or
/// below the state's version is skipped, one beyond the next version is preceded by the
/// missing events read from the event store. Returns the devices whose state moved.
async fn fold_events<P: Projection>(
    projection: &P,
    conn: &mut PgConnection,
    states: &mut HashMap<DeviceId, P::State>,
    events: &[EventEnvelope],
) -> Result<(HashSet<DeviceId>, BatchReport), ProjectionError> {
    let mut moved = HashSet::new();
    let mut report = BatchReport::default();
    for event in events {
        let id = event.subject;
        let version = states.get(&id).map_or(0, P::version);
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
                current = Some(projection.follow(current, &recorded.to_envelope())?);
            }
            report.gap_filled += missing.len();
        }
        states.insert(id, projection.follow(current, event)?);
        report.applied += 1;
        moved.insert(id);
    }
    Ok((moved, report))
}

/// A device whose state a batch moved, and the version it moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MovedDevice {
    pub(crate) device: DeviceId,
    pub(crate) version: u64,
}

/// Which devices changed and to which version (`<id>:<version>`, comma-separated), so that
/// only their waiters wake, and only those waiting for that version re-read; split to stay
/// under NOTIFY's 8000-byte payload limit.
async fn notify_changes(
    conn: &mut PgConnection,
    channel: &str,
    devices: &[MovedDevice],
) -> Result<(), ProjectionError> {
    if devices.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = devices
        .chunks(150)
        .map(|chunk| {
            chunk
                .iter()
                .map(|m| format!("{}:{}", m.device, m.version))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
        .bind(channel)
        .bind(payloads)
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}
