//! Our answer to a SCEP request (RFC 8894 §3.3.2): a `CertRep`, a CMS `SignedData` signed by
//! the registration authority's key, with the authenticated attributes every client checks
//! (`messageType` 3, `pkiStatus`, `failInfo` on failure, the request's `transactionID`, its
//! `senderNonce` as our `recipientNonce`, a fresh `senderNonce`; as PrintableStrings and
//! OCTET STRINGs) and the RA's certificate, by which clients find the signer. On success its
//! content is the certificate as certs-only PKCS#7, encrypted (AES-128-CBC, the key
//! transported with RSA) to the certificate that signed the request, named as the request
//! named it; on `PENDING` and
//! `FAILURE` the content is present and empty, which certmonger needs.
//!
//! Must not: sign with anything but the RA's key, or encrypt to anyone but the requester.

use std::sync::Arc;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use der::asn1::{AnyRef, OctetString, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pki_message::{
    ScepRequest, FAIL_INFO, MESSAGE_TYPE, PKI_STATUS, RECIPIENT_NONCE, SENDER_NONCE, TRANSACTION_ID,
};
use crate::{est_wire_format, KeyUnavailable, SigningKey};

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const AES_128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");

/// Why a request failed, as SCEP names it (RFC 8894 §3.2.1.4: only these five; clients stop
/// at others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScepFailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl ScepFailInfo {
    fn code(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }

    /// Its name, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadAlg => "badAlg",
            Self::BadMessageCheck => "badMessageCheck",
            Self::BadRequest => "badRequest",
            Self::BadTime => "badTime",
            Self::BadCertId => "badCertId",
        }
    }
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScepStatus {
    /// The certificate (DER) for the request.
    Success {
        certificate: Vec<u8>,
    },
    Pending,
    Failure(ScepFailInfo),
}

impl ScepStatus {
    fn code(&self) -> &'static str {
        match self {
            Self::Success { .. } => "0",
            Self::Failure(_) => "2",
            Self::Pending => "3",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertRepError {
    /// The certificate cannot be encrypted to the requester (its signer's key is not RSA).
    #[error("the request's signer key is not an RSA key the answer can be encrypted to")]
    RequesterKey,
    #[error(transparent)]
    KeyUnavailable(#[from] KeyUnavailable),
    #[error("the answer does not encode: {0}")]
    Encoding(String),
}

impl From<der::Error> for CertRepError {
    fn from(error: der::Error) -> Self {
        Self::Encoding(error.to_string())
    }
}

/// The registration authority that answers: its certificate and its key (RSA, in a token).
pub struct CertRep {
    certificate: Certificate,
    key: Arc<dyn SigningKey>,
}

impl CertRep {
    /// The RA of `certificate` (DER), signing with `key`.
    pub fn new(certificate: &[u8], key: Arc<dyn SigningKey>) -> Result<Self, der::Error> {
        Ok(Self {
            certificate: Certificate::from_der(certificate)?,
            key,
        })
    }

    /// The RA certificate's name and serial, as envelopes to it name it.
    pub fn recipient(&self) -> IssuerAndSerialNumber {
        IssuerAndSerialNumber {
            issuer: self.certificate.tbs_certificate.issuer.clone(),
            serial_number: self.certificate.tbs_certificate.serial_number.clone(),
        }
    }

    /// The `CertRep` answering `request` with `status`, DER.
    pub fn answer(
        &self,
        request: &ScepRequest,
        status: &ScepStatus,
    ) -> Result<Vec<u8>, CertRepError> {
        let content = match status {
            ScepStatus::Success { certificate } => encrypted_to_requester(request, certificate)?,
            ScepStatus::Pending | ScepStatus::Failure(_) => Vec::new(),
        };
        let mut sender_nonce = [0u8; 16];
        OsRng.fill_bytes(&mut sender_nonce);
        let mut attributes = vec![
            attribute(CONTENT_TYPE, Any::encode_from(&DATA)?)?,
            attribute(
                MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(Sha256::digest(&content).to_vec())?)?,
            )?,
            attribute(MESSAGE_TYPE, printable("3")?)?,
            attribute(PKI_STATUS, printable(status.code())?)?,
            attribute(TRANSACTION_ID, printable(&request.transaction_id)?)?,
            attribute(
                SENDER_NONCE,
                Any::encode_from(&OctetString::new(sender_nonce.to_vec())?)?,
            )?,
            attribute(
                RECIPIENT_NONCE,
                Any::encode_from(&OctetString::new(request.sender_nonce.clone())?)?,
            )?,
        ];
        if let ScepStatus::Failure(info) = status {
            attributes.push(attribute(FAIL_INFO, printable(info.code())?)?);
        }
        let signed_attributes = SignedAttributes::try_from(attributes)?;
        let signature = self.key.sign(&signed_attributes.to_der()?)?;
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(self.recipient()),
            digest_alg: sha256(),
            signed_attrs: Some(signed_attributes),
            // PKCS#7's way, which every SCEP client reads: the key's algorithm, the digest
            // named in `digest_alg`.
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: RSA_ENCRYPTION,
                parameters: Some(Any::encode_from(&der::asn1::Null)?),
            },
            signature: OctetString::new(signature)?,
            unsigned_attrs: None,
        };
        let signed = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256()])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: DATA,
                econtent: Some(Any::encode_from(&OctetString::new(content)?)?),
            },
            certificates: Some(CertificateSet::try_from(vec![
                CertificateChoices::Certificate(self.certificate.clone()),
            ])?),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer_info])?,
        };
        Ok(ContentInfo {
            content_type: SIGNED_DATA,
            content: Any::encode_from(&signed)?,
        }
        .to_der()?)
    }
}

