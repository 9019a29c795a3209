//! One certificate request of an `ir`, `cr` or `kur` (CRMF, RFC 4211) as RFC 9483's
//! lightweight profile sends it: exactly one `CertReqMsg` (`domain::CrmfRequest`), whose proof
//! of possession is a signature by the requested key over its `CertRequest`, exactly as sent.
//! The api checks it before answering; the provisioner checks the stored request again
//! (`csr_policy.rs`) before signing.
//!
//! Must not: decide whether the request may be granted (the subject, the key's policy and the
//! sender are the caller's to judge), or re-encode what it verifies.

use der::asn1::AnyRef;
use der::{Decode, Encode};
use domain::{CrmfError, CrmfRequest};

use super::failure_info::PkiFailure;

/// A certificate request whose proof of possession checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmfCertificateRequest {
    /// What the answer's `CertResponse` names it by.
    pub cert_req_id: i64,
    /// The request as sent: what an event keeps, to be verified again.
    pub request: CrmfRequest,
}

/// Why a CRMF request is refused; each maps to a `PKIFailureInfo` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmfRefusal {
    #[error("the request is not a DER CertReqMessages")]
    Malformed,
    #[error("exactly one certificate request is answered per message")]
    NotOne,
    #[error("the template names no public key")]
    NoPublicKey,
    #[error("the request has no proof of possession by signature")]
    NoSignatureProof,
    #[error("the proof of possession does not verify with the requested key")]
    ProofFails,
}

impl CrmfRefusal {
    /// The `PKIFailureInfo` reason to answer with.
    pub fn failure(&self) -> PkiFailure {
        match self {
            Self::Malformed => PkiFailure::BadDataFormat,
            Self::NotOne => PkiFailure::BadRequest,
            Self::NoPublicKey => PkiFailure::BadCertTemplate,
            Self::NoSignatureProof | Self::ProofFails => PkiFailure::BadPop,
        }
    }
}

impl From<CrmfError> for CrmfRefusal {
    fn from(error: CrmfError) -> Self {
        match error {
            CrmfError::TooLarge { .. } | CrmfError::Malformed => Self::Malformed,
            CrmfError::NoPublicKey => Self::NoPublicKey,
        }
    }
}

impl CrmfCertificateRequest {
    /// The one request of `cert_req_messages` (an `ir`'s, `cr`'s or `kur`'s content, DER),
    /// its proof of possession verified.
    pub fn from_cert_req_messages(cert_req_messages: &[u8]) -> Result<Self, CrmfRefusal> {
        let malformed = |_| CrmfRefusal::Malformed;
        let messages =
            <Vec<AnyRef<'_>> as Decode>::from_der(cert_req_messages).map_err(malformed)?;
        let [message] = messages.as_slice() else {
            return Err(CrmfRefusal::NotOne);
        };
        let der = message.to_der().map_err(malformed)?;
        Self::verified(CrmfRequest::from_der(&der)?)
    }

    /// `request` with its proof of possession verified: also how a stored request is checked
    /// again.
    pub fn verified(request: CrmfRequest) -> Result<Self, CrmfRefusal> {
        let proof = request
            .signature_proof()
            .map_err(|_| CrmfRefusal::NoSignatureProof)?;
        crate::signature_check::verify(
            &request.public_key_der(),
            &proof.algorithm,
            &proof.signature,
            &proof.signed,
        )
        .map_err(|_| CrmfRefusal::ProofFails)?;
        Ok(Self {
            cert_req_id: request.cert_req_id(),
            request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmp::{CmpRequest, CmpRequestBody};
    use x509_parser::prelude::FromDer as _;

    fn content_of(name: &str) -> Vec<u8> {
        let der = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/cmp")
                .join(name),
        )
        .unwrap();
        match CmpRequest::from_der(&der).unwrap().body {
            CmpRequestBody::Ir(content) | CmpRequestBody::Kur(content) => content,
            other => panic!("{name}: {}", other.name()),
        }
    }

    #[test]
    fn openssl_s_requests_prove_possession_of_the_key_they_ask_for() {
        for name in ["ir-hmac-sha1.der", "ir-with-validity.der", "kur-signed.der"] {
            let request = CrmfCertificateRequest::from_cert_req_messages(&content_of(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(request.cert_req_id, 0, "{name}");
            let key = request.request.public_key_der();
            let (_, key) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&key).unwrap();
            assert_eq!(
                key.algorithm.algorithm.to_id_string(),
                "1.2.840.10045.2.1",
                "{name}"
            );
            // The stored form is checked again to the same result.
            let stored = CrmfRequest::recorded(request.request.as_der().to_vec());
            assert_eq!(CrmfCertificateRequest::verified(stored).unwrap(), request);
        }
        let ir = CrmfCertificateRequest::from_cert_req_messages(&content_of("ir-hmac-sha1.der"))
            .unwrap();
        let serial = domain::SerialNumber::parse("SN-0001").unwrap();
        ir.request.check_subject(&serial).unwrap();
    }

    #[test]
    fn a_request_changed_after_it_was_signed_is_refused() {
        let content = content_of("ir-hmac-sha1.der");
        let request = CrmfCertificateRequest::from_cert_req_messages(&content).unwrap();
        // The subject's last character, inside the signed CertRequest.
        let at = content
            .windows(7)
            .position(|w| w == b"SN-0001")
            .expect("the subject is in the request")
            + 6;
        let mut changed = content.clone();
        changed[at] = b'2';
        assert_eq!(
            CrmfCertificateRequest::from_cert_req_messages(&changed),
            Err(CrmfRefusal::ProofFails)
        );
        assert_eq!(CrmfRefusal::ProofFails.failure().bit(), 9, "badPOP");
        assert_ne!(request.request.as_der(), changed);
    }

    #[test]
    fn garbage_and_more_than_one_request_are_refused() {
        assert_eq!(
            CrmfCertificateRequest::from_cert_req_messages(b"garbage"),
            Err(CrmfRefusal::Malformed)
        );
        let content = content_of("ir-hmac-sha1.der");
        let one = <Vec<AnyRef<'_>> as Decode>::from_der(&content).unwrap();
        let two = vec![one[0], one[0]].to_der().unwrap();
        assert_eq!(
            CrmfCertificateRequest::from_cert_req_messages(&two),
            Err(CrmfRefusal::NotOne)
        );
        let none = Vec::<AnyRef<'_>>::new().to_der().unwrap();
        assert_eq!(
            CrmfCertificateRequest::from_cert_req_messages(&none),
            Err(CrmfRefusal::NotOne)
        );
    }
}
