//! A CMP request as this service reads it (RFC 9483 over RFC 6712): the transaction and the
//! nonces an answer must echo, who the sender says it is, how the message is protected (and
//! the exact bytes the protection covers), and which request it is, its content kept as DER
//! for the step that handles that kind.
//!
//! The body is told apart by its own tag and decoded no further here; the header is read
//! with `cmpv2`'s type. (`cmpv2` 0.2's body enum types `pollReq` as `pollRep`, so a whole
//! `PKIMessage` of it would not decode.)
//!
//! Must not: judge the protection (that needs the sender's secret or certificate), or keep
//! anything a sender did not send.

use cmpv2::header::{PkiHeader, Pvno};
use der::asn1::AnyRef;
use der::oid::ObjectIdentifier;
use der::{Class, Decode, Encode, Reader, SliceReader, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;

use super::failure_info::PkiFailure;
use super::password_based_mac::{PasswordBasedMac, PbmRefusal, PASSWORD_BASED_MAC};

/// `id-it-implicitConfirm`: the sender waives `certConf` (RFC 4210 §5.1.1.1).
const IMPLICIT_CONFIRM: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.13");

/// A transaction id or nonce longer than this is refused (RFC 9483 asks for 16 bytes).
const MAX_ID: usize = 64;

/// Which request a message is, its content (inside the body's tag) as DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmpRequestBody {
    /// `ir` (tag 0): initialization request, `CertReqMessages`.
    Ir(Vec<u8>),
    /// `cr` (tag 2): certification request, `CertReqMessages`.
    Cr(Vec<u8>),
    /// `p10cr` (tag 4): a PKCS#10 `CertificationRequest`.
    P10cr(Vec<u8>),
    /// `kur` (tag 7): key update request, `CertReqMessages`.
    Kur(Vec<u8>),
    /// `rr` (tag 11): revocation request, `RevReqContent`.
    Rr(Vec<u8>),
    /// `genm` (tag 21): general message, `GenMsgContent`.
    Genm(Vec<u8>),
    /// `certConf` (tag 24): `CertConfirmContent`.
    CertConf(Vec<u8>),
    /// `pollReq` (tag 25): `PollReqContent`.
    PollReq(Vec<u8>),
}

impl CmpRequestBody {
    /// Its name in RFC 4210.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ir(_) => "ir",
            Self::Cr(_) => "cr",
            Self::P10cr(_) => "p10cr",
            Self::Kur(_) => "kur",
            Self::Rr(_) => "rr",
            Self::Genm(_) => "genm",
            Self::CertConf(_) => "certConf",
            Self::PollReq(_) => "pollReq",
        }
    }
}

/// How the sender protected the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmpProtection {
    /// A password-based MAC, whose secret the sender names by `senderKID`.
    PasswordBasedMac(PasswordBasedMac),
    /// A signature with this algorithm, by a certificate among `extraCerts` (or known):
    /// [`CmpRequest::signed_by`] checks it.
    Signature(AlgorithmIdentifierOwned),
}

/// A request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmpRequest {
    /// Who the sender says it is: an answer's recipient.
    pub sender: GeneralName,
    pub transaction_id: Vec<u8>,
    pub sender_nonce: Vec<u8>,
    /// Our last answer's `senderNonce`, echoed (absent from a transaction's first message).
    pub recip_nonce: Option<Vec<u8>>,
    /// The key the sender names: with a MAC, the reference of its secret.
    pub sender_kid: Option<Vec<u8>>,
    /// The sender waives `certConf`.
    pub implicit_confirm: bool,
    pub protection: CmpProtection,
    /// `ProtectedPart`'s DER: what `protection_bits` covers.
    pub protected_part: Vec<u8>,
    pub protection_bits: Vec<u8>,
    /// `extraCerts`, each DER, in the message's order.
    pub extra_certs: Vec<Vec<u8>>,
    pub body: CmpRequestBody,
}

