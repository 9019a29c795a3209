//! A PKCS#10 certificate signing request, checked for syntax only.
//!
//! Verifying the request's signature and the key policy is CPU-heavy and belongs to the
//! provisioner in the worker; a CSR that parses here but fails there becomes a domain
//! outcome (`ProvisioningFailed`), not an HTTP error. What this type guarantees is that the
//! text is one PEM block labelled `CERTIFICATE REQUEST` whose DER decodes as PKCS#10, so
//! garbage is refused with a 400 at the edge and never reaches the event store.

use serde::{Deserialize, Serialize};
use std::fmt;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

/// Why a CSR was refused. Messages never echo the submitted text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("must be at most {max} bytes of PEM")]
    TooLarge { max: usize },
    #[error("must be a PEM block labelled 'CERTIFICATE REQUEST'")]
    NotPem,
    #[error("must contain exactly one PEM block")]
    TrailingData,
    #[error("the PEM block does not decode as a PKCS#10 certification request")]
    NotPkcs10,
}

/// A syntactically valid CSR, kept as the normalised PEM text the client sent.
///
/// Deserialisation trusts its input (`transparent`): CSRs are only deserialised from events
/// that were validated when the command was accepted, and re-parsing every stored CSR each
/// time an aggregate is loaded would cost CPU on the hot path for nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, description = "A PKCS#10 certificate signing request, PEM; its subject CN is the device's serial number.", example = "-----BEGIN CERTIFICATE REQUEST-----\n...\n-----END CERTIFICATE REQUEST-----\n"))]
#[serde(transparent)]
pub struct CertificateSigningRequest(String);

impl CertificateSigningRequest {
    /// Generous for RSA-4096 with extensions, small enough to bound parsing work.
    pub const MAX_PEM_BYTES: usize = 16 * 1024;

    pub fn from_pem(raw: &str) -> Result<Self, CsrError> {
        if raw.len() > Self::MAX_PEM_BYTES {
            return Err(CsrError::TooLarge {
                max: Self::MAX_PEM_BYTES,
            });
        }
        let (rest, pem) =
            x509_parser::pem::parse_x509_pem(raw.as_bytes()).map_err(|_| CsrError::NotPem)?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::NotPem);
        }
        if !rest.iter().all(u8::is_ascii_whitespace) {
            return Err(CsrError::TrailingData);
        }
        match X509CertificationRequest::from_der(&pem.contents) {
            Ok(([], _)) => Ok(Self(raw.trim().to_owned())),
            _ => Err(CsrError::NotPkcs10),
        }
    }

    pub fn as_pem(&self) -> &str {
        &self.0
    }
}

/// CSRs are public, but they are long and say nothing useful in a log line.
impl fmt::Debug for CertificateSigningRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateSigningRequest({} bytes)", self.0.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn csr_for(common_name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn accepts_a_real_csr() {
        let pem = csr_for("SN-1");
        assert_eq!(
            CertificateSigningRequest::from_pem(&pem).unwrap().as_pem(),
            pem.trim()
        );
    }

    #[test]
    fn refuses_text_that_is_not_a_csr() {
        assert_eq!(
            CertificateSigningRequest::from_pem("hello"),
            Err(CsrError::NotPem)
        );
        let wrong_label = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            CertificateSigningRequest::from_pem(wrong_label),
            Err(CsrError::NotPem)
        );
        let not_der =
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            CertificateSigningRequest::from_pem(not_der),
            Err(CsrError::NotPkcs10)
        );
    }

    #[test]
    fn refuses_two_blocks_and_oversized_input() {
        let pem = csr_for("SN-1");
        assert_eq!(
            CertificateSigningRequest::from_pem(&format!("{pem}{pem}")),
            Err(CsrError::TrailingData)
        );
        assert!(matches!(
            CertificateSigningRequest::from_pem(&"A".repeat(20_000)),
            Err(CsrError::TooLarge { .. })
        ));
    }
}
