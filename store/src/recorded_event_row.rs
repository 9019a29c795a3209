//! Decoding a row of `events` into an `app::RecordedEvent`: the one place that knows how
//! the stored columns map to a device's event (read through the device's stored schema,
//! `stored_events`) and its commit-order position. Only device events are recorded events:
//! every query that selects [`COLUMNS`] also selects `aggregate_type = 'device'`
//! (`Device::TYPE`), so another aggregate's rows never reach this decoder.

use app::{CommitPosition, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use domain::{Device, DeviceId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::stored_events::{EventSchema, StoredEventRef};

/// The columns [`decode`] reads, for `SELECT` lists.
///
/// The transaction id travels as text (sqlx has no `xid8` type) under another name: an output
/// column named `transaction_id` would capture `ORDER BY transaction_id`, and commit order
/// would silently become the text order of the ids ("1000" < "999"), skipping events.
///
/// Only the metadata a reader needs is selected (`tenant` is a stored generated column), and
/// the payload comes as JSON text, decoded straight into its stored form, without an
/// intermediate JSON tree: on the feed, decoding is most of the work.
pub(crate) const COLUMNS: &str = "aggregate_id, sequence, event_type, event_version, \
     payload::text AS payload, tenant, \
     metadata ->> 'traceparent' AS traceparent, \
     transaction_id::text AS transaction_id_text, position, recorded_at";

pub(crate) fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(what.into());
    let aggregate_id: String = row.try_get("aggregate_id").map_err(unavailable)?;
    let device_id = uuid::Uuid::parse_str(&aggregate_id)
        .map(DeviceId::from_uuid)
        .map_err(|_| corrupt(format!("event of aggregate {aggregate_id:?}: not a uuid")))?;
    let sequence: i64 = row.try_get("sequence").map_err(unavailable)?;
    let tenant: Option<String> = row.try_get("tenant").map_err(unavailable)?;
    let traceparent: Option<String> = row.try_get("traceparent").map_err(unavailable)?;
    let transaction_id: String = row.try_get("transaction_id_text").map_err(unavailable)?;
    let position: i64 = row.try_get("position").map_err(unavailable)?;
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at").map_err(unavailable)?;
    let stored = StoredEventRef {
        event_type: row.try_get("event_type").map_err(unavailable)?,
        event_version: row.try_get("event_version").map_err(unavailable)?,
        payload: row.try_get("payload").map_err(unavailable)?,
    };
    let event = Device::decode(stored)
        .map_err(|e| corrupt(format!("event {aggregate_id}/{sequence}: {e}")))?;
    let tenant = tenant
        .and_then(|t| TenantId::parse(&t).ok())
        .ok_or_else(|| corrupt(format!("event {aggregate_id}/{sequence}: no tenant")))?;
    Ok(RecordedEvent {
        device_id,
        sequence: sequence as u64,
        tenant,
        event,
        traceparent,
        position: CommitPosition {
            transaction_id: transaction_id
                .parse()
                .map_err(|_| corrupt(format!("transaction id {transaction_id:?}")))?,
            position,
        },
        recorded_at,
    })
}

pub(crate) fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.into())
}
