//! The `device_view` table: decoding rows into `app::DeviceView`, the one place that knows
//! its columns.

use app::{DeviceView, StoreError};
use domain::{DeviceId, DeviceModel, DeviceStatus, Labels, SerialNumber, TenantId};
use sqlx::postgres::PgRow;
use sqlx::Row;

pub(crate) const COLUMNS: &str = "id, tenant, serial_number, model, labels, status, certificate, \
     failure, version, created_at, updated_at";

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
        status: parse_status(&status).ok_or_else(|| corrupt("status"))?,
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

pub(crate) fn parse_status(raw: &str) -> Option<DeviceStatus> {
    [
        DeviceStatus::Pending,
        DeviceStatus::Provisioned,
        DeviceStatus::Failed,
        DeviceStatus::Decommissioned,
    ]
    .into_iter()
    .find(|s| s.as_str() == raw)
}

pub(crate) fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.into())
}
