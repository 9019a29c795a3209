//! Where a device is in its life cycle, and the one rule that moves it: the aggregate and
//! every read model apply [`DeviceStatus::after`], so they cannot disagree about a status.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::DeviceEvent;
use crate::InvalidValue;

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

/// What happened to a device, as far as its status is concerned: the domain's own summary
/// of an event, onto which every representation of the events (the stored `DeviceEvent`,
/// the published `app::PublicEvent`) maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStep {
    Registered,
    RenewalRequested,
    CertificateIssued,
    ProvisioningFailed,
    Decommissioned,
    /// A certificate was revoked: the device's status stays (a revoked device may renew).
    CertificateRevoked,
}

impl DeviceStatus {
    const ALL: [Self; 4] = [
        Self::Pending,
        Self::Provisioned,
        Self::Failed,
        Self::Decommissioned,
    ];

    /// The status a device is registered with.
    pub const REGISTERED: Self = Self::Pending;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Provisioned => "provisioned",
            Self::Failed => "failed",
            Self::Decommissioned => "decommissioned",
        }
    }

    /// The status named as [`Self::as_str`] writes it.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue("must be pending, provisioned, failed or decommissioned".into())
            })
    }

    /// A registered device's status after `step`, given its status before and whether it held
    /// a live certificate (issued and not revoked) before this step.
    pub fn after(self, had_live_certificate: bool, step: LifecycleStep) -> Self {
        match step {
            // A second registration cannot exist (the event store's key forbids it).
            LifecycleStep::Registered => self,
            // A new CSR after a failure is a new attempt; a provisioned device stays usable
            // with its current certificate while the renewal is pending.
            LifecycleStep::RenewalRequested if self == Self::Failed => Self::Pending,
            LifecycleStep::RenewalRequested => self,
            LifecycleStep::CertificateIssued => Self::Provisioned,
            // A device with a live certificate stays usable when a renewal fails; one whose
            // certificate was revoked has nothing to fall back on.
            LifecycleStep::ProvisioningFailed if !had_live_certificate => Self::Failed,
            LifecycleStep::ProvisioningFailed => self,
            LifecycleStep::Decommissioned => Self::Decommissioned,
            LifecycleStep::CertificateRevoked => self,
        }
    }
}

impl FromStr for DeviceStatus {
    type Err = InvalidValue;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&DeviceEvent> for LifecycleStep {
    fn from(event: &DeviceEvent) -> Self {
        match event {
            DeviceEvent::DeviceRegistered { .. } => Self::Registered,
            DeviceEvent::CertificateRenewalRequested { .. } => Self::RenewalRequested,
            DeviceEvent::CertificateIssued { .. } => Self::CertificateIssued,
            DeviceEvent::ProvisioningFailed { .. } => Self::ProvisioningFailed,
            DeviceEvent::DeviceDecommissioned { .. } => Self::Decommissioned,
            DeviceEvent::CertificateRevoked { .. } => Self::CertificateRevoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_parses_what_it_writes_and_nothing_else() {
        for status in DeviceStatus::ALL {
            assert_eq!(DeviceStatus::parse(status.as_str()), Ok(status));
            assert_eq!(status.to_string().parse::<DeviceStatus>(), Ok(status));
        }
        assert!(DeviceStatus::parse("Pending").is_err());
        assert!(DeviceStatus::parse("").is_err());
    }

    #[test]
    fn a_failed_renewal_keeps_a_certified_device_provisioned() {
        use DeviceStatus::{Failed, Pending, Provisioned};
        use LifecycleStep::ProvisioningFailed;
        assert_eq!(Pending.after(false, ProvisioningFailed), Failed);
        assert_eq!(Provisioned.after(true, ProvisioningFailed), Provisioned);
    }

    #[test]
    fn renewals_issues_and_decommissions_move_the_status() {
        use DeviceStatus::{Failed, Pending, Provisioned};
        use LifecycleStep::{CertificateIssued, Registered, RenewalRequested};
        assert_eq!(Failed.after(false, RenewalRequested), Pending);
        assert_eq!(Provisioned.after(true, RenewalRequested), Provisioned);
        assert_eq!(Pending.after(false, CertificateIssued), Provisioned);
        assert_eq!(Failed.after(false, CertificateIssued), Provisioned);
        for status in DeviceStatus::ALL {
            assert_eq!(
                status.after(false, LifecycleStep::Decommissioned),
                DeviceStatus::Decommissioned
            );
            assert_eq!(status.after(true, Registered), status);
            assert_eq!(
                status.after(true, LifecycleStep::CertificateRevoked),
                status
            );
        }
    }
}
