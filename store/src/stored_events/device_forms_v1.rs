//! Version 1 of the device events' stored forms: the shapes written before the store had a
//! schema of its own (the domain enum's serde output, an object keyed by the event type that
//! holds the event's fields), kept exactly as the table holds them. Every device event type
//! has a version 1; an event type whose form has moved on (`CertificateIssued`, see
//! `certificate_issued_v2.rs`; `DeviceRegistered` and `CertificateRenewalRequested`, see
//! `certificate_requests_v2.rs`) is still read in this form, then upcast by the schema
//! (`device_schema.rs`).
//!
//! Plain strings, numbers and times: nothing here validates. Never edit a form: rows of it
//! are in the table forever (`store/tests/fixtures/stored_events/device/*.v1.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{
    CertificateRequestId, DecommissionReason, DeviceEvent, FailureCode, ProvisioningFailure,
    Revocation, RevocationReason,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A version 1 payload: `{"<EventType>": {…fields…}}`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum DeviceEventV1 {
    /// Read only: written at version 2 since that version exists.
    #[serde(skip_serializing)]
    DeviceRegistered(DeviceRegisteredV1),
    /// Read only: written at version 2 since that version exists.
    #[serde(skip_serializing)]
    CertificateRenewalRequested(CertificateRenewalRequestedV1),
    /// Read only: written at version 2 since that version exists.
    #[serde(skip_serializing)]
    CertificateIssued(CertificateIssuedV1),
    ProvisioningFailed(ProvisioningFailedV1),
    DeviceDecommissioned(DeviceDecommissionedV1),
    CertificateRevoked(CertificateRevokedV1),
}

#[derive(Debug, Deserialize)]
pub(super) struct DeviceRegisteredV1 {
    pub(super) tenant: String,
    pub(super) serial_number: String,
    pub(super) model: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) csr: String,
    pub(super) request_id: Uuid,
}

#[derive(Debug, Deserialize)]
pub(super) struct CertificateRenewalRequestedV1 {
    pub(super) csr: String,
    pub(super) request_id: Uuid,
}

/// Two shapes are stored: with `issuer`, and without it (certificates recorded before
/// certificates named their issuing CA, all signed by the one CA the service had then).
#[derive(Debug, Deserialize)]
pub(super) struct CertificateIssuedV1 {
    pub(super) request_id: Uuid,
    pub(super) certificate: IssuedCertificateV1,
}

