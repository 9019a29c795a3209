//! Facts about a tenant's CAs, in the past tense: their history is the CAs' audit trail. They
//! hold where each key is (a reference) and each certificate, never key material. A stored
//! event is forever (see `store::stored_events`).

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{
    CaCertificate, CaGeneration, CaKeyReference, CaRevocationReason, CaSpec, RotationCause,
};
use crate::TenantId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantCasEvent {
    /// The tenant's root CA (generation 0) and first issuing CA (generation 1) are to be made.
    TenantCasCreated {
        tenant: TenantId,
        root: CaSpec,
        issuing: CaSpec,
    },
    /// A CA's key was made and its certificate signed. An issuing CA signs device
    /// certificates from `issues_from` on; the one before it signs until then.
    CaCertified {
        generation: CaGeneration,
        key: CaKeyReference,
        certificate: CaCertificate,
        issues_from: DateTime<Utc>,
    },
    /// The tenant's next issuing CA is to be made.
    RotationStarted {
        generation: CaGeneration,
        spec: CaSpec,
        cause: RotationCause,
    },
    /// A rotated-out issuing CA no longer answers for anything.
    CaRetired {
        generation: CaGeneration,
        retired_at: DateTime<Utc>,
    },
    /// A CA is no longer to be trusted, nor anything it signed.
    CaRevoked {
        generation: CaGeneration,
        reason: CaRevocationReason,
        revoked_at: DateTime<Utc>,
    },
}

/// cqrs-es asks every event for a type name and a version; what the store writes is its own
/// schema's (`store::stored_events`).
impl DomainEvent for TenantCasEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TenantCasCreated { .. } => "TenantCasCreated",
            Self::CaCertified { .. } => "CaCertified",
            Self::RotationStarted { .. } => "RotationStarted",
            Self::CaRetired { .. } => "CaRetired",
            Self::CaRevoked { .. } => "CaRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
