//! `app::DeviceStatsReadModel` on the `device_stats` table: the counts as `GET /v1/stats`
//! serves them.

use app::StoreError;
use async_trait::async_trait;
use domain::{DeviceStatus, TenantId};
use sqlx::{PgPool, Row};

use crate::error::unavailable;

#[derive(Clone)]
pub struct PostgresDeviceStats {
    pool: PgPool,
}

impl PostgresDeviceStats {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl app::DeviceStatsReadModel for PostgresDeviceStats {
    async fn counts(&self, tenant: &TenantId) -> Result<Vec<app::DeviceCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT model, status, devices FROM device_stats WHERE tenant = $1 ORDER BY model, status",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status").map_err(unavailable)?;
                Ok(app::DeviceCount {
                    model: row.try_get("model").map_err(unavailable)?,
                    status: DeviceStatus::parse(&status)
                        .map_err(|_| StoreError::Corrupt("device_stats.status".into()))?,
                    devices: row.try_get::<i64, _>("devices").map_err(unavailable)? as u64,
                })
            })
            .collect()
    }
}
