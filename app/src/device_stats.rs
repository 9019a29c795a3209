//! The device counts read model (`GET /v1/stats`): how many devices a tenant has per model and
//! status. The port is implemented by `projections`.

use async_trait::async_trait;
use domain::{DeviceStatus, TenantId};
use serde::Serialize;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceCount {
    pub model: String,
    pub status: DeviceStatus,
    pub devices: u64,
}

#[async_trait]
pub trait DeviceStatsReadModel: Send + Sync + 'static {
    /// The tenant's counts, by model then status; combinations without devices are absent.
    async fn counts(&self, tenant: &TenantId) -> Result<Vec<DeviceCount>, StoreError>;
}
