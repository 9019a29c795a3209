//! One certificate request of an `ir`, `cr` or `kur` (CRMF, RFC 4211) as RFC 9483's
//! lightweight profile sends it: exactly one `CertReqMsg`, whose proof of possession is a
//! signature by the requested key over its `CertRequest`, exactly as sent.
//!
//! The template is typed here on `der`: `crmf` 0.2 types `validity` as X.509's `Validity`
//! where RFC 4211 has `OptionalValidity`, so a request with a validity (`openssl cmp -days`)
//! would not decode there.
//!
//! Must not: decide whether the request may be granted (the subject, the key's policy and the
//! sender are the caller's to judge), or re-encode what it verifies.

use der::asn1::{AnyRef, BitString};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::failure_info::PkiFailure;

/// A certificate request whose proof of possession checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmfCertificateRequest {
    /// What the answer's `CertResponse` names it by.
    pub cert_req_id: i64,
    /// The subject the sender asks for, if any.
    pub subject: Option<Name>,
    /// The key to certify: its `SubjectPublicKeyInfo`, DER.
    pub public_key: Vec<u8>,
    /// The `CertReqMsg` as sent, DER: what an event keeps, to be verified again.
    pub der: Vec<u8>,
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

/// `CertReqMsg`, the request kept as sent.
#[derive(Sequence)]
struct CertReqMsg<'a> {
    cert_req: AnyRef<'a>,
    #[asn1(optional = "true")]
    popo: Option<AnyRef<'a>>,
    #[asn1(optional = "true")]
    reg_info: Option<AnyRef<'a>>,
}

/// `CertRequest`.
#[derive(Sequence)]
struct CertRequest {
    cert_req_id: i64,
    cert_template: CertTemplate,
    #[asn1(optional = "true")]
    controls: Option<Vec<AttributeTypeAndValue>>,
}

#[derive(Sequence)]
struct AttributeTypeAndValue {
    type_id: der::oid::ObjectIdentifier,
    value: der::Any,
}

/// `OptionalValidity`.
#[derive(Sequence)]
struct OptionalValidity {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    not_before: Option<Time>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    not_after: Option<Time>,
}

/// `CertTemplate`: every field optional, each under its own tag.
#[derive(Sequence)]
struct CertTemplate {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    version: Option<u8>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    serial_number: Option<SerialNumber>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    signing_alg: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    issuer: Option<Name>,
    #[asn1(context_specific = "4", tag_mode = "IMPLICIT", optional = "true")]
    validity: Option<OptionalValidity>,
    #[asn1(context_specific = "5", tag_mode = "EXPLICIT", optional = "true")]
    subject: Option<Name>,
    #[asn1(context_specific = "6", tag_mode = "IMPLICIT", optional = "true")]
    public_key: Option<SubjectPublicKeyInfoOwned>,
    #[asn1(context_specific = "7", tag_mode = "IMPLICIT", optional = "true")]
    issuer_uid: Option<BitString>,
    #[asn1(context_specific = "8", tag_mode = "IMPLICIT", optional = "true")]
    subject_uid: Option<BitString>,
    #[asn1(context_specific = "9", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

/// `POPOSigningKey`, inside `ProofOfPossession`'s `[1]`.
#[derive(Sequence)]
struct PopoSigningKey<'a> {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    poposk_input: Option<AnyRef<'a>>,
    algorithm: AnyRef<'a>,
    signature: BitString,
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
        Self::from_cert_req_msg(&der)
    }

    /// One `CertReqMsg` (DER), its proof of possession verified: also how a stored request is
    /// checked again.
    pub fn from_cert_req_msg(der: &[u8]) -> Result<Self, CrmfRefusal> {
        let malformed = |_| CrmfRefusal::Malformed;
        let message = CertReqMsg::from_der(der).map_err(malformed)?;
        let cert_req_der = message.cert_req.to_der().map_err(malformed)?;
        let request = CertRequest::from_der(&cert_req_der).map_err(malformed)?;
        let public_key = request
            .cert_template
            .public_key
            .as_ref()
            .ok_or(CrmfRefusal::NoPublicKey)?
            .to_der()
            .map_err(malformed)?;
        let popo = message.popo.ok_or(CrmfRefusal::NoSignatureProof)?;
        // `signature [1]`, implicitly tagged: its content is POPOSigningKey's.
        let tag = der::Tagged::tag(&popo);
        if tag.class() != der::Class::ContextSpecific || tag.number().value() != 1 {
            return Err(CrmfRefusal::NoSignatureProof);
        }
        let as_sequence = AnyRef::new(der::Tag::Sequence, popo.value())
            .and_then(|sequence| sequence.to_der())
            .map_err(malformed)?;
        let signing_key = PopoSigningKey::from_der(&as_sequence).map_err(malformed)?;
        if signing_key.poposk_input.is_some() {
            // Only for requests without a public key or subject in the template
            // (RFC 4211 §4.1), which this service refuses anyway.
            return Err(CrmfRefusal::NoSignatureProof);
        }
        super::signature_check::verify(
            &public_key,
            &signing_key.algorithm.to_der().map_err(malformed)?,
            &signing_key.signature,
            &cert_req_der,
        )
        .map_err(|_| CrmfRefusal::ProofFails)?;
        Ok(Self {
            cert_req_id: request.cert_req_id,
            subject: request.cert_template.subject,
            public_key,
            der: der.to_vec(),
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
            let (_, key) =
                x509_parser::x509::SubjectPublicKeyInfo::from_der(&request.public_key).unwrap();
            assert_eq!(
                key.algorithm.algorithm.to_id_string(),
                "1.2.840.10045.2.1",
                "{name}"
            );
            // The stored form is checked again to the same result.
            assert_eq!(
                CrmfCertificateRequest::from_cert_req_msg(&request.der).unwrap(),
                request
            );
        }
        let ir = CrmfCertificateRequest::from_cert_req_messages(&content_of("ir-hmac-sha1.der"))
            .unwrap();
        assert_eq!(ir.subject.unwrap().to_string(), "CN=SN-0001");
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
        assert_ne!(request.der, changed);
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
