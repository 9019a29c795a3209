//! `device_stats_members` (each device's place in the counts, with its version) and
//! `device_stats` (the counts), and their copies: reading members, and writing a batch's
//! changes as member rows plus count deltas (each changed device leaves its old count and
//! joins its new one).

use std::collections::{BTreeMap, HashMap};

use app::StoreError;
use domain::{DeviceId, DeviceStatus};
use sqlx::{PgConnection, Row};

use super::member::{CountKey, Member};
use super::DEVICE_STATS;
use crate::error::unavailable;
use crate::projection::Change;
use crate::table_copies::TableSet;
use crate::ProjectionError;

/// The live tables.
pub(crate) const MEMBERS: &str = "device_stats_members";
pub(crate) const COUNTS: &str = "device_stats";

/// The stored members of `devices` in `tables`.
pub(crate) async fn load(
    conn: &mut PgConnection,
    tables: TableSet,
    devices: &[DeviceId],
) -> Result<HashMap<DeviceId, Member>, ProjectionError> {
    let ids: Vec<uuid::Uuid> = devices.iter().map(|id| id.as_uuid()).collect();
    let rows = sqlx::query(&format!(
        "SELECT id, tenant, model, status, has_certificate, live_certificate, version
           FROM {} WHERE id = ANY($1)",
        tables.name_of(MEMBERS)
    ))
    .bind(&ids)
    .fetch_all(conn)
    .await
    .map_err(unavailable)?;
    let mut members = HashMap::with_capacity(rows.len());
    for row in &rows {
        let status: String = row.try_get("status").map_err(unavailable)?;
        members.insert(
            DeviceId::from_uuid(row.try_get("id").map_err(unavailable)?),
            Member {
                tenant: row.try_get("tenant").map_err(unavailable)?,
                model: row.try_get("model").map_err(unavailable)?,
                status: DeviceStatus::parse(&status)
                    .map_err(|_| StoreError::Corrupt("device_stats_members.status".into()))?,
                has_certificate: row.try_get("has_certificate").map_err(unavailable)?,
                live_certificate: row.try_get("live_certificate").map_err(unavailable)?,
                version: row.try_get::<i64, _>("version").map_err(unavailable)? as u64,
            },
        );
    }
    Ok(members)
}

/// Writes `changes` (in id order) to `tables`: the members, then the counts by difference.
pub(crate) async fn write(
    conn: &mut PgConnection,
    tables: TableSet,
    changes: &[Change<Member>],
) -> Result<(), ProjectionError> {
    let mut deltas: BTreeMap<CountKey, i64> = BTreeMap::new();
    for change in changes {
        if let Some(old) = &change.before {
            *deltas.entry(old.count_key()).or_default() -= 1;
        }
        *deltas.entry(change.after.count_key()).or_default() += 1;
    }
    let members: Vec<&Member> = changes.iter().map(|c| &c.after).collect();
    sqlx::query(&format!(
        "INSERT INTO {} (id, tenant, model, status, has_certificate, version, live_certificate)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bigint[], $7::text[])
         ON CONFLICT (id) DO UPDATE
            SET tenant = excluded.tenant, model = excluded.model, status = excluded.status,
                has_certificate = excluded.has_certificate, version = excluded.version,
                live_certificate = excluded.live_certificate",
        tables.name_of(MEMBERS)
    ))
    .bind(changes.iter().map(|c| c.device.as_uuid()).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.tenant.as_str()).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.model.as_str()).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.status.as_str()).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.has_certificate).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.version as i64).collect::<Vec<_>>())
    .bind(
        members
            .iter()
            .map(|m| m.live_certificate.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let deltas: Vec<(CountKey, i64)> = deltas.into_iter().filter(|(_, d)| *d != 0).collect();
    if deltas.is_empty() {
        return Ok(());
    }
    let counts = tables.name_of(COUNTS);
    sqlx::query(&format!(
        "INSERT INTO {counts} AS c (tenant, model, status, devices)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (tenant, model, status) DO UPDATE
            SET devices = c.devices + excluded.devices"
    ))
    .bind(
        deltas
            .iter()
            .map(|((t, _, _), _)| t.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        deltas
            .iter()
            .map(|((_, m, _), _)| m.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(deltas.iter().map(|((_, _, s), _)| *s).collect::<Vec<_>>())
    .bind(deltas.iter().map(|(_, d)| *d).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query(&format!("DELETE FROM {counts} WHERE devices = 0"))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Serialises the live writers across processes, for the rest of the caller's transaction:
/// counts are deltas, and two batches computing deltas from the same members would count
/// twice.
pub(crate) async fn lock_live(conn: &mut PgConnection) -> Result<(), ProjectionError> {
    crate::live_write_lock::lock_live_writes(conn, DEVICE_STATS).await
}