#[derive(Debug, Deserialize)]
pub(super) struct IssuedCertificateV1 {
    pub(super) pem: String,
    pub(super) serial: String,
    pub(super) fingerprint_sha256: String,
    pub(super) not_before: DateTime<Utc>,
    pub(super) not_after: DateTime<Utc>,
    #[serde(default)]
    pub(super) issuer: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ProvisioningFailedV1 {
    request_id: Uuid,
    failure: ProvisioningFailureV1,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProvisioningFailureV1 {
    code: FailureCodeV1,
    detail: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FailureCodeV1 {
    InvalidSignature,
    KeyPolicyViolation,
    SubjectMismatch,
    MalformedCsr,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DeviceDecommissionedV1 {
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CertificateRevokedV1 {
    revocation: RevocationV1,
}

#[derive(Debug, Serialize, Deserialize)]
struct RevocationV1 {
    serial: String,
    reason: RevocationReasonV1,
    revoked_at: DateTime<Utc>,
}

/// RFC 5280's names, as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum RevocationReasonV1 {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

/// A version 1 row of a type whose stored form has moved past version 1, in its version 1
/// form, for its upcaster.
pub(super) enum MovedOn {
    DeviceRegistered(Box<DeviceRegisteredV1>),
    CertificateRenewalRequested(Box<CertificateRenewalRequestedV1>),
    CertificateIssued(Box<CertificateIssuedV1>),
}

impl DeviceEventV1 {
    /// The event type the payload names (its one key), which the row's `event_type` repeats.
    pub(super) fn event_type(&self) -> &'static str {
        match self {
            Self::DeviceRegistered(_) => "DeviceRegistered",
            Self::CertificateRenewalRequested(_) => "CertificateRenewalRequested",
            Self::CertificateIssued(_) => "CertificateIssued",
            Self::ProvisioningFailed(_) => "ProvisioningFailed",
            Self::DeviceDecommissioned(_) => "DeviceDecommissioned",
            Self::CertificateRevoked(_) => "CertificateRevoked",
        }
    }

    /// The version 1 form of `event`; `None` for an event written at a later version.
    pub(super) fn of(event: &DeviceEvent) -> Option<Self> {
        Some(match event {
            DeviceEvent::DeviceRegistered { .. }
            | DeviceEvent::CertificateRenewalRequested { .. } => return None,
            DeviceEvent::CertificateIssued { .. } => return None,
            DeviceEvent::ProvisioningFailed {
                request_id,
                failure,
            } => Self::ProvisioningFailed(ProvisioningFailedV1 {
                request_id: request_id.as_uuid(),
                failure: ProvisioningFailureV1 {
                    code: FailureCodeV1::of(failure.code),
                    detail: failure.detail.clone(),
                },
            }),
            DeviceEvent::DeviceDecommissioned { reason } => {
                Self::DeviceDecommissioned(DeviceDecommissionedV1 {
                    reason: reason.as_str().to_owned(),
                })
            }
            DeviceEvent::CertificateRevoked { revocation } => {
                Self::CertificateRevoked(CertificateRevokedV1 {
                    revocation: RevocationV1 {
                        serial: revocation.serial.clone(),
                        reason: RevocationReasonV1::of(revocation.reason),
                        revoked_at: revocation.revoked_at,
                    },
                })
            }
        })
    }
}

impl DeviceEventV1 {
    /// The event a version 1 row records, or, for a type whose form has moved on, its version
    /// 1 form (`Err`), which the schema's version table upcasts (`device_schema.rs`): this
    /// version knows nothing of the later ones.
    pub(super) fn into_recorded(self) -> Result<DeviceEvent, MovedOn> {
        Ok(match self {
            Self::DeviceRegistered(e) => return Err(MovedOn::DeviceRegistered(Box::new(e))),
            Self::CertificateRenewalRequested(e) => {
                return Err(MovedOn::CertificateRenewalRequested(Box::new(e)))
            }
            Self::CertificateIssued(e) => return Err(MovedOn::CertificateIssued(Box::new(e))),
            Self::ProvisioningFailed(e) => DeviceEvent::ProvisioningFailed {
                request_id: CertificateRequestId::from_uuid(e.request_id),
                failure: ProvisioningFailure {
                    code: e.failure.code.recorded(),
                    detail: e.failure.detail,
                },
            },
            Self::DeviceDecommissioned(e) => DeviceEvent::DeviceDecommissioned {
                reason: DecommissionReason::recorded(e.reason),
            },
            Self::CertificateRevoked(e) => DeviceEvent::CertificateRevoked {
                revocation: Revocation {
                    serial: e.revocation.serial,
                    reason: e.revocation.reason.recorded(),
                    revoked_at: e.revocation.revoked_at,
                },
            },
        })
    }
}

impl FailureCodeV1 {
    fn of(code: FailureCode) -> Self {
        match code {
            FailureCode::InvalidSignature => Self::InvalidSignature,
            FailureCode::KeyPolicyViolation => Self::KeyPolicyViolation,
            FailureCode::SubjectMismatch => Self::SubjectMismatch,
            FailureCode::MalformedCsr => Self::MalformedCsr,
        }
    }

    fn recorded(self) -> FailureCode {
        match self {
            Self::InvalidSignature => FailureCode::InvalidSignature,
            Self::KeyPolicyViolation => FailureCode::KeyPolicyViolation,
            Self::SubjectMismatch => FailureCode::SubjectMismatch,
            Self::MalformedCsr => FailureCode::MalformedCsr,
        }
    }
}

impl RevocationReasonV1 {
    fn of(reason: RevocationReason) -> Self {
        match reason {
            RevocationReason::Unspecified => Self::Unspecified,
            RevocationReason::KeyCompromise => Self::KeyCompromise,
            RevocationReason::AffiliationChanged => Self::AffiliationChanged,
            RevocationReason::Superseded => Self::Superseded,
            RevocationReason::CessationOfOperation => Self::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn => Self::PrivilegeWithdrawn,
        }
    }

    fn recorded(self) -> RevocationReason {
        match self {
            Self::Unspecified => RevocationReason::Unspecified,
            Self::KeyCompromise => RevocationReason::KeyCompromise,
            Self::AffiliationChanged => RevocationReason::AffiliationChanged,
            Self::Superseded => RevocationReason::Superseded,
            Self::CessationOfOperation => RevocationReason::CessationOfOperation,
            Self::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}
