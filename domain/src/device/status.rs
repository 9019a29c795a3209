//! Where a device is in its life cycle.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `pending` → `provisioned` | `failed`; `provisioned` → (renewal) → `provisioned`;
/// `failed` → (new CSR) → `pending`; any of these → `decommissioned`, which is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Pending,
    Provisioned,
    Failed,
    Decommissioned,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioned => "provisioned",
            Self::Failed => "failed",
            Self::Decommissioned => "decommissioned",
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
