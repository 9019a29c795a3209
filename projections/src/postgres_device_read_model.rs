//! `app::DeviceReadModel` on the `device_view` table.

use app::{DeviceFilter, DeviceReadModel, DeviceView, ListCursor, StoreError};
use async_trait::async_trait;
use domain::{DeviceId, TenantId};
use sqlx::PgPool;

use crate::device_view_table::{self, unavailable, COLUMNS};

pub struct PostgresDeviceReadModel {
    pool: PgPool,
}

impl PostgresDeviceReadModel {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Keyset pagination on (created_at, id), served by `device_view_listing`; the label filter
/// is containment, served by the GIN index when it is selective.
const SELECT_PAGE: &str = "
SELECT {COLUMNS} FROM device_view
 WHERE tenant = $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::text IS NULL OR model = $3)
   AND labels @> $4::jsonb
   AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6::uuid))
 ORDER BY created_at, id
 LIMIT $7";

#[async_trait]
impl DeviceReadModel for PostgresDeviceReadModel {
    async fn device(&self, id: DeviceId) -> Result<Option<DeviceView>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM device_view WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(device_view_table::decode).transpose()
    }

    async fn devices(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        after: Option<ListCursor>,
        limit: usize,
    ) -> Result<Vec<DeviceView>, StoreError> {
        let labels: serde_json::Map<String, serde_json::Value> = filter
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let sql = SELECT_PAGE.replace("{COLUMNS}", COLUMNS);
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.model.as_ref().map(|m| m.as_str()))
            .bind(serde_json::Value::Object(labels))
            .bind(after.map(|c| c.created_at))
            .bind(after.map(|c| c.id.as_uuid()))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(device_view_table::decode).collect()
    }
}
