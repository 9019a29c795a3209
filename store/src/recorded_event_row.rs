//! Decoding a row of `events` into an `app::RecordedEvent`: the one place that knows how
//! the stored columns map to the event and its commit-order position.

use app::{CommitPosition, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use domain::{DeviceEvent, DeviceId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

/// The columns [`decode`] reads, for `SELECT` lists.
///
/// The transaction id travels as text (sqlx has no `xid8` type) under another name: an output
/// column named `transaction_id` would capture `ORDER BY transaction_id`, and commit order
/// would silently become the text order of the ids ("1000" < "999"), skipping events.
///
/// Only the metadata a reader needs is selected (`tenant` is a stored generated column), and
/// the payload is decoded straight into the event, without an intermediate JSON tree: on the
/// feed, decoding is most of the work.
pub(crate) const COLUMNS: &str = "aggregate_id, sequence, payload, tenant, \
     metadata ->> 'traceparent' AS traceparent, \
     transaction_id::text AS transaction_id_text, position, recorded_at";

pub(crate) fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(what.into());
    let aggregate_id: String = row.try_get("aggregate_id").map_err(unavailable)?;
    let device_id = uuid::Uuid::parse_str(&aggregate_id)
        .map(DeviceId::from_uuid)
        .map_err(|_| corrupt(format!("event of aggregate {aggregate_id:?}: not a uuid")))?;
    let sequence: i64 = row.try_get("sequence").map_err(unavailable)?;
    let payload: Result<Json<DeviceEvent>, _> = row.try_get("payload");
    let tenant: Option<String> = row.try_get("tenant").map_err(unavailable)?;
    let traceparent: Option<String> = row.try_get("traceparent").map_err(unavailable)?;
    let transaction_id: String = row.try_get("transaction_id_text").map_err(unavailable)?;
    let position: i64 = row.try_get("position").map_err(unavailable)?;
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at").map_err(unavailable)?;
    let event = match payload {
        Ok(Json(event)) => event,
        Err(sqlx::Error::ColumnDecode { source, .. }) => {
            return Err(corrupt(format!(
                "event {aggregate_id}/{sequence}: {source}"
            )))
        }
        Err(e) => return Err(unavailable(e)),
    };
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
