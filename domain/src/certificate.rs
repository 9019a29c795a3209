//! Outcomes of a certificate request, as reported by the provisioner.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A certificate the CA issued for a device. Public material only: the CA's private key
/// and the device's private key never appear here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedCertificate {
    pub pem: String,
    /// The certificate's serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint_sha256: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl IssuedCertificate {
    /// The certificate's SubjectPublicKeyInfo, DER (`None` if `pem` is not a certificate:
    /// never for what the CA issued): to tell which request it answers.
    pub fn public_key_der(&self) -> Option<Vec<u8>> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.pem.as_bytes()).ok()?;
        let certificate = pem.parse_x509().ok()?;
        Some(certificate.public_key().raw.to_vec())
    }

    /// Whether this certificate was issued for `csr`'s key.
    pub fn certifies_key_of(&self, csr: &crate::CertificateSigningRequest) -> bool {
        self.public_key_der()
            .is_some_and(|key| key == csr.public_key_der())
    }
}

/// Why the provisioner refused a request. These are domain outcomes (the client must send a
/// new CSR), not transient faults, which the worker retries instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The CSR's self-signature does not verify.
    InvalidSignature,
    /// The key type or size is not allowed by policy.
    KeyPolicyViolation,
    /// The subject CN is not the device's serial number.
    SubjectMismatch,
    /// The CSR passed the syntax check but could not be interpreted.
    MalformedCsr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvisioningFailure {
    pub code: FailureCode,
    pub detail: String,
}
