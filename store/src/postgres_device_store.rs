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
//! An append is one statement, atomic on its own: the events (multi-row `INSERT … SELECT
//! FROM unnest(…)`), and, when the command came with an `Idempotency-Key`, its record in
//! `idempotency_keys`, from the claim's values. A sequence another writer took, or a key
//! another command recorded, violates a primary key, so the whole append fails and nothing
//! of it is written; the violated constraint says which outcome it was.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use domain::{Device, DeviceEvent, DeviceId};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use app::{AppendOutcome, DeviceAppend, DeviceEventStore, LoadedDevice, StoreError};

use crate::append_notifier::AppendNotifier;
use crate::event_metadata::EventMetadata;

/// A device's events up to a version, oldest first.
const SELECT_DEVICE_EVENTS_UP_TO: &str = "
SELECT sequence, payload FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3
 ORDER BY sequence";

/// One command's events in postgres-es's column list (the other columns of `events` have
/// defaults), all with the command's metadata, and its idempotency record when it has a
/// claim (`$8`..`$11` are NULL otherwise), at the version the events bring the device to.
/// A data-modifying `WITH` runs to completion whether or not the outer statement reads it.
const INSERT_EVENTS: &str = "
WITH appended AS (
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload, $3
      FROM unnest($4::bigint[], $5::text[], $6::text[], $7::jsonb[])
           AS e (sequence, event_type, event_version, payload)
)
INSERT INTO idempotency_keys (tenant, route, idempotency_key, request_fingerprint, aggregate_id, sequence)
SELECT $8, $9, $10, $11, $2, $12
 WHERE $10::text IS NOT NULL";

/// The primary key of `idempotency_keys`: a violation means another command holds the key.
/// Any other unique violation of [`INSERT_EVENTS`] is the events' primary key (`position`
/// and `transaction_id` are assigned by Postgres, never repeated).
const IDEMPOTENCY_KEYS_PRIMARY_KEY: &str = "idempotency_keys_pkey";

pub struct PostgresDeviceStore {
    pool: PgPool,
    notifier: AppendNotifier,
}

impl PostgresDeviceStore {
    /// Must be called within a Tokio runtime: it starts the [`AppendNotifier`] task.
    pub fn new(pool: PgPool) -> Self {
        Self {
            notifier: AppendNotifier::spawn(pool.clone()),
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

    async fn append_one(&self, append: &DeviceAppend<'_>) -> Result<AppendOutcome, StoreError> {
        let count = append.events.len();
        if count == 0 {
            return Ok(AppendOutcome::Appended {
                version: append.expected_version,
            });
        }
        let first = sequence_of(append.expected_version)? + 1;
        let sequences: Vec<i64> = (first..).take(count).collect();
        let last = first + (count as i64 - 1);
        let event_types: Vec<String> = append.events.iter().map(|e| e.event_type()).collect();
        let event_versions: Vec<String> = append.events.iter().map(|e| e.event_version()).collect();
        let payloads: Vec<Json<&DeviceEvent>> = append.events.iter().map(Json).collect();
        let claim = append.claim;
        let result = sqlx::query(INSERT_EVENTS)
            .bind(Device::TYPE)
            .bind(append.device_id.to_string())
            .bind(Json(EventMetadata::of(append.metadata, claim)))
            .bind(sequences)
            .bind(event_types)
            .bind(event_versions)
            .bind(payloads)
            .bind(claim.map(|c| c.scope.tenant.as_str()))
            .bind(claim.map(|c| c.scope.route.as_str()))
            .bind(claim.map(|c| c.scope.key.as_str()))
            .bind(claim.map(|c| c.fingerprint.to_hex()))
            .bind(last)
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(AppendOutcome::Appended {
                version: last as u64,
            }),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                Ok(match db.constraint() {
                    Some(IDEMPOTENCY_KEYS_PRIMARY_KEY) => AppendOutcome::KeyAlreadyClaimed,
                    _ => AppendOutcome::VersionConflict,
                })
            }
            Err(e) => Err(unavailable(e)),
        }
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

    /// One statement per append, for now; a group commit would put the batch in one.
    async fn append(&self, appends: &[DeviceAppend<'_>]) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(appends.len());
        let mut result = Ok(());
        for append in appends {
            match self.append_one(append).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Appends before a failure did commit: the relay must hear of them either way.
        if outcomes
            .iter()
            .any(|o| matches!(o, AppendOutcome::Appended { .. }))
        {
            self.notifier.appended();
        }
        result.map(|()| outcomes)
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

/// A version as the `sequence` column holds it.
fn sequence_of(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Corrupt(VersionOutOfRange(version).into()))
}

#[derive(Debug, thiserror::Error)]
#[error("event {device_id}/{sequence} cannot be decoded")]
struct UnreadableEvent {
    device_id: DeviceId,
    sequence: i64,
    source: sqlx::Error,
}

#[derive(Debug, thiserror::Error)]
#[error("version {0} is outside the range of the events' sequence column")]
struct VersionOutOfRange(u64);

fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.into())
}
