//! `app::pki::CertificateStatusLookup` on the live `certificate_status` table: one read by
//! its primary key (`serial = ANY($1)`), whatever the number of serials asked about.

use app::pki::{CertificateSerialHex, CertificateStatusLookup, CertificateStatusRecord};
use app::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{DeviceId, Revocation, RevocationReason, TenantId};
use sqlx::{PgPool, Row};

use super::tables::CERTIFICATES;
use crate::error::unavailable;

/// On the live table ([`CERTIFICATES`]).
const STATUSES_OF: &str =
    "SELECT serial, device_id, tenant, issuer, revoked_at, reason FROM certificate_status WHERE serial = ANY($1)";

#[derive(Clone)]
pub struct PostgresCertificateStatusLookup {
    pool: PgPool,
}

impl PostgresCertificateStatusLookup {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl CertificateStatusLookup for PostgresCertificateStatusLookup {
    #[tracing::instrument(skip_all, fields(serials = serials.len()), err)]
    async fn statuses_of(
        &self,
        serials: &[CertificateSerialHex],
    ) -> Result<Vec<CertificateStatusRecord>, StoreError> {
        if serials.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = serials.iter().map(CertificateSerialHex::as_str).collect();
        let rows = sqlx::query(STATUSES_OF)
            .bind(&keys)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let serial: String = row.try_get("serial").map_err(unavailable)?;
                let device_id: uuid::Uuid = row.try_get("device_id").map_err(unavailable)?;
                let tenant: String = row.try_get("tenant").map_err(unavailable)?;
                let tenant = TenantId::parse(&tenant)
                    .map_err(|_| StoreError::Corrupt(format!("{CERTIFICATES}.tenant").into()))?;
                let revoked_at: Option<DateTime<Utc>> =
                    row.try_get("revoked_at").map_err(unavailable)?;
                let reason: Option<String> = row.try_get("reason").map_err(unavailable)?;
                let revocation = match (revoked_at, reason) {
                    (Some(revoked_at), Some(reason)) => Some(Revocation {
                        serial: serial.clone(),
                        reason: RevocationReason::parse(&reason).map_err(|_| {
                            StoreError::Corrupt(format!("{CERTIFICATES}.reason").into())
                        })?,
                        revoked_at,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(StoreError::Corrupt(
                            format!("{CERTIFICATES}: half a revocation").into(),
                        ))
                    }
                };
                let issuer: Option<String> = row.try_get("issuer").map_err(unavailable)?;
                Ok(CertificateStatusRecord {
                    issuer: issuer.map(app::pki::IssuingCaId::recorded),
                    serial: CertificateSerialHex::parse(&serial).map_err(|_| {
                        StoreError::Corrupt(format!("{CERTIFICATES}.serial").into())
                    })?,
                    device_id: DeviceId::from_uuid(device_id),
                    tenant,
                    revocation,
                })
            })
            .collect()
    }
}
