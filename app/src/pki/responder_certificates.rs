//! The delegated OCSP signers of tenants' CAs: the api's responder key, registered by its
//! public key (the key itself never leaves the api), certified by each tenant CA that answers
//! OCSP (the worker does it, `ResponderCertification`), and the certificates the api answers
//! with. The port is storage only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::IssuingCaId;
use crate::StoreError;

/// A responder key, by its public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderKey {
    /// Lowercase hex SHA-256 of `spki`.
    pub sha256: String,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

/// A CA's certificate of a responder key: the signer's certificate, then the CA's (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderCertificate {
    pub ca: IssuingCaId,
    pub chain_pem: String,
    pub not_after: DateTime<Utc>,
}

#[async_trait]
pub trait ResponderCertificates: Send + Sync + 'static {
    /// Registers `key` (again: harmless).
    async fn register(&self, key: &ResponderKey) -> Result<(), StoreError>;

    async fn keys(&self) -> Result<Vec<ResponderKey>, StoreError>;

    /// When `ca`'s certificate of `key` ends, if it has one.
    async fn expiry(
        &self,
        ca: &IssuingCaId,
        key: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Stores `certificate` of `key`, replacing the CA's older one.
    async fn store(&self, key: &str, certificate: &ResponderCertificate) -> Result<(), StoreError>;

    /// Every CA's certificate of `key`.
    async fn of_key(&self, key: &str) -> Result<Vec<ResponderCertificate>, StoreError>;
}
