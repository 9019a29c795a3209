//! A CA's identifier in URLs: the first 8 bytes of SHA-256 of its public key
//! (SubjectPublicKeyInfo, DER), in lowercase hex. Derived from the key, not the certificate,
//! so re-issuing the CA certificate for the same key keeps every URL valid.

use sha2::{Digest, Sha256};

use domain::InvalidValue;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuingCaId(String);

impl IssuingCaId {
    const HEX_LEN: usize = 16;

    pub fn of_public_key(subject_public_key_info_der: &[u8]) -> Self {
        let digest = Sha256::digest(subject_public_key_info_der);
        Self(hex::encode(&digest[..Self::HEX_LEN / 2]))
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
