//! The answers this service gives to CMP requests (RFC 4210 §5.3, RFC 9483 §4): their header
//! (the request's transaction, its nonce echoed, a fresh one of ours), their body, and the
//! message around them with its protection.
//!
//! The bodies are typed here on `der` rather than with `cmpv2` 0.2's, whose `PKIFailureInfo`
//! numbers bits wrongly and whose `ErrorMsgContent` cannot be built; the header is `cmpv2`'s.
//! A message is assembled in two steps, so that its protection (a MAC under the sender's
//! secret, or a signature by the api's CMP key) is made over exactly the bytes sent:
//! [`CmpAnswer::protected_part`], then [`CmpAnswer::into_message`].
//!
//! Must not: decide what to answer (the caller does), or hold a key.

use cmpv2::header::{PkiHeader, Pvno};
use der::asn1::{
    AnyRef, BitString, ContextSpecificRef, GeneralizedTime, Null, OctetString, Utf8StringRef,
};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Sequence, TagMode, TagNumber};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use super::failure_info::PkiFailure;
use super::request::CmpRequest;

/// `id-it-implicitConfirm`.
const IMPLICIT_CONFIRM: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.13");
/// `id-it-caCerts` (RFC 9483 §4.3.1).
const CA_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");

/// Which certificate request a certificate answers (its body's name in RFC 4210).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertAnswerKind {
    /// `ip`, to an `ir`.
    Ip,
    /// `cp`, to a `cr` or a `p10cr`.
    Cp,
    /// `kup`, to a `kur`.
    Kup,
}

impl CertAnswerKind {
    fn tag(self) -> u8 {
        match self {
            Self::Ip => 1,
            Self::Cp => 3,
            Self::Kup => 8,
        }
    }

    /// The answer a `pollReq` waits for. A poll names only the request's `certReqId`, so
    /// the kind travels in our nonces (below, [`CmpAnswer::new`]): the first byte of every
    /// `senderNonce` of a waiting answer or a `pollRep` is the kind's tag, which the poll
    /// echoes as its `recipNonce`. Nothing else is kept between the messages of a
    /// transaction, so any api instance answers any of them.
    pub fn polled_by(request: &CmpRequest) -> Option<Self> {
        match request.recip_nonce.as_deref()?.first()? {
            1 => Some(Self::Ip),
            3 => Some(Self::Cp),
            8 => Some(Self::Kup),
            _ => None,
        }
    }
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmpAnswerBody {
    /// The certificate (DER) for request `cert_req_id`; `ca_pubs` (DER) are the CA
    /// certificates the device should trust.
    Certified {
        kind: CertAnswerKind,
        cert_req_id: i64,
        certificate: Vec<u8>,
        ca_pubs: Vec<Vec<u8>>,
    },
    /// Request `cert_req_id` is being processed: poll (`pollReq`).
    Waiting {
        kind: CertAnswerKind,
        cert_req_id: i64,
    },
    /// `pollRep`: ask again after `check_after_seconds`; `kind` is the answer waited for.
    PollAgain {
        kind: CertAnswerKind,
        cert_req_id: i64,
        check_after_seconds: u32,
    },
    /// `rp`: the revocation was accepted.
    Revoked,
    /// `genp` with `id-it-caCerts`: these CA certificates (DER).
    CaCertificates(Vec<Vec<u8>>),
    /// `pkiconf`: the confirmation was received.
    Confirmed,
    /// `error`: refused, for this reason, with a text.
    Error { failure: PkiFailure, text: String },
}

/// An answer to `request`, from `sender` (the CA's or the api's CMP name).
pub struct CmpAnswer {
    header_der: Vec<u8>,
    body_der: Vec<u8>,
}

impl CmpAnswer {
    /// The answer's header and body. `protection_alg` is how the caller will protect it (the
    /// request's own password-based MAC parameters, or its signature algorithm); `sender_kid`
    /// names the key (a signer's key identifier); `implicit_confirm` says the service granted
    /// the request's waiver of `certConf`.
    pub fn new(
        request: &CmpRequest,
        sender: Name,
        protection_alg: AlgorithmIdentifierOwned,
        sender_kid: Option<Vec<u8>>,
        implicit_confirm: bool,
        body: &CmpAnswerBody,
    ) -> Result<Self, der::Error> {
        let header = header(
            Some(request),
            sender,
            Some(protection_alg),
            sender_kid,
            implicit_confirm,
            body,
        )?;
        Ok(Self {
            header_der: header.to_der()?,
            body_der: body_der(body)?,
        })
    }

