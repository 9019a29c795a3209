//! `certificate_revocation_lists`: the current signed CRL of each CA (`app::CrlRepository`).
//! A publication replaces the row only if it still holds the CRL number the new one follows,
//! so concurrent workers never publish two CRLs with one number nor go back.

use app::pki::{CrlHeader, CrlRepository, IssuingCaId, PublishedCrl};
use app::StoreError;
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::recorded_event_row::unavailable;

const HEADER_COLUMNS: &str = "crl_number, this_update, next_update, revocations_seen, entries";

#[derive(Clone)]
pub struct PostgresCrls {
    pool: PgPool,
}

impl PostgresCrls {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn header(row: &PgRow) -> Result<CrlHeader, sqlx::Error> {
    let count = |name: &str| row.try_get::<i64, _>(name).map(|n| n.max(0) as u64);
    Ok(CrlHeader {
        number: count("crl_number")?,
        this_update: row.try_get("this_update")?,
        next_update: row.try_get("next_update")?,
        revocations_seen: count("revocations_seen")?,
        entries: count("entries")?,
    })
}

#[async_trait]
impl CrlRepository for PostgresCrls {
    async fn current_header(&self, ca: &IssuingCaId) -> Result<Option<CrlHeader>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {HEADER_COLUMNS} FROM certificate_revocation_lists WHERE ca = $1"
        ))
        .bind(ca.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(header).transpose().map_err(unavailable)
    }

    async fn current(&self, ca: &IssuingCaId) -> Result<Option<PublishedCrl>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {HEADER_COLUMNS}, der FROM certificate_revocation_lists WHERE ca = $1"
        ))
        .bind(ca.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(PublishedCrl {
            ca: ca.clone(),
            header: header(&row).map_err(unavailable)?,
            der: row
                .try_get::<Vec<u8>, _>("der")
                .map_err(unavailable)?
                .into(),
        }))
    }

    async fn publish(
        &self,
        crl: &PublishedCrl,
        replacing: Option<u64>,
    ) -> Result<bool, StoreError> {
        let h = &crl.header;
        let published = sqlx::query(
            "INSERT INTO certificate_revocation_lists AS current
                    (ca, crl_number, this_update, next_update, revocations_seen, entries, der)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (ca) DO UPDATE
                SET crl_number = EXCLUDED.crl_number, this_update = EXCLUDED.this_update,
                    next_update = EXCLUDED.next_update,
                    revocations_seen = EXCLUDED.revocations_seen, entries = EXCLUDED.entries,
                    der = EXCLUDED.der, published_at = now()
              WHERE current.crl_number = $8",
        )
        .bind(crl.ca.as_str())
        .bind(h.number as i64)
        .bind(h.this_update)
        .bind(h.next_update)
        .bind(h.revocations_seen as i64)
        .bind(h.entries as i64)
        .bind(&crl.der[..])
        // No current CRL: the insert either inserts or meets a racing publisher's row, whose
        // number is never -1.
        .bind(replacing.map_or(-1, |n| n as i64))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(published.rows_affected() == 1)
    }
}
