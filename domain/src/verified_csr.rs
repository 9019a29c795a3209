//! A PKCS#10 request whose signature was verified where it arrived, kept without its
//! attributes: SCEP's `PKCSReq` carries the device's key as the CSR's challenge password,
//! so the request as sent must not reach an event, the feed or NATS. What is kept is what
//! certifying it needs and what identifies it: the key (its `SubjectPublicKeyInfo`), the
//! subject's CNs, and the SHA-256 of the request as sent.
//!
//! Who makes one vouches for the request's proof of possession: `pki::scep` verifies the
//! signature before it makes one; the provisioner checks the key's policy and the subject
//! as for every request, not the signature, which it no longer has.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::csr::subject_rule;
use crate::{SerialNumber, SubjectMismatch};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifiedCsr {
    /// The key to certify: its SubjectPublicKeyInfo, DER, standard base64.
    #[serde(with = "base64_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    public_key: Vec<u8>,
    /// The subject's CNs (one: the device's serial number).
    common_names: Vec<String>,
    /// The SHA-256 of the request as the device sent it, lowercase hex.
    #[serde(with = "hex_digest")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    sha256: [u8; 32],
}

impl VerifiedCsr {
    /// A request whose signature the caller verified: its key (SPKI, DER), its subject's
    /// CNs, and the SHA-256 of its DER as sent.
    pub fn new(public_key: Vec<u8>, common_names: Vec<String>, sha256: [u8; 32]) -> Self {
        Self {
            public_key,
            common_names,
            sha256,
        }
    }

    /// As an event recorded it (the same values: nothing is checked either way).
    pub fn recorded(public_key: Vec<u8>, common_names: Vec<String>, sha256: [u8; 32]) -> Self {
        Self::new(public_key, common_names, sha256)
    }

    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    pub fn common_names(&self) -> &[String] {
        &self.common_names
    }

    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// Exactly one CN, the serial number (the rule every request meets).
    pub fn check_subject(&self, serial: &SerialNumber) -> Result<(), SubjectMismatch> {
        subject_rule(&self.common_names, serial)
    }
}

impl fmt::Debug for VerifiedCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifiedCsr(sha256 {})", hex_of(&self.sha256))
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

mod base64_bytes {
    use super::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD
            .decode(String::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}

mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex_of(digest))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<_>>()
            .ok_or_else(|| serde::de::Error::custom("not hex"))?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("not a SHA-256 digest"))
    }
}
