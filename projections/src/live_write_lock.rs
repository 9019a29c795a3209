//! Serialising one projection's live writers across processes, for the rest of the caller's
//! transaction: for read models whose writes cannot run side by side (counts kept as deltas,
//! rows of several tables that must move together).

use sqlx::PgConnection;

use crate::error::unavailable;
use crate::ProjectionError;

/// Takes the transaction-scoped advisory lock of `projection`'s live writes.
pub(crate) async fn lock_live_writes(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<(), ProjectionError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("device-provisioning projection {projection}"))
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}
