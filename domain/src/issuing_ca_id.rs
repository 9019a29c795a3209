//! A CA's identifier: the first 8 bytes of SHA-256 of its public key (SubjectPublicKeyInfo,
//! DER), in lowercase hex. Derived from the key, not the certificate, so re-issuing the CA
//! certificate for the same key keeps every URL valid. Relying parties see it in the CRL and
//! OCSP URLs; a device's certificate records the id of the CA that signed it, which is how
//! the device tells its own certificate from another CA's with the same serial.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::InvalidValue;

/// A CA's identifier: 16 lowercase hexadecimal digits, the first 8 bytes of SHA-256 of its
/// public key; it names the CA in its CRL and OCSP URLs. (Read back from events as the string
/// it was, never re-validated.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct IssuingCaId(String);

impl IssuingCaId {
    const HEX_LEN: usize = 16;

    pub fn of_public_key(subject_public_key_info_der: &[u8]) -> Self {
        let digest = Sha256::digest(subject_public_key_info_der);
        Self(
            digest[..Self::HEX_LEN / 2]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        )
    }

    /// A path segment as [`IssuingCaId::as_str`] wrote it.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = raw.len() == Self::HEX_LEN
            && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "a CA identifier is {} lowercase hexadecimal digits",
                Self::HEX_LEN
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A CA id as an event recorded it, not checked against today's rule (`parse`): it met
    /// the rule of its day, and a recorded fact is read as it was, never re-judged. For the
    /// event store's schema, which reads stored events; input goes through [`Self::parse`].
    pub fn recorded(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Display for IssuingCaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_derived_from_the_key_and_parses_back() {
        let id = IssuingCaId::of_public_key(b"some key");
        assert_eq!(id.as_str().len(), 16);
        assert_eq!(IssuingCaId::parse(id.as_str()).unwrap(), id);
        assert_ne!(IssuingCaId::of_public_key(b"another key"), id);
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdefa",
            "../../etc/passwd",
        ] {
            assert!(IssuingCaId::parse(raw).is_err(), "{raw}");
        }
    }
}