/// Why a message is no request this service reads; each is answered with CMP's own
/// `error` message, with the `PKIFailureInfo` reason [`CmpRequestError::failure`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmpRequestError {
    #[error("the body is not a DER PKIMessage")]
    NotAMessage,
    /// OpenSSL 3.0 and RFC 9483's profile send 2 (`cmp2000`); 3 is for features this
    /// service does not offer.
    #[error("pvno must be 2")]
    UnsupportedVersion,
    #[error("the header has no transactionID, or one longer than 64 bytes")]
    TransactionId,
    #[error("the header has no senderNonce, or one longer than 64 bytes")]
    SenderNonce,
    #[error("the message is not protected")]
    Unprotected,
    #[error("{0}")]
    Protection(PbmRefusal),
    #[error("a {0} is not a request this service answers")]
    NotARequest(&'static str),
}

impl CmpRequestError {
    /// The `PKIFailureInfo` reason to answer with.
    pub fn failure(&self) -> PkiFailure {
        match self {
            Self::NotAMessage => PkiFailure::BadDataFormat,
            Self::UnsupportedVersion => PkiFailure::UnsupportedVersion,
            Self::TransactionId | Self::SenderNonce | Self::NotARequest(_) => {
                PkiFailure::BadRequest
            }
            Self::Unprotected => PkiFailure::BadMessageCheck,
            Self::Protection(_) => PkiFailure::BadAlg,
        }
    }
}

impl CmpRequest {
    /// Reads `der`, a `PKIMessage` as the client sent it.
    pub fn from_der(der: &[u8]) -> Result<Self, CmpRequestError> {
        let malformed = |_| CmpRequestError::NotAMessage;
        let message = AnyRef::from_der(der).map_err(malformed)?;
        if message.tag() != der::Tag::Sequence {
            return Err(CmpRequestError::NotAMessage);
        }
        let mut fields = SliceReader::new(message.value()).map_err(malformed)?;
        let header_any = AnyRef::decode(&mut fields).map_err(malformed)?;
        let body_any = AnyRef::decode(&mut fields).map_err(malformed)?;
        let mut protection_bits = None;
        let mut extra_certs = Vec::new();
        while !fields.is_finished() {
            let field = AnyRef::decode(&mut fields).map_err(malformed)?;
            match (field.tag().class(), field.tag().number().value()) {
                (Class::ContextSpecific, 0) if protection_bits.is_none() => {
                    let bits = der::asn1::BitString::from_der(field.value()).map_err(malformed)?;
                    protection_bits = Some(bits.raw_bytes().to_vec());
                }
                (Class::ContextSpecific, 1) if extra_certs.is_empty() => {
                    let mut certs = SliceReader::new(
                        AnyRef::from_der(field.value()).map_err(malformed)?.value(),
                    )
                    .map_err(malformed)?;
                    while !certs.is_finished() {
                        let cert = AnyRef::decode(&mut certs).map_err(malformed)?;
                        extra_certs.push(cert.to_der().map_err(malformed)?);
                    }
                }
                _ => return Err(CmpRequestError::NotAMessage),
            }
        }

        // The version first: a header of another version may not read as this one's.
        let mut header_fields = SliceReader::new(header_any.value()).map_err(malformed)?;
        if u8::decode(&mut header_fields).map_err(malformed)? != Pvno::Cmp2000 as u8 {
            return Err(CmpRequestError::UnsupportedVersion);
        }
        let header_der = header_any.to_der().map_err(malformed)?;
        let header = PkiHeader::from_der(&header_der).map_err(malformed)?;
        let bounded = |id: Option<&der::asn1::OctetString>| {
            id.map(|id| id.as_bytes().to_vec())
                .filter(|id| !id.is_empty() && id.len() <= MAX_ID)
        };
        let transaction_id =
            bounded(header.trans_id.as_ref()).ok_or(CmpRequestError::TransactionId)?;
        let sender_nonce =
            bounded(header.sender_nonce.as_ref()).ok_or(CmpRequestError::SenderNonce)?;
        let implicit_confirm = header
            .general_info
            .iter()
            .flatten()
            .any(|info| info.oid == IMPLICIT_CONFIRM);
        let protection_alg = header
            .protection_alg
            .as_ref()
            .ok_or(CmpRequestError::Unprotected)?;
        let protection = protection_of(protection_alg)?;
        let protection_bits = protection_bits.ok_or(CmpRequestError::Unprotected)?;
        let body = body_of(&body_any)?;
        Ok(Self {
            sender: header.sender.clone(),
            transaction_id,
            sender_nonce,
            recip_nonce: bounded(header.recip_nonce.as_ref()),
            sender_kid: header
                .sender_kid
                .as_ref()
                .map(|kid| kid.as_bytes().to_vec()),
            implicit_confirm,
            protection,
            protected_part: super::protected_part(der).map_err(malformed)?,
            protection_bits,
            extra_certs,
            body,
        })
    }
}

