//! What a device asks to have certified, in the form its protocol carries it: a PKCS#10 CSR
//! (the HTTP API, EST, CMP's `p10cr`) or a CRMF request (CMP's `ir`, `cr`, `kur`). Both name
//! the key and the subject; each proves possession of the key its own way, which `pki`
//! checks. The rest of the domain asks only what every form answers: the key, and whether
//! the subject is the device's serial number.

use serde::{Deserialize, Serialize};

use crate::{CertificateSigningRequest, CrmfRequest, SerialNumber, SubjectMismatch};

/// Serialised (cqrs-es asks every event for serde; the event store writes its own forms) as
/// `{"pkcs10": "<PEM>"}` or `{"crmf": "<base64 DER>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningRequest {
    Pkcs10(CertificateSigningRequest),
    Crmf(CrmfRequest),
}

impl SigningRequest {
    /// The key to certify: its SubjectPublicKeyInfo, DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        match self {
            Self::Pkcs10(csr) => csr.public_key_der(),
            Self::Crmf(request) => request.public_key_der(),
        }
    }

    /// Exactly one CN, the device's serial number.
    pub fn check_subject(&self, serial: &SerialNumber) -> Result<(), SubjectMismatch> {
        match self {
            Self::Pkcs10(csr) => csr.check_subject(serial),
            Self::Crmf(request) => request.check_subject(serial),
        }
    }

    /// The form's name, for logs and metrics.
    pub fn form(&self) -> &'static str {
        match self {
            Self::Pkcs10(_) => "pkcs10",
            Self::Crmf(_) => "crmf",
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
