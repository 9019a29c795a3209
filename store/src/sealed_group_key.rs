//! Group keys at rest: sealed with AES-256-GCM under the key-encryption key the api is
//! configured with (`ENROLLMENT_KEY_ENCRYPTION_KEY`), so that a copy of the database (a
//! backup, a replica, a dump) does not hold the keys that derive devices' credentials.
//!
//! Each sealing uses a fresh random 96-bit nonce (at 2^32 sealings per key-encryption key,
//! far beyond any fleet's number of groups, the collision bound of GCM stays negligible) and
//! binds the group's name as associated data, so a sealed key copied into another row does
//! not open there. AES-GCM is ring's, the implementation rustls already builds; no crypto of
//! our own.
//!
//! Must not: print a key (neither type's `Debug` shows bytes), or accept a sealed key whose
//! tag does not verify.

use std::fmt;

use domain::{EnrollmentGroupName, GroupKey, InvalidValue};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// The key-encryption key: 32 bytes, given as standard base64.
pub struct GroupKeySealer {
    key: LessSafeKey,
    random: SystemRandom,
}

/// A sealed key that does not open: the wrong key-encryption key is configured, or the row
/// was altered.
#[derive(Debug, thiserror::Error)]
#[error("the sealed key of enrollment group {0} does not open with ENROLLMENT_KEY_ENCRYPTION_KEY (another key, or an altered row)")]
pub struct UnsealError(pub String);

impl GroupKeySealer {
    pub const KEY_LEN: usize = 32;

    pub fn from_base64(raw: &str) -> Result<Self, InvalidValue> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| InvalidValue("must be base64".into()))?;
        if bytes.len() != Self::KEY_LEN {
            return Err(InvalidValue(format!(
                "must be {} bytes (base64 of 32 random bytes: `openssl rand -base64 32`)",
                Self::KEY_LEN
            )));
        }
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes a 32-byte key");
        Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, group: &EnrollmentGroupName, key: &GroupKey) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the operating system provides randomness");
        let mut sealed = nonce.to_vec();
        let mut body = key.to_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(group.as_str().as_bytes()),
                &mut body,
            )
            .expect("a 32-byte plaintext is within AES-GCM's limits");
        sealed.extend_from_slice(&body);
        sealed
    }

    pub fn open(
        &self,
        group: &EnrollmentGroupName,
        sealed: &[u8],
    ) -> Result<GroupKey, UnsealError> {
        let refused = || UnsealError(group.to_string());
        if sealed.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(group.as_str().as_bytes()), &mut body)
            .map_err(|_| refused())?;
        let bytes: [u8; GroupKey::LEN] = (&*opened).try_into().map_err(|_| refused())?;
        Ok(GroupKey::from_bytes(bytes))
    }
}

impl fmt::Debug for GroupKeySealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKeySealer(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> GroupKeySealer {
        GroupKeySealer::from_bytes(&[byte; 32])
    }

    fn name(raw: &str) -> EnrollmentGroupName {
        EnrollmentGroupName::parse(raw).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_with_its_key_in_its_row_only() {
        let key = GroupKey::from_bytes([7; 32]);
        let sealed = sealer(1).seal(&name("line-1"), &key);
        assert!(
            !sealed.windows(32).any(|w| w == [7; 32]),
            "the key is not in the clear"
        );
        assert_eq!(sealer(1).open(&name("line-1"), &sealed).unwrap(), key);
        assert!(sealer(2).open(&name("line-1"), &sealed).is_err());
        assert!(sealer(1).open(&name("line-2"), &sealed).is_err());
        let mut altered = sealed.clone();
        altered[20] ^= 1;
        assert!(sealer(1).open(&name("line-1"), &altered).is_err());
        assert!(sealer(1).open(&name("line-1"), &sealed[..5]).is_err());
    }

    #[test]
    fn each_sealing_differs() {
        let key = GroupKey::from_bytes([7; 32]);
        assert_ne!(
            sealer(1).seal(&name("line-1"), &key),
            sealer(1).seal(&name("line-1"), &key)
        );
    }

    #[test]
    fn the_key_encryption_key_is_32_bytes_of_base64() {
        assert!(GroupKeySealer::from_base64("not base64!").is_err());
        assert!(GroupKeySealer::from_base64("AAAA").is_err());
        let raw = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        assert!(GroupKeySealer::from_base64(raw).is_ok());
        assert!(!format!("{:?}", GroupKeySealer::from_base64(raw).unwrap()).contains("AQEB"));
    }
}
