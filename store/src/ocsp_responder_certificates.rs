//! `ocsp_responder_keys` and `ocsp_signer_certificates` (`app::pki::ResponderCertificates`):
//! the api's responder key by its public key, and tenant CAs' certificates of it.

use app::pki::{IssuingCaId, ResponderCertificate, ResponderCertificates, ResponderKey};
use app::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::recorded_event_row::unavailable;

#[derive(Clone)]
pub struct PostgresResponderCertificates {
    pool: PgPool,
}

impl PostgresResponderCertificates {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ResponderCertificates for PostgresResponderCertificates {
    async fn register(&self, key: &ResponderKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ocsp_responder_keys (key_sha256, spki) VALUES ($1, $2)
             ON CONFLICT (key_sha256) DO NOTHING",
        )
        .bind(&key.sha256)
        .bind(&key.spki)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<ResponderKey>, StoreError> {
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT key_sha256, spki FROM ocsp_responder_keys ORDER BY key_sha256")
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(sha256, spki)| ResponderKey { sha256, spki })
            .collect())
    }

    async fn expiry(
        &self,
        ca: &IssuingCaId,
        key: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query_scalar(
            "SELECT not_after FROM ocsp_signer_certificates WHERE ca = $1 AND key_sha256 = $2",
        )
        .bind(ca.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn store(&self, key: &str, certificate: &ResponderCertificate) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ocsp_signer_certificates (ca, key_sha256, chain_pem, not_after)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (ca, key_sha256) DO UPDATE
                SET chain_pem = excluded.chain_pem, not_after = excluded.not_after,
                    certified_at = now()
              WHERE ocsp_signer_certificates.not_after < excluded.not_after",
        )
        .bind(certificate.ca.as_str())
        .bind(key)
        .bind(&certificate.chain_pem)
        .bind(certificate.not_after)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn of_key(&self, key: &str) -> Result<Vec<ResponderCertificate>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT ca, chain_pem, not_after FROM ocsp_signer_certificates
              WHERE key_sha256 = $1 ORDER BY ca",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.into_iter()
            .map(|(ca, chain_pem, not_after)| {
                Ok(ResponderCertificate {
                    ca: IssuingCaId::parse(&ca)
                        .map_err(|_| StoreError::Corrupt("ocsp_signer_certificates.ca".into()))?,
                    chain_pem,
                    not_after,
                })
            })
            .collect()
    }
}