/// `PollReqContent`'s one element.
#[derive(der::Sequence)]
struct PollReq {
    cert_req_id: i64,
}

/// `InfoTypeAndValue`, its value left unread.
#[derive(der::Sequence)]
struct InfoType<'a> {
    info_type: ObjectIdentifier,
    #[asn1(optional = "true")]
    value: Option<AnyRef<'a>>,
}

/// `id-it-caCerts` (RFC 9483 §4.3.1).
const CA_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");

impl CmpRequest {
    /// A `pollReq`'s `certReqId` (RFC 9483 polls one request at a time); `None` for another
    /// body, or a `pollReq` that does not name exactly one.
    pub fn polled_cert_req_id(&self) -> Option<i64> {
        let CmpRequestBody::PollReq(content) = &self.body else {
            return None;
        };
        match <Vec<PollReq> as Decode>::from_der(content).ok()?.as_slice() {
            [one] => Some(one.cert_req_id),
            _ => None,
        }
    }

    /// Whether a `genm` asks for the CA certificates (`id-it-caCerts`).
    pub fn asks_for_ca_certificates(&self) -> bool {
        let CmpRequestBody::Genm(content) = &self.body else {
            return false;
        };
        <Vec<InfoType<'_>> as Decode>::from_der(content)
            .is_ok_and(|infos| infos.iter().any(|info| info.info_type == CA_CERTS))
    }
}

impl CmpRequest {
    /// Whether the message is signed, and the signature over its protected part verifies
    /// with the key of `certificate` (DER). Who that certificate belongs to, and whether it
    /// is still good, is the caller's to judge.
    pub fn signed_by(&self, certificate: &[u8]) -> Result<(), SignatureRefusal> {
        let CmpProtection::Signature(algorithm) = &self.protection else {
            return Err(SignatureRefusal::NotSigned);
        };
        let certificate = x509_cert::Certificate::from_der(certificate)
            .map_err(|_| SignatureRefusal::Unreadable)?;
        let key = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| SignatureRefusal::Unreadable)?;
        let algorithm = algorithm
            .to_der()
            .map_err(|_| SignatureRefusal::Unreadable)?;
        let bits = der::asn1::BitString::from_bytes(&self.protection_bits)
            .map_err(|_| SignatureRefusal::Unreadable)?;
        crate::signature_check::verify(&key, &algorithm, &bits, &self.protected_part)
            .map_err(|_| SignatureRefusal::DoesNotVerify)
    }
}

/// Why a request's signature does not authenticate it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    #[error("the message is not signed")]
    NotSigned,
    #[error("the certificate or the signature does not parse")]
    Unreadable,
    #[error("the signature does not verify with the certificate's key")]
    DoesNotVerify,
}

fn protection_of(alg: &AlgorithmIdentifierOwned) -> Result<CmpProtection, CmpRequestError> {
    if alg.oid == PASSWORD_BASED_MAC {
        return PasswordBasedMac::of(alg)
            .map(CmpProtection::PasswordBasedMac)
            .map_err(CmpRequestError::Protection);
    }
    Ok(CmpProtection::Signature(alg.clone()))
}

