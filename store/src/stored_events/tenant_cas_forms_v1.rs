//! Version 1 of the stored forms of a tenant's CA events (`domain::TenantCasEvent`): each
//! payload is the event's fields, without a key naming its type (the row's `event_type`
//! does). A key's reference and a certificate are stored; key material never is.
//!
//! Plain strings, numbers and times, and enums of the store's own: nothing here validates.
//! Never edit a form: rows of it are in the table forever
//! (`store/tests/fixtures/stored_events/ca/*.v1.json`).

use chrono::{DateTime, Utc};
use domain::{
    CaCertificate, CaCommonName, CaGeneration, CaKeyCurve, CaKeyReference, CaRevocationReason,
    CaSpec, IssuingCaId, RotationCause, TenantCasEvent, TenantId,
};
use serde::{Deserialize, Serialize};

pub(super) const TENANT_CAS_CREATED: &str = "TenantCasCreated";
pub(super) const CA_CERTIFIED: &str = "CaCertified";
pub(super) const ROTATION_STARTED: &str = "RotationStarted";
pub(super) const CA_RETIRED: &str = "CaRetired";
pub(super) const CA_REVOKED: &str = "CaRevoked";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TenantCasCreatedV1 {
    tenant: String,
    root: CaSpecV1,
    issuing: CaSpecV1,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CaCertifiedV1 {
    generation: u32,
    key: String,
    certificate: CaCertificateV1,
    issues_from: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RotationStartedV1 {
    generation: u32,
    spec: CaSpecV1,
    cause: RotationCauseV1,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CaRetiredV1 {
    generation: u32,
    retired_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CaRevokedV1 {
    generation: u32,
    reason: CaRevocationReasonV1,
    revoked_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CaSpecV1 {
    curve: CaKeyCurveV1,
    common_name: String,
    validity_days: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct CaCertificateV1 {
    pem: String,
    serial: String,
    id: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
enum CaKeyCurveV1 {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum RotationCauseV1 {
    Operator,
    Schedule,
    Revocation,
}

#[derive(Debug, Serialize, Deserialize)]
enum CaRevocationReasonV1 {
    #[serde(rename = "unspecified")]
    Unspecified,
    #[serde(rename = "cACompromise")]
    CaCompromise,
    #[serde(rename = "affiliationChanged")]
    AffiliationChanged,
    #[serde(rename = "superseded")]
    Superseded,
    #[serde(rename = "cessationOfOperation")]
    CessationOfOperation,
}

/// `event` as its version 1 form: (its type, its payload as JSON).
pub(super) fn encode(event: &TenantCasEvent) -> Result<(&'static str, String), serde_json::Error> {
    Ok(match event {
        TenantCasEvent::TenantCasCreated {
            tenant,
            root,
            issuing,
        } => (
            TENANT_CAS_CREATED,
            serde_json::to_string(&TenantCasCreatedV1 {
                tenant: tenant.as_str().to_owned(),
                root: CaSpecV1::of(root),
                issuing: CaSpecV1::of(issuing),
            })?,
        ),
        TenantCasEvent::CaCertified {
            generation,
            key,
            certificate,
            issues_from,
        } => (
            CA_CERTIFIED,
            serde_json::to_string(&CaCertifiedV1 {
                generation: generation.get(),
                key: key.as_str().to_owned(),
                certificate: CaCertificateV1 {
                    pem: certificate.pem.clone(),
                    serial: certificate.serial.clone(),
                    id: certificate.id.as_str().to_owned(),
                    not_before: certificate.not_before,
                    not_after: certificate.not_after,
                },
                issues_from: *issues_from,
            })?,
        ),
        TenantCasEvent::RotationStarted {
            generation,
            spec,
            cause,
        } => (
            ROTATION_STARTED,
            serde_json::to_string(&RotationStartedV1 {
                generation: generation.get(),
                spec: CaSpecV1::of(spec),
                cause: match cause {
                    RotationCause::Operator => RotationCauseV1::Operator,
                    RotationCause::Schedule => RotationCauseV1::Schedule,
                    RotationCause::Revocation => RotationCauseV1::Revocation,
                },
            })?,
        ),
        TenantCasEvent::CaRetired {
            generation,
            retired_at,
        } => (
            CA_RETIRED,
            serde_json::to_string(&CaRetiredV1 {
                generation: generation.get(),
                retired_at: *retired_at,
            })?,
        ),
        TenantCasEvent::CaRevoked {
            generation,
            reason,
            revoked_at,
        } => (
            CA_REVOKED,
            serde_json::to_string(&CaRevokedV1 {
                generation: generation.get(),
                reason: match reason {
                    CaRevocationReason::Unspecified => CaRevocationReasonV1::Unspecified,
                    CaRevocationReason::CaCompromise => CaRevocationReasonV1::CaCompromise,
                    CaRevocationReason::AffiliationChanged => {
                        CaRevocationReasonV1::AffiliationChanged
                    }
                    CaRevocationReason::Superseded => CaRevocationReasonV1::Superseded,
                    CaRevocationReason::CessationOfOperation => {
                        CaRevocationReasonV1::CessationOfOperation
                    }
                },
                revoked_at: *revoked_at,
            })?,
        ),
    })
}

/// The event a version 1 payload of `event_type` records; `None` for a type with no
/// version 1.
pub(super) fn decode(
    event_type: &str,
    payload: &str,
) -> Option<Result<TenantCasEvent, serde_json::Error>> {
    let event = match event_type {
        TENANT_CAS_CREATED => serde_json::from_str(payload).map(|f: TenantCasCreatedV1| {
            TenantCasEvent::TenantCasCreated {
                tenant: TenantId::recorded(f.tenant),
                root: f.root.recorded(),
                issuing: f.issuing.recorded(),
            }
        }),
        CA_CERTIFIED => {
            serde_json::from_str(payload).map(|f: CaCertifiedV1| TenantCasEvent::CaCertified {
                generation: CaGeneration::new(f.generation),
                key: CaKeyReference::recorded(f.key),
                certificate: CaCertificate {
                    pem: f.certificate.pem,
                    serial: f.certificate.serial,
                    id: IssuingCaId::recorded(f.certificate.id),
                    not_before: f.certificate.not_before,
                    not_after: f.certificate.not_after,
                },
                issues_from: f.issues_from,
            })
        }
        ROTATION_STARTED => serde_json::from_str(payload).map(|f: RotationStartedV1| {
            TenantCasEvent::RotationStarted {
                generation: CaGeneration::new(f.generation),
                spec: f.spec.recorded(),
                cause: match f.cause {
                    RotationCauseV1::Operator => RotationCause::Operator,
                    RotationCauseV1::Schedule => RotationCause::Schedule,
                    RotationCauseV1::Revocation => RotationCause::Revocation,
                },
            }
        }),
        CA_RETIRED => {
            serde_json::from_str(payload).map(|f: CaRetiredV1| TenantCasEvent::CaRetired {
                generation: CaGeneration::new(f.generation),
                retired_at: f.retired_at,
            })
        }
        CA_REVOKED => {
            serde_json::from_str(payload).map(|f: CaRevokedV1| TenantCasEvent::CaRevoked {
                generation: CaGeneration::new(f.generation),
                reason: match f.reason {
                    CaRevocationReasonV1::Unspecified => CaRevocationReason::Unspecified,
                    CaRevocationReasonV1::CaCompromise => CaRevocationReason::CaCompromise,
                    CaRevocationReasonV1::AffiliationChanged => {
                        CaRevocationReason::AffiliationChanged
                    }
                    CaRevocationReasonV1::Superseded => CaRevocationReason::Superseded,
                    CaRevocationReasonV1::CessationOfOperation => {
                        CaRevocationReason::CessationOfOperation
                    }
                },
                revoked_at: f.revoked_at,
            })
        }
        _ => return None,
    };
    Some(event)
}

impl CaSpecV1 {
    fn of(spec: &CaSpec) -> Self {
        Self {
            curve: match spec.curve {
                CaKeyCurve::P256 => CaKeyCurveV1::P256,
                CaKeyCurve::P384 => CaKeyCurveV1::P384,
            },
            common_name: spec.common_name.as_str().to_owned(),
            validity_days: spec.validity_days,
        }
    }

    fn recorded(self) -> CaSpec {
        CaSpec {
            curve: match self.curve {
                CaKeyCurveV1::P256 => CaKeyCurve::P256,
                CaKeyCurveV1::P384 => CaKeyCurve::P384,
            },
            common_name: CaCommonName::recorded(self.common_name),
            validity_days: self.validity_days,
        }
    }
}