    /// An `error` message without protection, `PKIMessage` DER: the answer to a message that
    /// does not read, or whose sender cannot be authenticated (RFC 9483 §3.6.4: such an
    /// error is not MAC-protected; the client's `-unprotected_errors` shows it).
    pub fn unprotected_error(
        request: Option<&CmpRequest>,
        sender: Name,
        failure: PkiFailure,
        text: &str,
    ) -> Result<Vec<u8>, der::Error> {
        let body = CmpAnswerBody::Error {
            failure,
            text: text.to_owned(),
        };
        let header = header(request, sender, None, None, false, &body)?.to_der()?;
        let body = body_der(&body)?;
        RawMessage {
            header: AnyRef::from_der(&header)?,
            body: AnyRef::from_der(&body)?,
            protection: None,
            extra_certs: None,
        }
        .to_der()
    }

    /// `ProtectedPart`'s DER: what the protection covers.
    pub fn protected_part(&self) -> Result<Vec<u8>, der::Error> {
        RawPair {
            first: AnyRef::from_der(&self.header_der)?,
            second: AnyRef::from_der(&self.body_der)?,
        }
        .to_der()
    }

    /// The whole `PKIMessage`, with `protection` (over [`Self::protected_part`]) and
    /// `extra_certs` (DER: a signer's certificate and its chain; none with a MAC).
    pub fn into_message(
        self,
        protection: &[u8],
        extra_certs: &[Vec<u8>],
    ) -> Result<Vec<u8>, der::Error> {
        let protection = BitString::from_bytes(protection)?;
        let extra: Vec<AnyRef<'_>> = extra_certs
            .iter()
            .map(|cert| AnyRef::from_der(cert))
            .collect::<Result<_, _>>()?;
        let message = RawMessage {
            header: AnyRef::from_der(&self.header_der)?,
            body: AnyRef::from_der(&self.body_der)?,
            protection: Some(protection),
            extra_certs: (!extra.is_empty()).then_some(extra),
        };
        message.to_der()
    }
}

/// The header of an answer to `request` (`None`: a message that did not read, answered to
/// nobody in particular).
fn header(
    request: Option<&CmpRequest>,
    sender: Name,
    protection_alg: Option<AlgorithmIdentifierOwned>,
    sender_kid: Option<Vec<u8>>,
    implicit_confirm: bool,
    body: &CmpAnswerBody,
) -> Result<PkiHeader<'static>, der::Error> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|_| der::ErrorKind::Failed)?;
    if let CmpAnswerBody::Waiting { kind, .. } | CmpAnswerBody::PollAgain { kind, .. } = body {
        nonce[0] = kind.tag(); // see `CertAnswerKind::polled_by`
    }
    let nobody = GeneralName::DirectoryName(Name::default());
    Ok(PkiHeader {
        pvno: Pvno::Cmp2000,
        sender: GeneralName::DirectoryName(sender),
        recipient: request.map_or(nobody, |request| request.sender.clone()),
        message_time: Some(GeneralizedTime::from_system_time(
            std::time::SystemTime::now(),
        )?),
        protection_alg,
        sender_kid: sender_kid.map(OctetString::new).transpose()?,
        recip_kid: None,
        trans_id: request
            .map(|request| OctetString::new(request.transaction_id.clone()))
            .transpose()?,
        sender_nonce: Some(OctetString::new(nonce.to_vec())?),
        recip_nonce: request
            .map(|request| OctetString::new(request.sender_nonce.clone()))
            .transpose()?,
        free_text: None,
        general_info: if implicit_confirm {
            Some(vec![cmpv2::gen::InfoTypeAndValue {
                oid: IMPLICIT_CONFIRM,
                value: Some(der::Any::encode_from(&Null)?),
            }])
        } else {
            None
        },
    })
}

#[derive(Sequence)]
struct RawPair<'a> {
    first: AnyRef<'a>,
    second: AnyRef<'a>,
}

#[derive(Sequence)]
struct RawMessage<'a> {
    header: AnyRef<'a>,
    body: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    protection: Option<BitString>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    extra_certs: Option<Vec<AnyRef<'a>>>,
}

/// `PKIStatusInfo`, with `PKIFailureInfo` as RFC 4210 numbers its bits.
#[derive(Sequence)]
struct StatusInfo<'a> {
    status: u8,
    status_string: Option<Vec<Utf8StringRef<'a>>>,
    fail_info: Option<BitString>,
}

const ACCEPTED: u8 = 0;
const REJECTION: u8 = 2;
const WAITING: u8 = 3;

impl<'a> StatusInfo<'a> {
    fn of(status: u8) -> Self {
        Self {
            status,
            status_string: None,
            fail_info: None,
        }
    }

    fn rejection(failure_bit: u8, text: &'a str) -> Result<Self, der::Error> {
        Ok(Self {
            status: REJECTION,
            status_string: Some(vec![Utf8StringRef::new(text)?]),
            fail_info: Some(failure_info(failure_bit)?),
        })
    }
}

/// A `PKIFailureInfo` with bit `bit` set, in DER (no trailing zero bits).
fn failure_info(bit: u8) -> Result<BitString, der::Error> {
    let mut bytes = vec![0u8; usize::from(bit / 8) + 1];
    bytes[usize::from(bit / 8)] = 0x80 >> (bit % 8);
    BitString::new(7 - bit % 8, bytes)
}

