//! Outcomes of a certificate request, as reported by the provisioner.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::IssuingCaId;

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
    /// The CA that signed it. Absent from certificates recorded before issuers were (those
    /// were all signed by the one CA the service had then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuingCaId>,
}

/// The certificate a device authenticated a request with (TLS client authentication): its
/// serial (lowercase hex) and the CA that signed it. A device accepts such a request only
/// while this is its current, unrevoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateCredential {
    pub serial: String,
    pub issuer: IssuingCaId,
}

impl IssuedCertificate {
    /// The certificate's SubjectPublicKeyInfo, DER (`None` if `pem` is not a certificate:
    /// never for what the CA issued): to tell which request it answers.
    pub fn public_key_der(&self) -> Option<Vec<u8>> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.pem.as_bytes()).ok()?;
        let certificate = pem.parse_x509().ok()?;
        Some(certificate.public_key().raw.to_vec())
    }

    /// Whether this certificate was issued for `request`'s key.
    pub fn certifies_key_of(&self, request: &crate::SigningRequest) -> bool {
        self.public_key_der()
            .is_some_and(|key| key == request.public_key_der())
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
