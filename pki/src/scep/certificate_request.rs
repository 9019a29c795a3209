//! The CSR inside a SCEP `PKCSReq` or `RenewalReq` (RFC 8894 §3.3.1), as the service takes
//! it: its signature (the proof that the device holds the key) verified here, and then kept
//! only as `domain::VerifiedCsr` (its key, its CNs, its digest), since the request as sent
//! holds the device's key as its challenge password, which is handed to the caller apart,
//! to authenticate the device, and never kept.
//!
//! Must not: log or keep the challenge password.

use std::fmt;

use domain::VerifiedCsr;
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer;

/// A SCEP CSR, its signature verified.
pub struct ScepCertificateRequest {
    pub request: VerifiedCsr,
    /// The challenge password, if the CSR has one: the device's key (a PKCSReq's credential).
    pub challenge_password: Option<ChallengePassword>,
}

/// A challenge password; `Debug` does not print it.
pub struct ChallengePassword(String);

impl ChallengePassword {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChallengePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengePassword(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScepCsrError {
    #[error("the content is not a DER PKCS#10 certification request")]
    NotPkcs10,
    #[error("the certification request's signature does not verify with its own key")]
    Signature,
}

impl ScepCertificateRequest {
    /// `der`, the CSR a SCEP envelope held.
    pub fn from_der(der: &[u8]) -> Result<Self, ScepCsrError> {
        let (rest, csr) =
            X509CertificationRequest::from_der(der).map_err(|_| ScepCsrError::NotPkcs10)?;
        if !rest.is_empty() {
            return Err(ScepCsrError::NotPkcs10);
        }
        csr.verify_signature()
            .map_err(|_| ScepCsrError::Signature)?;
        let info = &csr.certification_request_info;
        let common_names = info
            .subject
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap_or("").to_owned())
            .collect();
        let challenge_password =
            csr.certification_request_info
                .iter_attributes()
                .find_map(|attribute| match attribute.parsed_attribute() {
                    ParsedCriAttribute::ChallengePassword(password) => {
                        Some(ChallengePassword(password.0.clone()))
                    }
                    _ => None,
                });
        Ok(Self {
            request: VerifiedCsr::new(
                info.subject_pki.raw.to_vec(),
                common_names,
                Sha256::digest(der).into(),
            ),
            challenge_password,
        })
    }
}