#[derive(Sequence)]
struct CertResponse<'a> {
    cert_req_id: i64,
    status: StatusInfo<'a>,
    certified_key_pair: Option<CertifiedKeyPair<'a>>,
}

/// `CertifiedKeyPair` with its `certOrEncCert` the certificate (`[0]`).
#[derive(Sequence)]
struct CertifiedKeyPair<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    certificate: AnyRef<'a>,
}

#[derive(Sequence)]
struct CertRepMessage<'a> {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    ca_pubs: Option<Vec<AnyRef<'a>>>,
    response: Vec<CertResponse<'a>>,
}

#[derive(Sequence)]
struct PollRep<'a> {
    cert_req_id: i64,
    check_after: u32,
    reason: Option<Vec<Utf8StringRef<'a>>>,
}

#[derive(Sequence)]
struct RevRepContent<'a> {
    status: Vec<StatusInfo<'a>>,
}

#[derive(Sequence)]
struct InfoTypeAndValue<'a> {
    info_type: ObjectIdentifier,
    value: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct ErrorMsgContent<'a> {
    status: StatusInfo<'a>,
    error_details: Option<Vec<Utf8StringRef<'a>>>,
}

/// `PKIBody`: `content` under its explicit tag `tag`.
fn tagged(tag: u8, content: &impl Encode) -> Result<Vec<u8>, der::Error> {
    let content = content.to_der()?;
    ContextSpecificRef {
        tag_number: TagNumber::new(tag),
        tag_mode: TagMode::Explicit,
        value: &AnyRef::from_der(&content)?,
    }
    .to_der()
}

fn certificates(ders: &[Vec<u8>]) -> Result<Vec<AnyRef<'_>>, der::Error> {
    ders.iter().map(|der| AnyRef::from_der(der)).collect()
}

fn body_der(body: &CmpAnswerBody) -> Result<Vec<u8>, der::Error> {
    match body {
        CmpAnswerBody::Certified {
            kind,
            cert_req_id,
            certificate,
            ca_pubs,
        } => {
            let ca_pubs = certificates(ca_pubs)?;
            tagged(
                kind.tag(),
                &CertRepMessage {
                    ca_pubs: (!ca_pubs.is_empty()).then_some(ca_pubs),
                    response: vec![CertResponse {
                        cert_req_id: *cert_req_id,
                        status: StatusInfo::of(ACCEPTED),
                        certified_key_pair: Some(CertifiedKeyPair {
                            certificate: AnyRef::from_der(certificate)?,
                        }),
                    }],
                },
            )
        }
        CmpAnswerBody::Waiting { kind, cert_req_id } => tagged(
            kind.tag(),
            &CertRepMessage {
                ca_pubs: None,
                response: vec![CertResponse {
                    cert_req_id: *cert_req_id,
                    status: StatusInfo::of(WAITING),
                    certified_key_pair: None,
                }],
            },
        ),
        CmpAnswerBody::PollAgain {
            cert_req_id,
            check_after_seconds,
            ..
        } => tagged(
            26,
            &vec![PollRep {
                cert_req_id: *cert_req_id,
                check_after: *check_after_seconds,
                reason: None,
            }],
        ),
        CmpAnswerBody::Revoked => tagged(
            12,
            &RevRepContent {
                status: vec![StatusInfo::of(ACCEPTED)],
            },
        ),
        CmpAnswerBody::CaCertificates(certs) => {
            let certs = certificates(certs)?.to_der()?;
            tagged(
                22,
                &vec![InfoTypeAndValue {
                    info_type: CA_CERTS,
                    value: Some(AnyRef::from_der(&certs)?),
                }],
            )
        }
        CmpAnswerBody::Confirmed => tagged(19, &Null),
        CmpAnswerBody::Error { failure, text } => tagged(
            23,
            &ErrorMsgContent {
                status: StatusInfo::rejection(failure.bit(), text)?,
                error_details: None,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_bit_is_encoded_as_rfc_4210_numbers_it() {
        // badAlg (0): one byte, bit 7; badRequest (2): 0x20 with 5 unused bits;
        // systemUnavail (24): four bytes, the last 0x80 with 7 unused bits.
        for (failure, bytes, unused) in [
            (PkiFailure::BadAlg, vec![0x80], 7u8),
            (PkiFailure::BadRequest, vec![0x20], 5),
            (PkiFailure::SystemUnavail, vec![0, 0, 0, 0x80], 7),
        ] {
            let bit = failure.bit();
            let encoded = failure_info(bit).unwrap();
            assert_eq!(encoded.raw_bytes(), bytes.as_slice(), "bit {bit}");
            assert_eq!(encoded.unused_bits(), unused, "bit {bit}");
        }
    }
}
