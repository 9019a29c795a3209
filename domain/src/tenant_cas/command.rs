//! What can be asked of a tenant's CAs. Operators create them, rotate the issuing CA and
//! revoke a CA (through the api); the worker certifies the CAs whose keys it made and retires
//! an issuing CA once nothing it issued is left. Times come in with the command.

use chrono::{DateTime, Utc};

use super::{CaCertificate, CaGeneration, CaKeyReference, CaRevocationReason, CaSpec};
use crate::TenantId;

#[derive(Debug, Clone, PartialEq)]
pub enum TenantCasCommand {
    Create(CreateTenantCas),
    Certify(CertifyCa),
    StartRotation(StartRotation),
    Retire(RetireCa),
    Revoke(RevokeCa),
}

impl TenantCasCommand {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Create(c) => &c.tenant,
            Self::Certify(c) => &c.tenant,
            Self::StartRotation(c) => &c.tenant,
            Self::Retire(c) => &c.tenant,
            Self::Revoke(c) => &c.tenant,
        }
    }
}

/// A tenant's root CA and its first issuing CA, to be made by the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTenantCas {
    pub tenant: TenantId,
    pub root: CaSpec,
    pub issuing: CaSpec,
}

/// The worker made the CA's key and certificate (the root's self-signed, an issuing CA's
/// signed by the root).
#[derive(Debug, Clone, PartialEq)]
pub struct CertifyCa {
    pub tenant: TenantId,
    pub generation: CaGeneration,
    pub key: CaKeyReference,
    pub certificate: CaCertificate,
    pub at: DateTime<Utc>,
}

/// The tenant's next issuing CA, to take over from the current one. `issuing`: how it is
/// made; `None` keeps the current one's.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRotation {
    pub tenant: TenantId,
    pub issuing: Option<CaSpec>,
    pub cause: RotationCause,
    pub at: DateTime<Utc>,
}

/// Why a rotation started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RotationCause {
    /// An operator asked for it.
    Operator,
    /// The issuing CA's end is near: devices' certificates would otherwise be cut short.
    Schedule,
    /// The issuing CA was revoked.
    Revocation,
}

impl RotationCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Schedule => "schedule",
            Self::Revocation => "revocation",
        }
    }
}

/// A rotated-out issuing CA has nothing left to answer for.
#[derive(Debug, Clone, PartialEq)]
pub struct RetireCa {
    pub tenant: TenantId,
    pub generation: CaGeneration,
    pub at: DateTime<Utc>,
}

/// An issuing CA is no longer to be trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeCa {
    pub tenant: TenantId,
    pub generation: CaGeneration,
    pub reason: CaRevocationReason,
    pub at: DateTime<Utc>,
}
