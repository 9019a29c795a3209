//! The connection pool, with the timeouts every database call is subject to.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `postgres://user@host:port/db`. May hold a password: never log it whole.
    pub url: String,
    pub max_connections: u32,
    /// How long a caller waits for a free connection before the request fails with 503.
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` for every statement on these connections.
    pub statement_timeout: Duration,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
    /// Plan every execution of a prepared statement afresh (`plan_cache_mode =
    /// force_custom_plan`) instead of letting Postgres settle on a generic plan after five.
    /// For connections whose statements take arrays of varying size (batches of 1 to
    /// hundreds) against tables that grow fast: a generic plan made while a table was nearly
    /// empty (a sequential scan and a hash join) stays on a long-lived connection until the
    /// table is next analyzed, and grows costlier with every row. Planning per execution costs
    /// a fraction of a millisecond per statement, so only batch statements should pay it.
    pub plan_per_execution: bool,
}

/// `DATABASE_URL` cannot be used (the message names no part of it: it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("DATABASE_URL is not a usable Postgres URL")]
pub struct DatabaseUrlError(#[source] sqlx::Error);

impl DatabaseSettings {
    pub fn connect_options(&self) -> Result<PgConnectOptions, DatabaseUrlError> {
        let options = PgConnectOptions::from_str(&self.url)
            .map_err(DatabaseUrlError)?
            .application_name(&self.application_name)
            .options([(
                "statement_timeout",
                self.statement_timeout.as_millis().to_string(),
            )]);
        Ok(match self.plan_per_execution {
            true => options.options([("plan_cache_mode", "force_custom_plan")]),
            false => options,
        })
    }
}

/// A lazily connecting pool: the process starts even if Postgres is down, and each call
/// fails after `acquire_timeout` until it is back.
pub fn connect(settings: &DatabaseSettings) -> Result<PgPool, DatabaseUrlError> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx pings every connection it hands out by default: one extra round trip per
        // query, which on the command path doubled the round trips. A connection that broke
        // while idle fails its next query instead (answered 503, and sqlx drops it), and
        // idle connections are recycled before servers or proxies time them out.
        .test_before_acquire(false)
        .idle_timeout(std::time::Duration::from_secs(60))
        .max_lifetime(std::time::Duration::from_secs(30 * 60))
        .connect_lazy_with(settings.connect_options()?))
}

/// Closes the pool at shutdown, waiting at most `within` for connections in use to come back
/// and for Postgres to acknowledge: a hung server must not keep a stopping process alive.
pub async fn close(pool: &PgPool, within: std::time::Duration) {
    if tokio::time::timeout(within, pool.close()).await.is_err() {
        tracing::warn!(
            ?within,
            "Postgres connections did not close in time; exiting anyway"
        );
    }
}
