//! `app::DeviceEventStore` on Postgres: loads a device's events and appends new ones, in the
//! postgres-es table layout (one `events` table, optimistic concurrency on its primary key
//! (aggregate type, aggregate id, sequence)). No domain decision is made here: the
//! application runs the aggregate and hands over the events it produced.
//!
//! Two statements, both ours. Why not cqrs-es's `PersistedEventStore` over a postgres-es
//! repository, as before: its append takes the command's metadata as a string map and nothing
//! else, so the idempotency claim had to ride in the events' metadata for the SQL to pick out;
//! it cannot load a device as it was at a version (replays need that); and postgres-es's own
//! `persist` costs three round trips (`BEGIN; INSERT …; COMMIT`). What we kept is what serves:
//! `Device` is a cqrs-es `Aggregate`, and the table is postgres-es's.
//!
//! Appends go through group commit (`group_commit`): commands that arrive together share one
//! statement (`append_statement`: their events and idempotency records) and one transaction,
//! each with its own outcome. A sequence another writer took, or a key another command
//! recorded, violates a primary key, so nothing of that append is written; the violated
//! constraint says which outcome it was.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::{Device, DeviceEvent, DeviceId};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use app::{AppendOutcome, DeviceAppend, DeviceEventStore, LoadedDevice, StoreError};

use crate::append_notifier::AppendNotifier;
use crate::append_statement::EncodedAppend;
use crate::group_commit::{GroupCommit, GroupCommitSettings};

/// A device's events up to a version, oldest first.
const SELECT_DEVICE_EVENTS_UP_TO: &str = "
SELECT sequence, payload FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3
 ORDER BY sequence";

pub struct PostgresDeviceStore {
    pool: PgPool,
    commits: GroupCommit,
}

impl PostgresDeviceStore {
    /// With the default group commit. Must be called within a Tokio runtime: it starts the
    /// committers and the [`AppendNotifier`] task.
    pub fn new(pool: PgPool) -> Self {
        Self::with_group_commit(pool, GroupCommitSettings::default())
    }

    pub fn with_group_commit(pool: PgPool, settings: GroupCommitSettings) -> Self {
        let notifier = AppendNotifier::spawn(pool.clone());
        Self {
            commits: GroupCommit::spawn(pool.clone(), notifier, settings),
            pool,
        }
    }

    async fn load_up_to(&self, id: DeviceId, version: u64) -> Result<LoadedDevice, StoreError> {
        let rows = sqlx::query(SELECT_DEVICE_EVENTS_UP_TO)
            .bind(Device::TYPE)
            .bind(id.to_string())
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut loaded = LoadedDevice::without_events();
        for row in &rows {
            let (sequence, event) = decode(id, row)?;
            loaded.device.apply(event);
            loaded.version = sequence;
        }
        Ok(loaded)
    }
}

#[async_trait]
impl DeviceEventStore for PostgresDeviceStore {
    async fn load(&self, id: DeviceId) -> Result<LoadedDevice, StoreError> {
        self.load_up_to(id, u64::MAX).await
    }

    async fn load_at(&self, id: DeviceId, version: u64) -> Result<LoadedDevice, StoreError> {
        self.load_up_to(id, version).await
    }

    /// Queued for the next group commit (see `group_commit`): one statement for whatever
    /// arrived together.
    async fn append(&self, appends: &[DeviceAppend<'_>]) -> Result<Vec<AppendOutcome>, StoreError> {
        let encoded = appends
            .iter()
            .map(EncodedAppend::encode)
            .collect::<Result<Vec<_>, _>>()?;
        self.commits.append(encoded).await
    }
}

/// A stored event and its sequence. A payload that does not decode is corruption, not an
/// outage.
fn decode(id: DeviceId, row: &PgRow) -> Result<(u64, DeviceEvent), StoreError> {
    let sequence: i64 = row.try_get("sequence").map_err(unavailable)?;
    let event = match row.try_get::<Json<DeviceEvent>, _>("payload") {
        Ok(Json(event)) => event,
        Err(e @ sqlx::Error::ColumnDecode { .. }) => {
            return Err(StoreError::Corrupt(
                UnreadableEvent {
                    device_id: id,
                    sequence,
                    source: e,
                }
                .into(),
            ))
        }
        Err(e) => return Err(unavailable(e)),
    };
    // The column's CHECK keeps sequences at 1 or above.
    Ok((sequence as u64, event))
}

#[derive(Debug, thiserror::Error)]
#[error("event {device_id}/{sequence} cannot be decoded")]
struct UnreadableEvent {
    device_id: DeviceId,
    sequence: i64,
    source: sqlx::Error,
}

fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.into())
}
