//! A SCEP request as it arrives (RFC 8894 §3.2): a CMS `SignedData` whose signer (a
//! self-signed certificate for a new device, its current certificate for a renewal) signs
//! the authenticated attributes (`messageType`, `transactionID`, `senderNonce`, the digest of
//! the content) and whose content is the `pkcsPKIEnvelope` (an `EnvelopedData` for the RA).
//! [`ScepRequest::from_der`] reads it and checks the signature; what the envelope holds is
//! `envelope.rs`'s.
//!
//! `SignedData` is read field by field with `der`'s reader, the signer's certificate with
//! x509-parser: certmonger's self-signed certificate has a 33-byte serial number (its
//! transaction id, a SHA-256 in decimal), past RFC 5280's 20 octets, which `cms`'s typed
//! certificates refuse.
//!
//! Must not: trust the signer's certificate for anything but the signature over this message
//! (who it belongs to is the caller's to judge).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedAttributes;
use der::asn1::{AnyRef, Ia5StringRef, OctetStringRef, PrintableStringRef, Utf8StringRef};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `id-signedData`.
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-messageDigest`.
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// RFC 8894 §3.2.1's attributes.
pub(super) const MESSAGE_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
pub(super) const PKI_STATUS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.3");
pub(super) const FAIL_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.4");
pub(super) const SENDER_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
pub(super) const RECIPIENT_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.6");
pub(super) const TRANSACTION_ID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// A transaction id or nonce longer than this is refused (RFC 8894 asks for 16-byte nonces
/// and a hash as the transaction id).
const MAX_ID: usize = 128;

/// What a request asks (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 17: a renewal, signed with the certificate it renews.
    RenewalReq,
    /// 19: an enrollment, with a CSR.
    PkcsReq,
    /// 20: where a pending enrollment stands (also called GetCertInitial).
    CertPoll,
}

impl MessageType {
    pub fn name(self) -> &'static str {
        match self {
            Self::RenewalReq => "RenewalReq",
            Self::PkcsReq => "PKCSReq",
            Self::CertPoll => "CertPoll",
        }
    }
}

/// The digest algorithm the request was signed with: its answer is signed with the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DigestAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    fn of(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            SHA1 => Some(Self::Sha1),
            SHA256 => Some(Self::Sha256),
            SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn with_rsa(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => SHA1_WITH_RSA,
            Self::Sha256 => SHA256_WITH_RSA,
            Self::Sha512 => SHA512_WITH_RSA,
        }
    }
}

/// A request, read and its signature checked.
#[derive(Debug, Clone)]
pub struct ScepRequest {
    pub message_type: MessageType,
    /// As the device wrote it (printable): answers repeat it.
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the message, DER.
    pub signer_certificate: Vec<u8>,
    /// The `pkcsPKIEnvelope`, DER (a `ContentInfo` of `EnvelopedData`).
    pub envelope: Vec<u8>,
    /// Whether it was signed with SHA-1 (devices in the field still do): counted.
    pub signed_with_sha1: bool,
    /// The signer's `IssuerAndSerialNumber`, DER as sent: what an answer's envelope names
    /// the requester by.
    pub(super) signer_id: Vec<u8>,
}

/// Why a message is no request this service reads; answered with SCEP's `badMessageCheck`
/// or `badRequest` where a `CertRep` can be signed, else with an HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScepMessageError {
    #[error("the message is not a DER CMS SignedData")]
    NotSignedData,
    #[error("the message has no signer, or more than one")]
    NotOneSigner,
    #[error("the signer's certificate is not in the message")]
    NoSignerCertificate,
    #[error("the message lacks its {0} attribute, or it is malformed")]
    Attribute(&'static str),
    #[error("messageType {0} is not a request this service answers")]
    UnsupportedMessageType(String),
    #[error("the digest algorithm is not SHA-1, SHA-256 or SHA-512")]
    DigestAlgorithm,
    #[error("the signature does not verify with the signer's certificate")]
    Signature,
}

impl ScepRequest {
    /// Reads `der`, a `PKIOperation` message as the device sent it.
    pub fn from_der(der: &[u8]) -> Result<Self, ScepMessageError> {
        let not_signed_data = |_| ScepMessageError::NotSignedData;
        let info = ContentInfo::from_der(der).map_err(not_signed_data)?;
        if info.content_type != SIGNED_DATA {
            return Err(ScepMessageError::NotSignedData);
        }
        let signed = RawSignedData::read(info.content.value()).map_err(not_signed_data)?;
        let [signer_info] = signed.signer_infos.as_slice() else {
            return Err(ScepMessageError::NotOneSigner);
        };
        let certificate = signed
            .certificates
            .iter()
            .find(|certificate| signer_info.names(certificate))
            .ok_or(ScepMessageError::NoSignerCertificate)?;
        let content = signed
            .content
            .ok_or(ScepMessageError::Attribute("content"))?;
        let attributes = &signer_info.signed_attributes;
        let digest = DigestAlgorithm::of(signer_info.digest_algorithm.oid)
            .ok_or(ScepMessageError::DigestAlgorithm)?;
        // The attributes sign the content through its digest, and the signature the
        // attributes, as a DER SET (RFC 5652 §5.4).
        let message_digest = octets(attributes.iter(), MESSAGE_DIGEST, "messageDigest")?;
        if message_digest != digest.digest(&content) {
            return Err(ScepMessageError::Signature);
        }
        let algorithm = match signer_info.signature_algorithm.oid {
            // PKCS#7's habit: the key's algorithm, the digest named apart.
            RSA_ENCRYPTION => digest.with_rsa(),
            other => other,
        };
        let algorithm_der = AlgorithmIdentifierOwned {
            oid: algorithm,
            parameters: signer_info.signature_algorithm.parameters.clone(),
        }
        .to_der()
        .map_err(|_| ScepMessageError::Signature)?;
        let (_, parsed) = X509Certificate::from_der(certificate)
            .map_err(|_| ScepMessageError::NoSignerCertificate)?;
        let signature = der::asn1::BitString::from_bytes(&signer_info.signature)
            .map_err(|_| ScepMessageError::Signature)?;
        crate::signature_check::verify(
            parsed.public_key().raw,
            &algorithm_der,
            &signature,
            &signer_info.signed_part,
        )
        .map_err(|_| ScepMessageError::Signature)?;

        let message_type = match printable(attributes.iter(), MESSAGE_TYPE, "messageType")?.as_str()
        {
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            other => {
                return Err(ScepMessageError::UnsupportedMessageType(
                    other.chars().take(8).collect(),
                ))
            }
        };
        let transaction_id = printable(attributes.iter(), TRANSACTION_ID, "transactionID")?;
        let sender_nonce = octets(attributes.iter(), SENDER_NONCE, "senderNonce")?;
        if transaction_id.is_empty()
            || transaction_id.len() > MAX_ID
            || sender_nonce.is_empty()
            || sender_nonce.len() > MAX_ID
        {
            return Err(ScepMessageError::Attribute("transactionID or senderNonce"));
        }
        Ok(Self {
            message_type,
            transaction_id,
            sender_nonce,
            signer_certificate: certificate.clone(),
            envelope: content,
            signed_with_sha1: digest == DigestAlgorithm::Sha1,
            signer_id: signer_info
                .sid
                .clone()
                .ok_or(ScepMessageError::NoSignerCertificate)?,
        })
    }
}

impl ScepRequest {
    /// The signer's key, its SubjectPublicKeyInfo (DER).
    pub fn signer_public_key(&self) -> Option<Vec<u8>> {
        X509Certificate::from_der(&self.signer_certificate)
            .ok()
            .map(|(_, certificate)| certificate.public_key().raw.to_vec())
    }

    /// Whether the signer's certificate is within its validity now (a device certificate
    /// that authenticates a renewal must be).
    pub fn signer_valid_now(&self) -> bool {
        X509Certificate::from_der(&self.signer_certificate)
            .is_ok_and(|(_, certificate)| certificate.validity().is_valid())
    }
}

/// `CertPoll`'s content (RFC 8894 §3.3.3, `IssuerAndSubject`): the CN of the subject it
/// asks about.
pub fn polled_common_name(content: &[u8]) -> Option<String> {
    let mut fields = SliceReader::new(AnyRef::from_der(content).ok()?.value()).ok()?;
    let _issuer = AnyRef::decode(&mut fields).ok()?;
    let subject = AnyRef::decode(&mut fields).ok()?.to_der().ok()?;
    let (_, subject) = x509_parser::x509::X509Name::from_der(&subject).ok()?;
    let mut names = subject.iter_common_name();
    let name = names.next()?.as_str().ok()?.to_owned();
    names.next().is_none().then_some(name)
}

/// What is read of a `SignedData` (RFC 5652 §5.1).
struct RawSignedData {
    /// The encapsulated content's octets.
    content: Option<Vec<u8>>,
    /// Each certificate, DER.
    certificates: Vec<Vec<u8>>,
    signer_infos: Vec<RawSignerInfo>,
}

/// What is read of a `SignerInfo` (RFC 5652 §5.3).
struct RawSignerInfo {
    /// `sid`, when it is `issuerAndSerialNumber`: the issuer's Name (DER) and the serial's
    /// content octets.
    issuer_and_serial: Option<(Vec<u8>, Vec<u8>)>,
    /// That `sid`, DER.
    sid: Option<Vec<u8>>,
    digest_algorithm: AlgorithmIdentifierOwned,
    signed_attributes: SignedAttributes,
    /// What the signature covers: the attributes as a DER SET.
    signed_part: Vec<u8>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: Vec<u8>,
}

impl RawSignedData {
    fn read(body: &[u8]) -> der::Result<Self> {
        let mut fields = SliceReader::new(body)?;
        let _version = AnyRef::decode(&mut fields)?;
        let _digest_algorithms = AnyRef::decode(&mut fields)?;
        let encapsulated = AnyRef::decode(&mut fields)?;
        let mut encapsulated = SliceReader::new(encapsulated.value())?;
        let _content_type = ObjectIdentifier::decode(&mut encapsulated)?;
        let content = if encapsulated.is_finished() {
            None
        } else {
            // eContent [0] EXPLICIT OCTET STRING.
            let explicit = AnyRef::decode(&mut encapsulated)?;
            Some(
                OctetStringRef::from_der(explicit.value())?
                    .as_bytes()
                    .to_vec(),
            )
        };
        let mut certificates = Vec::new();
        let mut next = AnyRef::decode(&mut fields)?;
        loop {
            match (
                next.tag().is_context_specific(),
                next.tag().number().value(),
            ) {
                // certificates [0] IMPLICIT SET OF: the certificates' DER, one after another.
                (true, 0) => {
                    let mut each = SliceReader::new(next.value())?;
                    while !each.is_finished() {
                        let certificate = AnyRef::decode(&mut each)?;
                        if certificate.tag() == Tag::Sequence {
                            certificates.push(certificate.to_der()?);
                        }
                    }
                }
                // crls [1]: not needed.
                (true, _) => {}
                (false, _) => break,
            }
            next = AnyRef::decode(&mut fields)?;
        }
        let mut signers = SliceReader::new(next.value())?;
        let mut signer_infos = Vec::new();
        while !signers.is_finished() {
            signer_infos.push(RawSignerInfo::read(AnyRef::decode(&mut signers)?.value())?);
        }
        Ok(Self {
            content,
            certificates,
            signer_infos,
        })
    }
}

impl RawSignerInfo {
    fn read(body: &[u8]) -> der::Result<Self> {
        let mut fields = SliceReader::new(body)?;
        let _version = AnyRef::decode(&mut fields)?;
        let sid = AnyRef::decode(&mut fields)?;
        let (issuer_and_serial, sid) = if sid.tag() == Tag::Sequence {
            let mut parts = SliceReader::new(sid.value())?;
            let issuer = AnyRef::decode(&mut parts)?.to_der()?;
            let serial = AnyRef::decode(&mut parts)?;
            (Some((issuer, serial.value().to_vec())), Some(sid.to_der()?))
        } else {
            (None, None)
        };
        let digest_algorithm = AlgorithmIdentifierOwned::decode(&mut fields)?;
        // signedAttrs [0] IMPLICIT SET OF Attribute: signed as a SET.
        let attributes = AnyRef::decode(&mut fields)?;
        if !attributes.tag().is_context_specific() || attributes.tag().number().value() != 0 {
            return Err(der::ErrorKind::TagUnexpected {
                expected: None,
                actual: attributes.tag(),
            }
            .into());
        }
        let signed_part = AnyRef::new(Tag::Set, attributes.value())?.to_der()?;
        let signed_attributes = SignedAttributes::from_der(&signed_part)?;
        let signature_algorithm = AlgorithmIdentifierOwned::decode(&mut fields)?;
        let signature = OctetStringRef::decode(&mut fields)?.as_bytes().to_vec();
        Ok(Self {
            issuer_and_serial,
            sid,
            digest_algorithm,
            signed_attributes,
            signed_part,
            signature_algorithm,
            signature,
        })
    }

    /// Whether `certificate` (DER) is the one this signer names.
    fn names(&self, certificate: &[u8]) -> bool {
        let Some((issuer, serial)) = &self.issuer_and_serial else {
            return false;
        };
        X509Certificate::from_der(certificate).is_ok_and(|(_, parsed)| {
            parsed.issuer().as_raw() == issuer.as_slice()
                && parsed.raw_serial() == serial.as_slice()
        })
    }
}

/// The certificate that signed `request`, PEM (for a device's tools, and tests).
pub fn signer_certificate_pem(request: &ScepRequest) -> String {
    ::pem::encode(&::pem::Pem::new(
        "CERTIFICATE",
        request.signer_certificate.clone(),
    ))
}

/// The one value of the attribute `oid`, as its DER.
fn value<'a>(
    mut attributes: impl Iterator<Item = &'a Attribute>,
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<&'a der::Any, ScepMessageError> {
    let attribute = attributes
        .find(|attribute| attribute.oid == oid)
        .ok_or(ScepMessageError::Attribute(name))?;
    match attribute.values.as_slice() {
        [value] => Ok(value),
        _ => Err(ScepMessageError::Attribute(name)),
    }
}

/// An OCTET STRING attribute's bytes.
fn octets<'a>(
    attributes: impl Iterator<Item = &'a Attribute>,
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<Vec<u8>, ScepMessageError> {
    value(attributes, oid, name)?
        .decode_as::<OctetStringRef<'_>>()
        .map(|octets| octets.as_bytes().to_vec())
        .map_err(|_| ScepMessageError::Attribute(name))
}

/// A string attribute's text: PrintableString as RFC 8894 says, or, as some clients write
/// it, UTF8String or IA5String.
fn printable<'a>(
    attributes: impl Iterator<Item = &'a Attribute>,
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<String, ScepMessageError> {
    let value = value(attributes, oid, name)?;
    value
        .decode_as::<PrintableStringRef<'_>>()
        .map(|s| s.as_str().to_owned())
        .or_else(|_| {
            value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
        })
        .or_else(|_| {
            value
                .decode_as::<Ia5StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
        })
        .map_err(|_| ScepMessageError::Attribute(name))
}
