//! What a device asks to have certified, in the form its protocol carries it: a PKCS#10 CSR
//! (the HTTP API, EST, CMP's `p10cr`), a CRMF request (CMP's `ir`, `cr`, `kur`), or a PKCS#10
//! request verified where it arrived and kept without its attributes (SCEP, whose CSR holds
//! the device's key as its challenge password: `VerifiedCsr`). Each names the key and the
//! subject; each proves possession of the key its own way, which `pki` checks. The rest of the domain asks only what every form answers: the key, and whether
//! the subject is the device's serial number.

use serde::{Deserialize, Serialize};

use crate::{CertificateSigningRequest, CrmfRequest, SerialNumber, SubjectMismatch, VerifiedCsr};

/// Serialised (cqrs-es asks every event for serde; the event store writes its own forms) as
/// `{"pkcs10": "<PEM>"}`, `{"crmf": "<base64 DER>"}` or `{"verified_pkcs10": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningRequest {
    Pkcs10(CertificateSigningRequest),
    Crmf(CrmfRequest),
    VerifiedPkcs10(VerifiedCsr),
}

impl SigningRequest {
    /// The key to certify: its SubjectPublicKeyInfo, DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        match self {
            Self::Pkcs10(csr) => csr.public_key_der(),
            Self::Crmf(request) => request.public_key_der(),
            Self::VerifiedPkcs10(request) => request.public_key_der().to_vec(),
        }
    }

    /// Exactly one CN, the device's serial number.
    pub fn check_subject(&self, serial: &SerialNumber) -> Result<(), SubjectMismatch> {
        match self {
            Self::Pkcs10(csr) => csr.check_subject(serial),
            Self::Crmf(request) => request.check_subject(serial),
            Self::VerifiedPkcs10(request) => request.check_subject(serial),
        }
    }

    /// The form's name, for logs and metrics.
    pub fn form(&self) -> &'static str {
        match self {
            Self::Pkcs10(_) => "pkcs10",
            Self::Crmf(_) => "crmf",
            Self::VerifiedPkcs10(_) => "verified_pkcs10",
        }
    }
}

impl From<CertificateSigningRequest> for SigningRequest {
    fn from(csr: CertificateSigningRequest) -> Self {
        Self::Pkcs10(csr)
    }
}

impl From<CrmfRequest> for SigningRequest {
    fn from(request: CrmfRequest) -> Self {
        Self::Crmf(request)
    }
}