fn sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: SHA256,
        parameters: None,
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, der::Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// `text` as a PrintableString, as RFC 8894 writes its string attributes; a transaction id
/// a client wrote with other characters goes back as the UTF8String it can read.
fn printable(text: &str) -> Result<Any, der::Error> {
    match PrintableStringRef::new(text) {
        Ok(printable) => Any::encode_from(&printable),
        Err(_) => Any::encode_from(&Utf8StringRef::new(text)?),
    }
}

/// `certificate` as certs-only PKCS#7, in an `EnvelopedData` for the request's signer:
/// AES-128-CBC, its key transported with RSA PKCS#1 v1.5 (the `rsa` crate's public-key
/// operation), the recipient named by the signer's `IssuerAndSerialNumber` exactly as the
/// request carried it. Legacy PKCS#7 readers (certmonger's `d2i_PKCS7`) know no other way
/// to name a recipient, and certmonger's self-signed certificate has a serial longer than
/// `cms`'s typed names take, so the envelope is assembled here from `der` types around that
/// name as sent.
fn encrypted_to_requester(
    request: &ScepRequest,
    certificate: &[u8],
) -> Result<Vec<u8>, CertRepError> {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockEncryptMut, KeyIvInit};
    use cms::enveloped_data::EncryptedContentInfo;
    use rsa::pkcs8::DecodePublicKey;

    let degenerate = est_wire_format::certs_only(&[certificate])?;
    let (_, requester) = X509Certificate::from_der(&request.signer_certificate)
        .map_err(|_| CertRepError::RequesterKey)?;
    let requester_key = rsa::RsaPublicKey::from_public_key_der(requester.public_key().raw)
        .map_err(|_| CertRepError::RequesterKey)?;
    let (mut key, mut iv) = ([0u8; 16], [0u8; 16]);
    OsRng.fill_bytes(&mut key);
    OsRng.fill_bytes(&mut iv);
    let encrypted = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv)
        .map_err(|e| CertRepError::Encoding(e.to_string()))?
        .encrypt_padded_vec_mut::<Pkcs7>(&degenerate);
    let transported = requester_key
        .encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, &key)
        .map_err(|_| CertRepError::RequesterKey)?;
    let recipient = KeyTransRecipient {
        version: 0,
        rid: AnyRef::from_der(&request.signer_id)?,
        key_encryption_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::encode_from(&der::asn1::Null)?),
        },
        encrypted_key: OctetString::new(transported)?,
    }
    .to_der()?;
    let enveloped = EnvelopedToRequester {
        version: 0,
        recipient_infos: AnyRef::new(der::Tag::Set, &recipient)?,
        encrypted_content: EncryptedContentInfo {
            content_type: DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: AES_128_CBC,
                parameters: Some(Any::encode_from(&OctetString::new(iv.to_vec())?)?),
            },
            encrypted_content: Some(OctetString::new(encrypted)?),
        },
    };
    Ok(ContentInfo {
        content_type: ENVELOPED_DATA,
        content: Any::encode_from(&enveloped)?,
    }
    .to_der()?)
}

/// `EnvelopedData` (RFC 5652 §6.1) with one recipient, no originator info, no attributes.
#[derive(der::Sequence)]
struct EnvelopedToRequester<'a> {
    version: u8,
    /// `SET OF RecipientInfo`, its one `KeyTransRecipientInfo`.
    recipient_infos: AnyRef<'a>,
    encrypted_content: cms::enveloped_data::EncryptedContentInfo,
}

/// `KeyTransRecipientInfo` (RFC 5652 §6.2.1), `rid` as the request named its signer.
#[derive(der::Sequence)]
struct KeyTransRecipient<'a> {
    version: u8,
    rid: AnyRef<'a>,
    key_encryption_algorithm: AlgorithmIdentifierOwned,
    encrypted_key: OctetString,
}