fn body_of(body: &AnyRef<'_>) -> Result<CmpRequestBody, CmpRequestError> {
    let tag = body.tag();
    if tag.class() != Class::ContextSpecific || !tag.is_constructed() {
        return Err(CmpRequestError::NotAMessage);
    }
    // Explicitly tagged: the content is one whole element.
    let inner = AnyRef::from_der(body.value()).map_err(|_| CmpRequestError::NotAMessage)?;
    let content = inner.to_der().map_err(|_| CmpRequestError::NotAMessage)?;
    Ok(match tag.number().value() {
        0 => CmpRequestBody::Ir(content),
        2 => CmpRequestBody::Cr(content),
        4 => CmpRequestBody::P10cr(content),
        7 => CmpRequestBody::Kur(content),
        11 => CmpRequestBody::Rr(content),
        21 => CmpRequestBody::Genm(content),
        24 => CmpRequestBody::CertConf(content),
        25 => CmpRequestBody::PollReq(content),
        other => return Err(CmpRequestError::NotARequest(response_name(other))),
    })
}

/// The name of a body that is not a request (RFC 4210 §5.1.2).
fn response_name(tag: u8) -> &'static str {
    match tag {
        1 => "ip",
        3 => "cp",
        5 => "popdecc",
        6 => "popdecr",
        8 => "kup",
        9 => "krr",
        10 => "krp",
        12 => "rp",
        13 => "ccr",
        14 => "ccp",
        15 => "ckuann",
        16 => "cann",
        17 => "rann",
        18 => "crlann",
        19 => "pkiconf",
        20 => "nested message",
        22 => "genp",
        23 => "error",
        26 => "pollRep",
        _ => "body of an unknown kind",
    }
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::FromDer;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/cmp")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn openssl_s_requests_read_as_what_they_ask() {
        for (file, kind, mac) in [
            ("ir-hmac-sha1.der", "ir", true),
            ("ir-hmac-sha256.der", "ir", true),
            ("p10cr-hmac-sha1.der", "p10cr", true),
            ("genm-ca-certs.der", "genm", true),
            ("kur-signed.der", "kur", false),
            ("rr-signed.der", "rr", false),
        ] {
            let request = CmpRequest::from_der(&fixture(file)).unwrap();
            assert_eq!(request.body.name(), kind, "{file}");
            assert_eq!(request.transaction_id.len(), 16, "{file}");
            assert_eq!(request.sender_nonce.len(), 16, "{file}");
            assert!(!request.implicit_confirm, "{file}");
            match (&request.protection, mac) {
                (CmpProtection::PasswordBasedMac(pbm), true) => {
                    assert_eq!(request.sender_kid.as_deref(), Some(&b"SN-0001"[..]));
                    assert!(pbm.verifies(
                        b"device-secret",
                        &request.protected_part,
                        &request.protection_bits
                    ));
                }
                (CmpProtection::Signature(alg), false) => {
                    assert_eq!(
                        alg.oid.to_string(),
                        "1.2.840.10045.4.3.2",
                        "ecdsa-with-SHA256"
                    );
                    // The kur names its certificate in extraCerts (`-extracerts`), the rr not.
                    let extra = usize::from(kind == "kur");
                    assert_eq!(request.extra_certs.len(), extra, "{file}");
                    for cert in &request.extra_certs {
                        let (rest, cert) = x509_parser::parse_x509_certificate(cert).unwrap();
                        assert!(rest.is_empty());
                        assert_eq!(cert.subject().to_string(), "CN=SN-0001");
                    }
                }
                (other, _) => panic!("{file}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_p10cr_carries_the_pkcs10_request_as_sent() {
        let request = CmpRequest::from_der(&fixture("p10cr-hmac-sha1.der")).unwrap();
        let CmpRequestBody::P10cr(csr) = request.body else {
            panic!("not a p10cr");
        };
        let parsed = x509_parser::certification_request::X509CertificationRequest::from_der(&csr);
        let (rest, parsed) = parsed.expect("a PKCS#10 request");
        assert!(rest.is_empty());
        assert!(parsed.verify_signature().is_ok());
        assert_eq!(
            parsed.certification_request_info.subject.to_string(),
            "CN=SN-0001"
        );
    }

    #[test]
    fn a_signed_request_verifies_with_its_own_certificate_and_no_other() {
        let kur = CmpRequest::from_der(&fixture("kur-signed.der")).unwrap();
        assert_eq!(kur.signed_by(&kur.extra_certs[0]), Ok(()));
        let other = rcgen::CertificateParams::new(vec!["other".to_owned()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        assert_eq!(
            kur.signed_by(other.der()),
            Err(SignatureRefusal::DoesNotVerify)
        );
        let ir = CmpRequest::from_der(&fixture("ir-hmac-sha1.der")).unwrap();
        assert_eq!(
            ir.signed_by(&kur.extra_certs[0]),
            Err(SignatureRefusal::NotSigned)
        );
    }

    /// Every single-byte change and every truncation of openssl's requests is read or
    /// refused, never a panic, down to the certificate request and its proof.
    #[test]
    fn no_changed_or_cut_request_panics() {
        for name in [
            "ir-hmac-sha1.der",
            "ir-with-validity.der",
            "p10cr-hmac-sha1.der",
            "kur-signed.der",
            "rr-signed.der",
            "genm-ca-certs.der",
        ] {
            let original = fixture(name);
            let mut variants: Vec<Vec<u8>> = (0..original.len())
                .flat_map(|at| {
                    [0x00u8, 0x01, 0x80, 0xff].into_iter().map({
                        let original = &original;
                        move |x| {
                            let mut changed = original.clone();
                            changed[at] ^= x;
                            changed
                        }
                    })
                })
                .collect();
            variants.extend((0..original.len()).map(|n| original[..n].to_vec()));
            for variant in variants {
                let Ok(request) = CmpRequest::from_der(&variant) else {
                    continue;
                };
                if let CmpRequestBody::Ir(content)
                | CmpRequestBody::Cr(content)
                | CmpRequestBody::Kur(content) = &request.body
                {
                    let _ = crate::cmp::CrmfCertificateRequest::from_cert_req_messages(content);
                }
                if let Some(cert) = request.extra_certs.first() {
                    let _ = request.signed_by(cert);
                }
            }
        }
    }

    #[test]
    fn another_version_is_refused_as_unsupported() {
        let mut request = fixture("ir-hmac-sha1.der");
        // SEQUENCE (4-byte header), header SEQUENCE (3), pvno INTEGER: its value at 9.
        assert_eq!(request[7..10], [0x02, 0x01, 0x02]);
        request[9] = 3;
        let refused = CmpRequest::from_der(&request).unwrap_err();
        assert_eq!(refused, CmpRequestError::UnsupportedVersion);
        assert_eq!(refused.failure().bit(), 22, "unsupportedVersion");
    }

    #[test]
    fn implicit_confirm_is_read_from_the_header() {
        let request = CmpRequest::from_der(&fixture("ir-implicit-confirm.der")).unwrap();
        assert!(request.implicit_confirm);
    }

    #[test]
    fn what_is_no_request_is_refused_with_its_failure_bit() {
        for garbage in [
            &b""[..],
            b"\x30\x00",
            b"not cmp at all",
            &[0x04, 0x02, 0x30, 0x00],
        ] {
            let refused = CmpRequest::from_der(garbage).unwrap_err();
            assert_eq!(refused, CmpRequestError::NotAMessage);
            assert_eq!(refused.failure(), PkiFailure::BadDataFormat);
        }
        let whole = fixture("ir-hmac-sha1.der");
        assert_eq!(
            CmpRequest::from_der(&whole[..whole.len() - 1]).unwrap_err(),
            CmpRequestError::NotAMessage
        );
        let mut trailing = whole.clone();
        trailing.push(0);
        assert_eq!(
            CmpRequest::from_der(&trailing).unwrap_err(),
            CmpRequestError::NotAMessage
        );
    }
}
