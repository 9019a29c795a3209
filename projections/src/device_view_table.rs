//! The `device_view` table and its copies: their names, the row statements, and decoding rows
//! into `app::DeviceView`; the one place that knows the columns.

use std::sync::LazyLock;

use app::{DeviceView, StoreError};
use domain::{DeviceId, DeviceModel, DeviceStatus, Labels, SerialNumber, TenantId};
use sqlx::postgres::PgRow;
use sqlx::Row;

pub(crate) const COLUMNS: &str = "id, tenant, serial_number, model, labels, status, certificate, \
     failure, version, created_at, updated_at";

/// The tables with `device_view`'s layout: the live one, the shadow a rebuild fills before it
/// becomes live, and the scratch copy `verify` compares with the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceViewTable {
    Live,
    Shadow,
    Scratch,
}

impl DeviceViewTable {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Live => "device_view",
            Self::Shadow => "device_view_rebuild",
            Self::Scratch => "device_view_verify",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Live => 0,
            Self::Shadow => 1,
            Self::Scratch => 2,
        }
    }

    const ALL: [Self; 3] = [Self::Live, Self::Shadow, Self::Scratch];

    /// The rows with the given ids (`$1 uuid[]`).
    pub(crate) fn select_rows(self) -> &'static str {
        static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
            DeviceViewTable::ALL
                .iter()
                .map(|t| format!("SELECT {COLUMNS} FROM {} WHERE id = ANY($1)", t.name()))
                .collect()
        });
        &SQL[self.index()]
    }

    /// Writes rows given as parallel arrays, each only over an older version of itself.
    pub(crate) fn upsert_rows(self) -> &'static str {
        static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
            DeviceViewTable::ALL
                .iter()
                .map(|t| upsert_sql(t.name(), "<"))
                .collect()
        });
        &SQL[self.index()]
    }

    /// Like [`Self::upsert_rows`], but also over the same version: a replay repairs a row
    /// whose content is wrong at its version, and still never moves a row back.
    pub(crate) fn repair_rows(self) -> &'static str {
        static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
            DeviceViewTable::ALL
                .iter()
                .map(|t| upsert_sql(t.name(), "<="))
                .collect()
        });
        &SQL[self.index()]
    }
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
