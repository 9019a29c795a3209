//! A readiness probe for Postgres: one round trip on a pooled connection.

use sqlx::PgPool;

/// `Ok` when a connection can be had and answers `SELECT 1`; the error says why not, without
/// the connection string.
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            sqlx::Error::PoolTimedOut => "no connection available (pool timed out)".to_owned(),
            sqlx::Error::Io(e) => format!("cannot reach the server: {e}"),
            other => other.to_string(),
        })
}

/// Whether Postgres answers now, for callers that must not know sqlx (the worker's rule that
/// an outage is not a message's failure).
#[derive(Clone)]
pub struct DatabaseProbe {
    pool: PgPool,
}

impl DatabaseProbe {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// One [`ping`], bounded by `timeout`.
    pub async fn answers(&self, timeout: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, ping(&self.pool)).await,
            Ok(Ok(()))
        )
    }
}
