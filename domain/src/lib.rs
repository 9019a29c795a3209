//! The device-provisioning domain: the `Device` aggregate and a tenant's certificate
//! authorities (`TenantCas`), their commands, events and invariants, and the value types that
//! make invalid input unrepresentable.
//!
//! This crate must stay free of I/O: no database, no network, no clock, no randomness.
//! Anything that needs them (the current time, a fresh request id) is passed in through a
//! command by the application layer. The aggregate implements `cqrs_es::Aggregate`: the
//! application decides with it and folds events with its `apply`, and its tests use cqrs-es's
//! given/when/then framework.
//!
//! Value types are parsed once, at the edge (`SerialNumber::parse`, `CertificateSigningRequest::from_pem`,
//! ...); once a value of such a type exists it is valid and nobody re-checks it. A value read
//! back from a stored event is made with the type's `recorded` constructor, which checks
//! nothing: it met the rules of its day, and tightening a rule must not make history
//! unreadable. Only the event store's schema (`store::stored_events`) calls them.

mod certificate;
mod crmf_request;
mod csr;
mod decommission_reason;
mod device;
mod device_id;
mod enrollment_credential;
mod enrollment_group_name;
mod issuing_ca_id;
mod labels;
mod model;
mod request_id;
mod revocation;
mod serial_number;
mod signing_request;
mod tenant;
mod tenant_cas;
mod verified_csr;

pub use certificate::{CertificateCredential, FailureCode, IssuedCertificate, ProvisioningFailure};
pub use crmf_request::{CrmfError, CrmfRequest, CrmfSignatureProof, NoSignatureProof};
pub use csr::{CertificateSigningRequest, CsrError, SubjectMismatch};
pub use decommission_reason::DecommissionReason;
pub use device::{
    CompleteProvisioning, DecommissionDevice, Device, DeviceCommand, DeviceError, DeviceEvent,
    DeviceStatus, FailProvisioning, LifecycleStep, OpenRequest, RegisterDevice, RenewCertificate,
    RenewalAuthority, RevocationAuthority, RevokeCertificate,
};
pub use device_id::DeviceId;
pub use enrollment_credential::{DeviceCredential, DeviceKey, GroupKey, GroupMismatch};
pub use enrollment_group_name::EnrollmentGroupName;
pub use issuing_ca_id::IssuingCaId;
pub use labels::{LabelError, Labels};
pub use model::DeviceModel;
pub use request_id::CertificateRequestId;
pub use revocation::{Revocation, RevocationReason};
pub use serial_number::SerialNumber;
pub use signing_request::SigningRequest;
pub use tenant::TenantId;
pub use tenant_cas::{
    CaCertificate, CaCommonName, CaGeneration, CaKeyCurve, CaKeyReference, CaRevocationReason,
    CaSpec, CaState, CertifiedCa, CertifyCa, CreateTenantCas, RetireCa, RevokeCa, RotationCause,
    StartRotation, TenantCa, TenantCas, TenantCasCommand, TenantCasError, TenantCasEvent,
    TenantCasId, HANDOVER, VIEW_MAX_AGE,
};
pub use verified_csr::VerifiedCsr;

/// Why a raw value was refused by a value type's constructor. The message is written for
/// the client who sent the value, so it never echoes secrets and names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);
