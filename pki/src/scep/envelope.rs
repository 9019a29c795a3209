//! A SCEP message's `pkcsPKIEnvelope` opened (RFC 8894 §3.2.2): a CMS `EnvelopedData` whose
//! content-encryption key is encrypted to the RA's certificate (RSA PKCS#1 v1.5 key
//! transport) and whose content is encrypted with DES-CBC, 3DES-CBC or AES-CBC, as devices
//! send it, whatever `GetCACaps` said.
//!
//! The key transport is decrypted by the caller's `decrypt` (the RA key, in its token). When
//! it does not decrypt, the content is decrypted with a random key instead (RFC 3218 §2.3.2),
//! so that a wrong key and a wrong padding are the same failure, found at the same point: no
//! one learns from the answer whether their key transport was well formed.
//!
//! Devices write BER where DER would do: micromdm's client sends the encrypted content as a
//! constructed OCTET STRING in segments. `EncryptedContentInfo` is therefore read field by
//! field with `der`'s reader, the segments joined; the rest is typed by `cms`.
//!
//! Must not: decrypt RSA itself, or say why an envelope did not open.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{RecipientIdentifier, RecipientInfo, RecipientInfos};
use der::asn1::{AnyRef, OctetStringRef};
use der::oid::ObjectIdentifier;
use der::{Class, Decode, Encode, Reader, SliceReader, Tag, Tagged};
use rand_core::{OsRng, RngCore};
use spki::AlgorithmIdentifierOwned;

use crate::KeyUnavailable;

/// `id-envelopedData`.
const ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");
const DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
const AES_128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES_192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES_256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// The cipher a device encrypted its content with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// Single DES: broken, and still what some devices send (counted).
    DesCbc,
    DesEde3Cbc,
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
}

impl ContentCipher {
    fn of(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            DES_CBC => Some(Self::DesCbc),
            DES_EDE3_CBC => Some(Self::DesEde3Cbc),
            AES_128_CBC => Some(Self::Aes128Cbc),
            AES_192_CBC => Some(Self::Aes192Cbc),
            AES_256_CBC => Some(Self::Aes256Cbc),
            _ => None,
        }
    }

    /// Its name, for metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::DesCbc => "des-cbc",
            Self::DesEde3Cbc => "des-ede3-cbc",
            Self::Aes128Cbc => "aes-128-cbc",
            Self::Aes192Cbc => "aes-192-cbc",
            Self::Aes256Cbc => "aes-256-cbc",
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::DesCbc => 8,
            Self::DesEde3Cbc => 24,
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc => 24,
            Self::Aes256Cbc => 32,
        }
    }

    /// `data` decrypted with `key` and `iv`, its PKCS#7 padding removed.
    fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn cbc<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>>
        where
            cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
            C: cbc::cipher::BlockDecryptMut + cbc::cipher::BlockCipher,
        {
            cbc::Decryptor::<C>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded_vec_mut::<Pkcs7>(data)
                .ok()
        }
        match self {
            Self::DesCbc => cbc::<des::Des>(key, iv, data),
            Self::DesEde3Cbc => cbc::<des::TdesEde3>(key, iv, data),
            Self::Aes128Cbc => cbc::<aes::Aes128>(key, iv, data),
            Self::Aes192Cbc => cbc::<aes::Aes192>(key, iv, data),
            Self::Aes256Cbc => cbc::<aes::Aes256>(key, iv, data),
        }
    }
}

/// An envelope's content, and the cipher it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedEnvelope {
    pub content: Vec<u8>,
    pub cipher: ContentCipher,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the pkcsPKIEnvelope is not a DER CMS EnvelopedData")]
    NotEnvelopedData,
    #[error("the pkcsPKIEnvelope is not encrypted to this service's RA certificate with RSA")]
    NotForUs,
    #[error("the content is encrypted with a cipher this service does not read")]
    Cipher,
    /// The key transport or the content did not decrypt (which of them is not said).
    #[error("the pkcsPKIEnvelope does not decrypt")]
    Undecryptable,
    #[error(transparent)]
    KeyUnavailable(#[from] KeyUnavailable),
}

