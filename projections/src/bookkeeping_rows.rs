//! The projections' bookkeeping tables, one row per projection (`projection_checkpoints`,
//! `projection_backfills`, `projection_rebuilds`): reading a projection's row, and the one
//! encoding of the commit position they store (`transaction_id xid8, position bigint`).

use app::{CommitPosition, StoreError};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgExecutor, Postgres, Row};

/// `projection`'s row, selected by `select` (its `$1` is the projection's name).
pub(crate) async fn projection_row<'e>(
    executor: impl PgExecutor<'e>,
    select: &'static str,
    projection: &str,
) -> Result<Option<PgRow>, StoreError> {
    sqlx::query(select)
        .bind(projection)
        .fetch_optional(executor)
        .await
        .map_err(unavailable)
}

use crate::error::unavailable;

/// Binds `position` as the next two parameters, written `$n::text::xid8, $n+1` (an `xid8`
/// is bound as text: sqlx has no encoding for it).
pub(crate) fn bind_position(
    query: Query<'_, Postgres, PgArguments>,
    position: CommitPosition,
) -> Query<'_, Postgres, PgArguments> {
    query
        .bind(position.transaction_id.to_string())
        .bind(position.position)
}

/// A commit position selected as `transaction_id::text AS xid, position` from a row of
/// `table`.
pub(crate) fn decode_position(row: &PgRow, table: &str) -> Result<CommitPosition, StoreError> {
    let xid: String = row.try_get("xid").map_err(unavailable)?;
    Ok(CommitPosition {
        transaction_id: xid
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{table}.transaction_id").into()))?,
        position: row.try_get("position").map_err(unavailable)?,
    })
}
