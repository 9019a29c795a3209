//! The identity of a device: derived, never chosen.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::{SerialNumber, TenantId};

/// Namespace of device ids (a random v4 UUID, fixed forever: changing it would change
/// every device's id).
const DEVICE_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_5a3e_8c2b_4e7a_9d10_3b5c_7e21_a9f4);

/// `UUIDv5(namespace, tenant + "/" + serial_number)`.
///
/// Because the id is a function of (tenant, serial), the event store's primary key
/// (aggregate id, sequence) is what makes a serial unique within a tenant: two
/// registrations of one serial race for sequence 1 of the same aggregate, and a retry after
/// a crash cannot create a second device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid, description = "The device id: UUIDv5 of the tenant and serial number, so it is known before registration."))]
#[serde(transparent)]
pub struct DeviceId(Uuid);

impl DeviceId {
    pub fn derive(tenant: &TenantId, serial: &SerialNumber) -> Self {
        let name = format!("{}/{}", tenant.as_str(), serial.as_str());
        Self(Uuid::new_v5(&DEVICE_NAMESPACE, name.as_bytes()))
    }

    /// Any UUID is a syntactically valid device id; whether the device exists, and belongs
    /// to the caller's tenant, is for the aggregate to say.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::str::FromStr for DeviceId {
    type Err = uuid::Error;

    /// A device id as `Display` wrote it.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(raw).map(Self)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_serial_in_same_tenant_is_the_same_device() {
        let t = TenantId::parse("acme").unwrap();
        let s = SerialNumber::parse("SN-1").unwrap();
        assert_eq!(DeviceId::derive(&t, &s), DeviceId::derive(&t, &s));
        assert_eq!(DeviceId::derive(&t, &s).as_uuid().get_version_num(), 5);
    }

    #[test]
    fn same_serial_in_another_tenant_is_another_device() {
        let s = SerialNumber::parse("SN-1").unwrap();
        let a = DeviceId::derive(&TenantId::parse("acme").unwrap(), &s);
        let b = DeviceId::derive(&TenantId::parse("globex").unwrap(), &s);
        assert_ne!(a, b);
    }
}