/// The content of `envelope` (DER, a `ContentInfo` of `EnvelopedData`), encrypted to the RA
/// whose certificate `ra` names; `decrypt` decrypts the key transport with the RA's key
/// (`None`: it does not decrypt).
pub fn open_envelope(
    envelope: &[u8],
    ra: &IssuerAndSerialNumber,
    decrypt: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, KeyUnavailable>,
) -> Result<OpenedEnvelope, EnvelopeError> {
    let malformed = |_| EnvelopeError::NotEnvelopedData;
    let info = ContentInfo::from_der(envelope).map_err(malformed)?;
    if info.content_type != ENVELOPED_DATA {
        return Err(EnvelopeError::NotEnvelopedData);
    }
    let enveloped = RawEnvelopedData::read(info.content.value()).map_err(malformed)?;
    let transported = enveloped
        .recipients
        .0
        .iter()
        .find_map(|recipient| match recipient {
            RecipientInfo::Ktri(ktri)
                if matches!(&ktri.rid, RecipientIdentifier::IssuerAndSerialNumber(id) if id == ra)
                    && ktri.key_enc_alg.oid == RSA_ENCRYPTION =>
            {
                Some(ktri.enc_key.as_bytes())
            }
            _ => None,
        })
        .ok_or(EnvelopeError::NotForUs)?;
    let cipher = ContentCipher::of(enveloped.algorithm.oid).ok_or(EnvelopeError::Cipher)?;
    let iv = enveloped
        .algorithm
        .parameters
        .as_ref()
        .and_then(|parameters| parameters.decode_as::<OctetStringRef<'_>>().ok())
        .map(|iv| iv.as_bytes().to_vec())
        .ok_or(EnvelopeError::Cipher)?;
    let encrypted = enveloped
        .encrypted_content
        .ok_or(EnvelopeError::Undecryptable)?;
    // A key that does not decrypt, or is not the cipher's length, is replaced by a random
    // one: the content then fails to decrypt, as any wrong key's would.
    let key = decrypt(transported)?
        .filter(|key| key.len() == cipher.key_len())
        .unwrap_or_else(|| {
            let mut random = vec![0u8; cipher.key_len()];
            OsRng.fill_bytes(&mut random);
            random
        });
    let content = cipher
        .decrypt(&key, &iv, &encrypted)
        .ok_or(EnvelopeError::Undecryptable)?;
    Ok(OpenedEnvelope { content, cipher })
}

/// What is read of an `EnvelopedData` (RFC 5652 §6.1).
struct RawEnvelopedData {
    recipients: RecipientInfos,
    algorithm: AlgorithmIdentifierOwned,
    /// The encrypted content, its BER segments joined.
    encrypted_content: Option<Vec<u8>>,
}

impl RawEnvelopedData {
    /// `EnvelopedData`'s fields (`body`: the SEQUENCE's content).
    fn read(body: &[u8]) -> der::Result<Self> {
        let mut fields = SliceReader::new(body)?;
        let _version = AnyRef::decode(&mut fields)?;
        let mut next = AnyRef::decode(&mut fields)?;
        if next.tag().is_context_specific() {
            // originatorInfo [0]: nothing this service needs.
            next = AnyRef::decode(&mut fields)?;
        }
        let recipients = RecipientInfos::from_der(&next.to_der()?)?;
        let content_info = AnyRef::decode(&mut fields)?;
        // unprotectedAttrs [1], if any, are left unread.
        let mut content = SliceReader::new(content_info.value())?;
        let _content_type = ObjectIdentifier::decode(&mut content)?;
        let algorithm = AlgorithmIdentifierOwned::decode(&mut content)?;
        let encrypted_content = if content.is_finished() {
            None
        } else {
            Some(octets_of(AnyRef::decode(&mut content)?)?)
        };
        Ok(Self {
            recipients,
            algorithm,
            encrypted_content,
        })
    }
}

/// `encryptedContent [0] IMPLICIT OCTET STRING`: primitive, or (BER) constructed of
/// OCTET STRING segments, joined.
fn octets_of(field: AnyRef<'_>) -> der::Result<Vec<u8>> {
    let tag = field.tag();
    if tag.class() != Class::ContextSpecific || tag.number().value() != 0 {
        return Err(der::ErrorKind::TagUnexpected {
            expected: None,
            actual: tag,
        }
        .into());
    }
    if !tag.is_constructed() {
        return Ok(field.value().to_vec());
    }
    let mut segments = SliceReader::new(field.value())?;
    let mut joined = Vec::with_capacity(field.value().len());
    while !segments.is_finished() {
        let segment = AnyRef::decode(&mut segments)?;
        if segment.tag() != Tag::OctetString {
            return Err(der::ErrorKind::TagUnexpected {
                expected: Some(Tag::OctetString),
                actual: segment.tag(),
            }
            .into());
        }
        joined.extend_from_slice(segment.value());
    }
    Ok(joined)
}
