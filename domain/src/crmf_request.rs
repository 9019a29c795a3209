//! A CRMF certificate request (RFC 4211's `CertReqMsg`), as CMP's `ir`, `cr` and `kur` carry
//! it: checked for syntax only, like a PKCS#10 request (`csr.rs`). What this type guarantees
//! is one DER `CertReqMsg` whose template names the key to certify; whether its proof of
//! possession verifies, and whether the key meets the policy, is the CPU-heavy work of
//! `pki` (the api checks the proof before answering, the provisioner again before signing).
//!
//! The template is typed here on `der`, not with the `crmf` crate: `crmf` 0.2 types
//! `validity` as X.509's `Validity` where RFC 4211 has `OptionalValidity`, so a request with
//! a validity (`openssl cmp -days`) would not decode there.
//!
//! Must not: re-encode the request (its proof signs the `CertRequest` exactly as sent).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use der::asn1::{AnyRef, BitString, Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber as CertificateSerial;
use x509_cert::time::Time;

use crate::csr::subject_rule;
use crate::{SerialNumber, SubjectMismatch};

/// Why a CRMF request was refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmfError {
    #[error("must be at most {max} bytes of DER")]
    TooLarge { max: usize },
    #[error("is not a DER CertReqMsg")]
    Malformed,
    #[error("the certificate template names no public key")]
    NoPublicKey,
}

/// One `CertReqMsg`, DER, as the device sent it.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, description = "A CRMF certificate request (RFC 4211 CertReqMsg, as CMP carries it), DER in standard base64; its subject CN is the device's serial number."))]
pub struct CrmfRequest(Vec<u8>);

/// The request's proof of possession by signature (`POPOSigningKey`): `signature` by
/// `algorithm` over `signed`, the `CertRequest` as sent; for `pki` to verify with the
/// requested key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmfSignatureProof {
    pub signed: Vec<u8>,
    /// `AlgorithmIdentifier`, DER.
    pub algorithm: Vec<u8>,
    pub signature: BitString,
}

/// How a request proves possession of its key, when not by a signature over its
/// `CertRequest` (a key agreement or encipherment proof, or a signature over `poposkInput`,
/// which only a request without key or subject needs): refused by this service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request has no proof of possession by a signature over its CertRequest")]
pub struct NoSignatureProof;

impl CrmfRequest {
    /// As a PKCS#10 request's bound: generous for RSA-4096 with extensions.
    pub const MAX_DER_BYTES: usize = 12 * 1024;

    pub fn from_der(der: &[u8]) -> Result<Self, CrmfError> {
        if der.len() > Self::MAX_DER_BYTES {
            return Err(CrmfError::TooLarge {
                max: Self::MAX_DER_BYTES,
            });
        }
        let message = CertReqMsg::from_der(der).map_err(|_| CrmfError::Malformed)?;
        let request = message.cert_request().map_err(|_| CrmfError::Malformed)?;
        match request.cert_template.public_key {
            Some(_) => Ok(Self(der.to_vec())),
            None => Err(CrmfError::NoPublicKey),
        }
    }

    /// A request as an event recorded it, not checked again (see
    /// `CertificateSigningRequest::recorded`). For the event store's schema.
    pub fn recorded(der: Vec<u8>) -> Self {
        Self(der)
    }

    pub fn as_der(&self) -> &[u8] {
        &self.0
    }

    /// What the answer names the request by (`certReqId`).
    pub fn cert_req_id(&self) -> i64 {
        self.with_request(|request| request.cert_req_id)
    }

    /// The key to certify: its `SubjectPublicKeyInfo`, DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.with_request(|request| {
            request
                .cert_template
                .public_key
                .as_ref()
                .and_then(|key| key.to_der().ok())
                .unwrap_or_default()
        })
    }

    /// The subject rule every certificate request must meet (`csr.rs`): exactly one CN,
    /// the device's serial number.
    pub fn check_subject(&self, serial: &SerialNumber) -> Result<(), SubjectMismatch> {
        let names = self.with_request(|request| {
            request
                .cert_template
                .subject
                .as_ref()
                .map(common_names)
                .unwrap_or_default()
        });
        subject_rule(&names, serial)
    }

    /// The proof of possession by signature, for `pki` to verify.
    pub fn signature_proof(&self) -> Result<CrmfSignatureProof, NoSignatureProof> {
        let message = CertReqMsg::from_der(&self.0).map_err(|_| NoSignatureProof)?;
        let popo = message.popo.ok_or(NoSignatureProof)?;
        // `signature [1]`, implicitly tagged: its content is POPOSigningKey's.
        let tag = der::Tagged::tag(&popo);
        if tag.class() != der::Class::ContextSpecific || tag.number().value() != 1 {
            return Err(NoSignatureProof);
        }
        let as_sequence = AnyRef::new(der::Tag::Sequence, popo.value())
            .and_then(|sequence| sequence.to_der())
            .map_err(|_| NoSignatureProof)?;
        let signing_key = PopoSigningKey::from_der(&as_sequence).map_err(|_| NoSignatureProof)?;
        if signing_key.poposk_input.is_some() {
            // Only for requests without a public key or subject in the template
            // (RFC 4211 §4.1).
            return Err(NoSignatureProof);
        }
        Ok(CrmfSignatureProof {
            signed: message.cert_req.to_der().map_err(|_| NoSignatureProof)?,
            algorithm: signing_key
                .algorithm
                .to_der()
                .map_err(|_| NoSignatureProof)?,
            signature: signing_key.signature,
        })
    }

    /// The parsed request. The DER was checked when this value was made (or comes from an
    /// event that was), so it parses.
    fn with_request<T>(&self, read: impl FnOnce(&CertRequest) -> T) -> T {
        let message = CertReqMsg::from_der(&self.0).expect("a CrmfRequest holds a CertReqMsg");
        let request = message
            .cert_request()
            .expect("a CrmfRequest holds a CertRequest");
        read(&request)
    }
}

