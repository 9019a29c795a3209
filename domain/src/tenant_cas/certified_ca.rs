//! What certifying a CA leaves on record: where its key is held (a reference, never key
//! material) and its certificate with the facts the aggregate decides by, read from the
//! certificate by the one who made it (`pki`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::IssuingCaId;

/// Where a CA's private key is held, as the key store names it: an RFC 7512 `pkcs11:` URI or
/// `file:<name>` in the configured key directory. Never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaKeyReference(String);

impl CaKeyReference {
    /// A reference as the key store wrote it (and as an event recorded it).
    pub fn recorded(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A CA's certificate and the facts about it that decisions need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaCertificate {
    pub pem: String,
    /// Its serial number, lowercase hex of its bytes: how its issuer's CRL lists it.
    pub serial: String,
    /// Derived from its public key; names the CA in its CRL and OCSP URLs.
    pub id: IssuingCaId,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// A certified CA: its key's reference and its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedCa {
    pub key: CaKeyReference,
    pub certificate: CaCertificate,
}
