//! What can be asked of a device. Public commands come from fleet clients over HTTP;
//! internal ones come from the provisioner in the worker.

use chrono::{DateTime, Utc};

use crate::{
    CertificateCredential, CertificateRequestId, DecommissionReason, DeviceModel,
    IssuedCertificate, IssuingCaId, Labels, ProvisioningFailure, RevocationReason, SerialNumber,
    SigningRequest, TenantId,
};

/// Every command names the tenant acting, so that the aggregate itself enforces tenant
/// isolation: a command from another tenant is answered exactly like one for a device that
/// does not exist.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceCommand {
    Register(RegisterDevice),
    RenewCertificate(RenewCertificate),
    Decommission(DecommissionDevice),
    RevokeCertificate(RevokeCertificate),
    CompleteProvisioning(CompleteProvisioning),
    FailProvisioning(FailProvisioning),
}

impl DeviceCommand {
    /// Whether the command can only succeed on a device without history. The application may
    /// then decide on an empty device without reading first and let the append's uniqueness check
    /// (sequence 1 of this id) prove the guess; a wrong guess is an ordinary conflict.
    pub fn creates_device(&self) -> bool {
        matches!(self, Self::Register(_))
    }

    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Register(c) => &c.tenant,
            Self::RenewCertificate(c) => &c.tenant,
            Self::Decommission(c) => &c.tenant,
            Self::RevokeCertificate(c) => &c.tenant,
            Self::CompleteProvisioning(c) => &c.tenant,
            Self::FailProvisioning(c) => &c.tenant,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisterDevice {
    pub tenant: TenantId,
    pub serial_number: SerialNumber,
    pub model: DeviceModel,
    pub labels: Labels,
    pub request: SigningRequest,
    pub request_id: CertificateRequestId,
}

/// A new certificate for `request`, asked for by `authority`, which the device checks against its
/// events. `revoked_cas`: the tenant's issuing CAs that are revoked, as their events say (the
/// application reads them): a certificate of theirs authenticates nothing, and a device whose
/// certificate they issued may enroll again with its group credential.
#[derive(Debug, Clone, PartialEq)]
pub struct RenewCertificate {
    pub tenant: TenantId,
    pub request: SigningRequest,
    pub request_id: CertificateRequestId,
    pub authority: RenewalAuthority,
    pub revoked_cas: Vec<IssuingCaId>,
}

/// Who asks for a renewal.
#[derive(Debug, Clone, PartialEq)]
pub enum RenewalAuthority {
    /// A fleet client of the tenant, whose token is its authority.
    Tenant,
    /// The device, by the certificate it presented (EST re-enrollment): only its current,
    /// unrevoked certificate, of a CA that is not revoked.
    Certificate(CertificateCredential),
    /// The device, by its enrollment group's credential (EST enrollment again): only a device
    /// left without a usable certificate (its request failed, or its certificate's CA was
    /// revoked), so the fleet recovers without anyone registering it again.
    EnrollmentGroup,
}

/// Also revokes the device's live certificate (`cessationOfOperation`, from `at`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecommissionDevice {
    pub tenant: TenantId,
    pub reason: DecommissionReason,
    pub at: DateTime<Utc>,
}

/// Revokes the device's live certificate from `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeCertificate {
    pub tenant: TenantId,
    pub reason: RevocationReason,
    pub at: DateTime<Utc>,
    pub authority: RevocationAuthority,
}

/// Who asks for a revocation.
#[derive(Debug, Clone, PartialEq)]
pub enum RevocationAuthority {
    /// A fleet client of the tenant, whose token is its authority.
    Tenant,
    /// The device, by the certificate it presented (CMP's `rr`): only while it is the live
    /// certificate, which is the one it revokes.
    Certificate(CertificateCredential),
}

/// Internal: the provisioner issued `certificate` for `request_id` (at `at`); a certificate
/// it replaces is revoked as `superseded` from then on.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteProvisioning {
    pub tenant: TenantId,
    pub request_id: CertificateRequestId,
    pub certificate: IssuedCertificate,
    pub at: DateTime<Utc>,
}

/// Internal: the provisioner refused `request_id` for a domain reason.
#[derive(Debug, Clone, PartialEq)]
pub struct FailProvisioning {
    pub tenant: TenantId,
    pub request_id: CertificateRequestId,
    pub failure: ProvisioningFailure,
}
