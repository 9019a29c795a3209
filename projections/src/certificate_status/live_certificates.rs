//! `app::pki::LiveCertificates` on the live `certificate_status` table: one grouped read,
//! served by `certificate_status_by_issuer` (issuer, revoked_at, not_after).

use std::collections::HashMap;

use app::pki::{IssuingCaId, LiveCertificates};
use app::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::unavailable;

pub struct PostgresLiveCertificates {
    pool: PgPool,
}

impl PostgresLiveCertificates {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LiveCertificates for PostgresLiveCertificates {
    async fn live_by_issuer(
        &self,
        issuers: &[IssuingCaId],
        at: DateTime<Utc>,
    ) -> Result<HashMap<IssuingCaId, u64>, StoreError> {
        let ids: Vec<&str> = issuers.iter().map(IssuingCaId::as_str).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT issuer, count(*) FROM certificate_status
              WHERE issuer = ANY($1) AND revoked_at IS NULL AND not_after > $2
              GROUP BY issuer",
        )
        .bind(&ids)
        .bind(at)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(issuer, count)| (IssuingCaId::recorded(issuer), count.max(0) as u64))
            .collect())
    }
}
