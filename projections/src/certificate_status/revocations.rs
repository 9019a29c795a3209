//! The revocations recorded in `certificate_status`, as CRLs are made from them
//! (`app::pki::Revocations`): one CA's, since a CA's CRL lists its own certificates only.
//! Reads the live table only.

use std::sync::Arc;

use app::pki::{IssuedRevocations, IssuingCaId, Revocations, RevokedCertificate};
use app::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::RevocationReason;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};

use crate::error::unavailable;

/// One CA's revocations.
pub struct PostgresRevocations {
    pool: PgPool,
    ca: IssuingCaId,
    with_unattributed: bool,
}

impl PostgresRevocations {
    /// The revocations of certificates `ca` issued.
    pub fn of(pool: PgPool, ca: IssuingCaId) -> Self {
        Self {
            pool,
            ca,
            with_unattributed: false,
        }
    }

    /// The platform's CA `ca`: also those of certificates recorded before certificates named
    /// their issuer, all of which it issued.
    pub fn of_platform_ca(pool: PgPool, ca: IssuingCaId) -> Self {
        Self {
            with_unattributed: true,
            ..Self::of(pool, ca)
        }
    }
}

#[async_trait]
impl Revocations for PostgresRevocations {
    async fn count(&self) -> Result<u64, StoreError> {
        // Index scans of `certificate_status_by_issuer` (the unattributed: the partial index on
        // revoked rows).
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM certificate_status
              WHERE revoked_at IS NOT NULL AND (issuer = $1 OR ($2 AND issuer IS NULL))",
        )
        .bind(self.ca.as_str())
        .bind(self.with_unattributed)
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
              WHERE revoked_at IS NOT NULL AND not_after > $1
                AND (issuer = $2 OR ($3 AND issuer IS NULL))
              ORDER BY serial",
        )
        .bind(at)
        .bind(self.ca.as_str())
        .bind(self.with_unattributed)
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            let reason: &str = row.try_get("reason").map_err(unavailable)?;
            entries.push(RevokedCertificate {
                serial: row.try_get("serial").map_err(unavailable)?,
                revoked_at: row.try_get("revoked_at").map_err(unavailable)?,
                reason: RevocationReason::parse(reason)
                    .map_err(|_| StoreError::Corrupt("certificate_status.reason".into()))?
                    .into(),
            });
        }
        drop(rows);
        tx.commit().await.map_err(unavailable)?;
        Ok(entries)
    }
}

/// Each issuing CA's revocations, on one pool (`app::pki::IssuedRevocations`).
pub struct PostgresIssuedRevocations {
    pool: PgPool,
}

impl PostgresIssuedRevocations {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl IssuedRevocations for PostgresIssuedRevocations {
    fn of(&self, ca: &IssuingCaId) -> Arc<dyn Revocations> {
        Arc::new(PostgresRevocations::of(self.pool.clone(), ca.clone()))
    }
}
