//! `app::IdempotencyStore` on Postgres. Records are inserted with the command's events, in
//! the append's one statement (see `postgres_event_store.rs`); this adapter reads them and
//! purges old ones.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use app::{IdempotencyRecord, IdempotencyScope, IdempotencyStore, RequestFingerprint, StoreError};

const SELECT_RECORD: &str = "
SELECT request_fingerprint, aggregate_id, sequence FROM idempotency_keys
 WHERE tenant = $1 AND route = $2 AND idempotency_key = $3";

/// Deletes in batches so that a large backlog never holds locks for long.
const DELETE_EXPIRED_BATCH: &str = "
DELETE FROM idempotency_keys WHERE ctid IN (
    SELECT ctid FROM idempotency_keys
     WHERE created_at < now() - make_interval(secs => $1)
     LIMIT $2)";

#[derive(Clone)]
pub struct PostgresIdempotencyStore {
    pool: PgPool,
}

impl PostgresIdempotencyStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Deletes records older than `retention`, in batches; returns how many went.
    pub async fn purge_expired(&self, retention: Duration) -> Result<u64, sqlx::Error> {
        const BATCH: i64 = 5_000;
        let mut total = 0;
        loop {
            let deleted = sqlx::query(DELETE_EXPIRED_BATCH)
                .bind(retention.as_secs_f64())
                .bind(BATCH)
                .execute(&self.pool)
                .await?
                .rows_affected();
            total += deleted;
            if deleted < BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait]
impl IdempotencyStore for PostgresIdempotencyStore {
    async fn find(
        &self,
        scope: &IdempotencyScope,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(SELECT_RECORD)
            .bind(scope.tenant.as_str())
            .bind(&scope.route)
            .bind(scope.key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        let Some((fingerprint, aggregate_id, sequence)) = row else {
            return Ok(None);
        };
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("idempotency record: {what}").into());
        Ok(Some(IdempotencyRecord {
            fingerprint: RequestFingerprint::from_hex(&fingerprint)
                .ok_or_else(|| corrupt("bad fingerprint"))?,
            aggregate_id,
            version: u64::try_from(sequence).map_err(|_| corrupt("negative sequence"))?,
        }))
    }
}
