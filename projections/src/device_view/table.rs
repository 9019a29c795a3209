//! The `device_view` table and its copies: the row statements, and decoding rows into
//! `app::DeviceView`; the one place that knows the columns.

use std::collections::HashMap;
use std::sync::LazyLock;

use app::{DeviceView, StoreError};
use domain::{DeviceId, DeviceModel, DeviceStatus, Labels, SerialNumber, TenantId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::error::unavailable;
use crate::projection::Overwrite;
use crate::table_copies::TableSet;
use crate::ProjectionError;

/// The live table.
pub(crate) const TABLE: &str = "device_view";

pub(crate) const COLUMNS: &str = "id, tenant, serial_number, model, labels, status, certificate, \
     failure, version, created_at, updated_at";

/// A statement per table copy, prepared once.
type PerCopy = LazyLock<Vec<String>>;

/// The rows with the given ids (`$1 uuid[]`) in `tables`.
fn select_rows(tables: TableSet) -> &'static str {
    static SQL: PerCopy = LazyLock::new(|| {
        TableSet::ALL
            .iter()
            .map(|t| {
                format!(
                    "SELECT {COLUMNS} FROM {} WHERE id = ANY($1)",
                    t.name_of(TABLE)
                )
            })
            .collect()
    });
    &SQL[tables.index()]
}

/// Writes rows given as parallel arrays, each only over a version `overwrite` allows.
fn upsert_rows(tables: TableSet, overwrite: Overwrite) -> &'static str {
    static OLDER: PerCopy = LazyLock::new(|| upsert_all("<"));
    static OLDER_OR_SAME: PerCopy = LazyLock::new(|| upsert_all("<="));
    match overwrite {
        Overwrite::Older => &OLDER[tables.index()],
        Overwrite::OlderOrSame => &OLDER_OR_SAME[tables.index()],
    }
}

fn upsert_all(newer: &str) -> Vec<String> {
    TableSet::ALL
        .iter()
        .map(|t| upsert_sql(&t.name_of(TABLE), newer))
        .collect()
}

/// The row upsert for `table`; a row is replaced only when its version is `newer` (`<` or
/// `<=`) than the written one.
fn upsert_sql(table: &str, newer: &str) -> String {
    format!(
        "INSERT INTO {table} ({COLUMNS})
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[],
                     $7::jsonb[], $8::jsonb[], $9::bigint[], $10::timestamptz[], $11::timestamptz[])
ON CONFLICT (id) DO UPDATE
   SET tenant = excluded.tenant, serial_number = excluded.serial_number, model = excluded.model,
       labels = excluded.labels, status = excluded.status, certificate = excluded.certificate,
       failure = excluded.failure, version = excluded.version, created_at = excluded.created_at,
       updated_at = excluded.updated_at
 WHERE {table}.version {newer} excluded.version"
    )
}

/// The stored rows of `devices` in `tables`.
pub(crate) async fn load(
    conn: &mut PgConnection,
    tables: TableSet,
    devices: &[DeviceId],
) -> Result<HashMap<DeviceId, DeviceView>, ProjectionError> {
    let ids: Vec<uuid::Uuid> = devices.iter().map(|id| id.as_uuid()).collect();
    let stored = sqlx::query(select_rows(tables))
        .bind(&ids)
        .fetch_all(conn)
        .await
        .map_err(unavailable)?;
    let mut rows = HashMap::with_capacity(stored.len());
    for row in &stored {
        let view = decode(row)?;
        rows.insert(view.id, view);
    }
    Ok(rows)
}

/// Writes `rows` to `tables` with one multi-row upsert.
pub(crate) async fn write(
    conn: &mut PgConnection,
    tables: TableSet,
    overwrite: Overwrite,
    rows: &[&DeviceView],
) -> Result<(), ProjectionError> {
    let json = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| ProjectionError::from(StoreError::Corrupt(e.into())))
    };
    let mut labels = Vec::with_capacity(rows.len());
    let mut certificates = Vec::with_capacity(rows.len());
    let mut failures = Vec::with_capacity(rows.len());
    for row in rows {
        labels.push(json(serde_json::to_value(&row.labels))?);
        certificates.push(
            row.certificate
                .as_ref()
                .map(|c| json(serde_json::to_value(c)))
                .transpose()?,
        );
        failures.push(
            row.failure
                .as_ref()
                .map(|f| json(serde_json::to_value(f)))
                .transpose()?,
        );
    }
    sqlx::query(upsert_rows(tables, overwrite))
        .bind(rows.iter().map(|r| r.id.as_uuid()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.tenant.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.serial_number.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>())
        .bind(labels)
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(certificates)
        .bind(failures)
        .bind(rows.iter().map(|r| r.version as i64).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(crate) fn decode(row: &PgRow) -> Result<DeviceView, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("device_view.{what}").into());
    let status: String = row.try_get("status").map_err(unavailable)?;
    let certificate: Option<serde_json::Value> = row.try_get("certificate").map_err(unavailable)?;
    let failure: Option<serde_json::Value> = row.try_get("failure").map_err(unavailable)?;
    Ok(DeviceView {
        id: DeviceId::from_uuid(row.try_get("id").map_err(unavailable)?),
        tenant: TenantId::parse(row.try_get("tenant").map_err(unavailable)?)
            .map_err(|_| corrupt("tenant"))?,
        serial_number: SerialNumber::parse(row.try_get("serial_number").map_err(unavailable)?)
            .map_err(|_| corrupt("serial_number"))?,
        model: DeviceModel::parse(row.try_get("model").map_err(unavailable)?)
            .map_err(|_| corrupt("model"))?,
        labels: serde_json::from_value::<Labels>(row.try_get("labels").map_err(unavailable)?)
            .map_err(|_| corrupt("labels"))?,
        status: DeviceStatus::parse(&status).map_err(|_| corrupt("status"))?,
        certificate: certificate
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| corrupt("certificate"))?,
        failure: failure
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| corrupt("failure"))?,
        version: row.try_get::<i64, _>("version").map_err(unavailable)? as u64,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        updated_at: row.try_get("updated_at").map_err(unavailable)?,
    })
}
