//! The rebuild lock: one rebuild per projection at a time, held as a session advisory lock
//! on the runner's own connection, so that a runner that dies (its connection closes) holds
//! nothing, and anyone can tell whether a runner is alive.

use app::StoreError;
use sqlx::PgConnection;

use crate::error::unavailable;

/// The rebuild lock's key for the projection bound as `$1` (the one definition: taking it, and
/// asking whether anyone holds it).
const REBUILD_LOCK_KEY: &str = "hashtextextended('device-provisioning rebuild ' || $1, 0)";

/// Takes `projection`'s rebuild lock on `conn` if nobody holds it; whether it did.
pub(super) async fn try_lock(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({REBUILD_LOCK_KEY})"))
        .bind(projection)
        .fetch_one(conn)
        .await
        .map_err(unavailable)
}

/// Whether some session holds the rebuild lock of `projection` (a runner is alive).
pub(super) async fn rebuild_lock_held(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<bool, StoreError> {
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
