//! Facts about a device, in the past tense. A stored event is forever: to change one, add a
//! version of its stored form and an upcaster in the store's schema (`store::stored_events`),
//! never edit the meaning of an existing one.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::{
    CertificateRequestId, DecommissionReason, DeviceModel, IssuedCertificate, Labels,
    ProvisioningFailure, Revocation, SerialNumber, SigningRequest, TenantId,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeviceEvent {
    DeviceRegistered {
        tenant: TenantId,
        serial_number: SerialNumber,
        model: DeviceModel,
        labels: Labels,
        request: SigningRequest,
        request_id: CertificateRequestId,
    },
    CertificateRenewalRequested {
        request: SigningRequest,
        request_id: CertificateRequestId,
    },
    CertificateIssued {
        request_id: CertificateRequestId,
        certificate: IssuedCertificate,
    },
    ProvisioningFailed {
        request_id: CertificateRequestId,
        failure: ProvisioningFailure,
    },
    DeviceDecommissioned {
        reason: DecommissionReason,
    },
    /// The device's certificate with this serial is no longer to be trusted: revoked on
    /// request, superseded by a renewal's certificate, or revoked by a decommission.
    CertificateRevoked {
        revocation: Revocation,
    },
}

/// cqrs-es asks every event for a type name and a version. What the event store writes is its
/// own schema's (`store::stored_events`: each stored form has its version, read back through
/// upcasters), never these, nor this enum's serde form.
impl DomainEvent for DeviceEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DeviceRegistered { .. } => "DeviceRegistered",
            Self::CertificateRenewalRequested { .. } => "CertificateRenewalRequested",
            Self::CertificateIssued { .. } => "CertificateIssued",
            Self::ProvisioningFailed { .. } => "ProvisioningFailed",
            Self::DeviceDecommissioned { .. } => "DeviceDecommissioned",
            Self::CertificateRevoked { .. } => "CertificateRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
