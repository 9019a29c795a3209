//! `certificate_status_devices` (each device's version) and `certificate_status` (one row per
//! certificate, keyed by serial), and their copies: reading a batch's devices with their
//! certificates, and writing the devices that moved with all their certificates.

use std::collections::HashMap;

use app::StoreError;
use chrono::{DateTime, Utc};
use domain::{DeviceId, RevocationReason};
use sqlx::{PgConnection, Row};

use super::state::{CertificateRecord, DeviceCertificates};
use crate::error::unavailable;
use crate::projection::Change;
use crate::table_copies::TableSet;
use crate::ProjectionError;

/// The live tables.
pub(crate) const DEVICES: &str = "certificate_status_devices";
pub(crate) const CERTIFICATES: &str = "certificate_status";

/// The stored state of `devices` in `tables`.
pub(crate) async fn load(
    conn: &mut PgConnection,
    tables: TableSet,
    devices: &[DeviceId],
) -> Result<HashMap<DeviceId, DeviceCertificates>, ProjectionError> {
    let ids: Vec<uuid::Uuid> = devices.iter().map(|id| id.as_uuid()).collect();
    let rows = sqlx::query(&format!(
        "SELECT id, tenant, version FROM {} WHERE id = ANY($1)",
        tables.name_of(DEVICES)
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in &rows {
        states.insert(
            DeviceId::from_uuid(row.try_get("id").map_err(unavailable)?),
            DeviceCertificates {
                tenant: row.try_get("tenant").map_err(unavailable)?,
                version: row.try_get::<i64, _>("version").map_err(unavailable)? as u64,
                certificates: Vec::new(),
            },
        );
    }
    let certificates = sqlx::query(&format!(
        "SELECT serial, issuer, device_id, not_before, not_after, revoked_at, reason
           FROM {} WHERE device_id = ANY($1) ORDER BY serial",
        tables.name_of(CERTIFICATES)
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    for row in &certificates {
        let device = DeviceId::from_uuid(row.try_get("device_id").map_err(unavailable)?);
        let revoked_at: Option<DateTime<Utc>> = row.try_get("revoked_at").map_err(unavailable)?;
        let reason: Option<String> = row.try_get("reason").map_err(unavailable)?;
        let revocation = match (revoked_at, reason) {
            (Some(at), Some(reason)) => Some((
                at,
                RevocationReason::parse(&reason)
                    .map_err(|_| StoreError::Corrupt("certificate_status.reason".into()))?,
            )),
            (None, None) => None,
            _ => {
                return Err(
                    StoreError::Corrupt("certificate_status: half a revocation".into()).into(),
                )
            }
        };
        if let Some(state) = states.get_mut(&device) {
            state.certificates.push(CertificateRecord {
                serial: row.try_get("serial").map_err(unavailable)?,
                issuer: row.try_get("issuer").map_err(unavailable)?,
                not_before: row.try_get("not_before").map_err(unavailable)?,
                not_after: row.try_get("not_after").map_err(unavailable)?,
                revocation,
            });
        }
    }
    Ok(states)
}

/// Writes `changes` (in device id order) to `tables`: each device's version, and every one
/// of its certificates (a certificate row only ever gains its revocation).
pub(crate) async fn write(
    conn: &mut PgConnection,
    tables: TableSet,
    changes: &[Change<DeviceCertificates>],
) -> Result<(), ProjectionError> {
    sqlx::query(&format!(
        "INSERT INTO {} (id, tenant, version)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])
         ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, version = excluded.version",
        tables.name_of(DEVICES)
    ))
    .bind(
        changes
            .iter()
            .map(|c| c.device.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|c| c.after.tenant.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|c| c.after.version as i64)
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let certificates: Vec<(&Change<DeviceCertificates>, &CertificateRecord)> = changes
        .iter()
        .flat_map(|c| c.after.certificates.iter().map(move |r| (c, r)))
        .collect();
    if certificates.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {} (serial, device_id, tenant, not_before, not_after, revoked_at, reason,
                         issuer)
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[],
                              $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[])
         ON CONFLICT (serial) DO UPDATE
            SET device_id = excluded.device_id, tenant = excluded.tenant, issuer = excluded.issuer,
                not_before = excluded.not_before, not_after = excluded.not_after,
                revoked_at = excluded.revoked_at, reason = excluded.reason",
        tables.name_of(CERTIFICATES)
    ))
    .bind(
        certificates
            .iter()
            .map(|(_, r)| r.serial.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(c, _)| c.device.as_uuid())
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(c, _)| c.after.tenant.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(_, r)| r.not_before)
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(_, r)| r.not_after)
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(_, r)| r.revocation.map(|(at, _)| at))
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(_, r)| r.revocation.map(|(_, reason)| reason.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        certificates
            .iter()
            .map(|(_, r)| r.issuer.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}