/// The values of a name's CNs, as text (a CN of a string type this does not read is "").
fn common_names(name: &Name) -> Vec<String> {
    let common_name = der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|attribute| attribute.oid == common_name)
        .map(|attribute| {
            let value = &attribute.value;
            value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .unwrap_or_default()
        })
        .collect()
}

/// As standard base64 of the DER; deserialisation trusts its input, as a CSR's does.
impl serde::Serialize for CrmfRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for CrmfRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// Requests are public, but long and of no use in a log line.
impl fmt::Debug for CrmfRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrmfRequest({} bytes)", self.0.len())
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

impl CertReqMsg<'_> {
    fn cert_request(&self) -> der::Result<CertRequest> {
        CertRequest::from_der(&self.cert_req.to_der()?)
    }
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
    serial_number: Option<CertificateSerial>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/crmf")
                .join(name),
        )
        .unwrap()
    }

    fn serial(raw: &str) -> SerialNumber {
        SerialNumber::parse(raw).unwrap()
    }

    #[test]
    fn openssl_s_requests_name_their_key_and_subject() {
        for name in ["sn-0001.der", "sn-0001-with-validity.der"] {
            let request = CrmfRequest::from_der(&fixture(name)).unwrap();
            assert_eq!(request.cert_req_id(), 0);
            let key = request.public_key_der();
            let spki = SubjectPublicKeyInfoOwned::from_der(&key).unwrap();
            assert_eq!(spki.algorithm.oid.to_string(), "1.2.840.10045.2.1");
            request.check_subject(&serial("SN-0001")).unwrap();
            let refusal = request.check_subject(&serial("SN-0002")).unwrap_err();
            assert!(refusal.to_string().contains("CN \"SN-0001\""), "{refusal}");
            let proof = request.signature_proof().unwrap();
            assert_eq!(
                proof.signed.first(),
                Some(&0x30),
                "the CertRequest, as sent"
            );
        }
    }

    #[test]
    fn garbage_a_missing_key_and_an_oversized_request_are_refused() {
        assert_eq!(CrmfRequest::from_der(b"garbage"), Err(CrmfError::Malformed));
        let der = fixture("sn-0001.der");
        assert_eq!(
            CrmfRequest::from_der(&der[..der.len() - 1]),
            Err(CrmfError::Malformed)
        );
        assert!(matches!(
            CrmfRequest::from_der(&vec![0x30; CrmfRequest::MAX_DER_BYTES + 1]),
            Err(CrmfError::TooLarge { .. })
        ));
        // The template's public key ([6]) renamed to a tag the template does not have.
        let at = der
            .windows(2)
            .position(|w| w == [0xa6, 0x59])
            .expect("the public key");
        let mut without_key = der.clone();
        without_key[at] = 0xa9;
        assert!(CrmfRequest::from_der(&without_key).is_err());
    }

    #[test]
    fn every_truncation_and_byte_change_is_read_or_refused_never_a_panic() {
        let der = fixture("sn-0001.der");
        for end in 0..der.len() {
            let _ = CrmfRequest::from_der(&der[..end]);
        }
        for at in 0..der.len() {
            for change in [0x00, 0xff, der[at] ^ 0x01, der[at].wrapping_add(0x80)] {
                let mut changed = der.clone();
                changed[at] = change;
                if let Ok(request) = CrmfRequest::from_der(&changed) {
                    let _ = request.public_key_der();
                    let _ = request.check_subject(&serial("SN-0001"));
                    let _ = request.signature_proof();
                    let _ = request.cert_req_id();
                }
            }
        }
    }

    #[test]
    fn serialised_as_base64_of_the_der() {
        let request = CrmfRequest::from_der(&fixture("sn-0001.der")).unwrap();
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<CrmfRequest>(&json).unwrap(), request);
        assert_eq!(format!("{request:?}"), "CrmfRequest(212 bytes)");
    }
}
