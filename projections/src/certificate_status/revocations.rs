//! The revocations recorded in `certificate_status`, as CRLs are made from them
//! (`app::pki::Revocations`). Reads the live table only.

use app::pki::{Revocations, RevokedCertificate};
use app::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::RevocationReason;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};

use crate::error::unavailable;

pub struct PostgresRevocations {
    pool: PgPool,
}

impl PostgresRevocations {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Revocations for PostgresRevocations {
    async fn count(&self) -> Result<u64, StoreError> {
        // An index-only scan of the partial index on revoked rows.
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM certificate_status WHERE revoked_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(count.max(0) as u64)
    }

    async fn unexpired_at(&self, at: DateTime<Utc>) -> Result<Vec<RevokedCertificate>, StoreError> {
        // Streamed and converted row by row: a million revocations held as rows at once
        // would cost several times the list itself. Reading that many outlasts the pool's
        // statement timeout on a slow day, so this read has a longer one of its own.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SET LOCAL statement_timeout = '120s'")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let mut entries = Vec::new();
        let mut rows = sqlx::query(
            "SELECT serial, revoked_at, reason FROM certificate_status
              WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY serial",
        )
        .bind(at)
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            let reason: &str = row.try_get("reason").map_err(unavailable)?;
            entries.push(RevokedCertificate {
                serial: row.try_get("serial").map_err(unavailable)?,
                revoked_at: row.try_get("revoked_at").map_err(unavailable)?,
                reason: RevocationReason::parse(reason)
                    .map_err(|_| StoreError::Corrupt("certificate_status.reason".into()))?,
            });
        }
        drop(rows);
        tx.commit().await.map_err(unavailable)?;
        Ok(entries)
    }
}
