//! A rebuild's long steps (counting the events, building the shadows' indexes, ANALYZE) run
//! under a statement timeout of their own: bounded, but far above the pool's per-statement
//! timeout, so that a large table does not fail the rebuild at the same step on every resume.

use std::time::Duration;

use app::StoreError;
use sqlx::PgConnection;

use crate::table_copies::execute;

const LONG_STEP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs `statement` on `conn` under [`LONG_STEP_TIMEOUT`] instead of the session's statement
/// timeout, which is restored afterwards (also when the statement fails).
pub(super) async fn execute_long(
    conn: &mut PgConnection,
    statement: &str,
) -> Result<(), StoreError> {
    lengthen_statement_timeout(conn).await?;
    let result = execute(conn, statement).await;
    restore_statement_timeout(conn).await?;
    result
}

/// The events in the store (the rebuild's total), counted as a long step.
pub(super) async fn count_events(conn: &mut PgConnection) -> Result<i64, StoreError> {
    lengthen_statement_timeout(conn).await?;
    let counted = store::count_events(conn).await;
    restore_statement_timeout(conn).await?;
    counted
}

async fn lengthen_statement_timeout(conn: &mut PgConnection) -> Result<(), StoreError> {
    let timeout = LONG_STEP_TIMEOUT.as_millis();
    execute(conn, &format!("SET statement_timeout = {timeout}")).await
}

/// Back to the value the connection was opened with (the pool's statement timeout, a startup
/// parameter, which is what `RESET` returns to).
async fn restore_statement_timeout(conn: &mut PgConnection) -> Result<(), StoreError> {
    execute(conn, "RESET statement_timeout").await
}
