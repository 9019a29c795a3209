//! An enrollment group's credential, by the well-known symmetric-key scheme (the one Azure
//! IoT DPS's "symmetric key enrollment groups" use): the group has a random key; a device's
//! key is `base64(HMAC-SHA256(group key, serial number))`, so a factory can burn each device's
//! key without the service storing any of them, and one device's key says nothing of
//! another's.
//!
//! Must not: reveal a key through `Debug` or `Display` (neither prints it), or compare keys in
//! time that depends on their bytes.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{InvalidValue, SerialNumber};

/// A group's key: 32 bytes (made from the OS's randomness by whoever creates the group; the
/// domain has none), written as standard base64.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupKey([u8; GroupKey::LEN]);

impl GroupKey {
    pub const LEN: usize = 32;

    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// A key written as base64 (as [`GroupKey::to_base64`] writes it).
    pub fn from_base64(raw: &str) -> Result<Self, InvalidValue> {
        let bytes = STANDARD
            .decode(raw.trim())
            .map_err(|_| InvalidValue("a group key must be base64".into()))?;
        let bytes: [u8; Self::LEN] = bytes
            .try_into()
            .map_err(|_| InvalidValue(format!("a group key must be {} bytes", Self::LEN)))?;
        Ok(Self(bytes))
    }

    /// The key's bytes: to seal it at rest.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        self.0
    }

    /// The key as base64: to show once, when the group is created.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn mac(&self, serial: &SerialNumber) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(serial.as_str().as_bytes());
        mac
    }

    /// The key of the device with `serial`, as the factory burns it (base64).
    pub fn device_key(&self, serial: &SerialNumber) -> String {
        STANDARD.encode(self.mac(serial).finalize().into_bytes())
    }

    /// Whether `presented` (base64) is the key of the device with `serial`; in constant time.
    pub fn verifies(&self, serial: &SerialNumber, presented: &str) -> bool {
        let Ok(presented) = STANDARD.decode(presented.trim()) else {
            return false;
        };
        self.mac(serial).verify_slice(&presented).is_ok()
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GroupKey {
        let mut bytes = [0u8; GroupKey::LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        GroupKey::from_bytes(bytes)
    }

    #[test]
    fn a_device_key_is_the_hmac_sha256_of_the_serial_as_openssl_computes_it() {
        // `echo -n SN-000123 | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102…1f -binary | base64`
        let serial = SerialNumber::parse("SN-000123").unwrap();
        assert_eq!(
            key().device_key(&serial),
            "zG7O8zL2T/j1//39gM6WPiEGpEP9QcjglQxmRcWcS6o="
        );
        assert_eq!(
            key().to_base64(),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        );
        assert_eq!(GroupKey::from_base64(&key().to_base64()).unwrap(), key());
    }

    #[test]
    fn only_the_devices_own_key_verifies() {
        let serial = SerialNumber::parse("SN-000123").unwrap();
        let other = SerialNumber::parse("SN-000124").unwrap();
        let device_key = key().device_key(&serial);
        assert!(key().verifies(&serial, &device_key));
        assert!(!key().verifies(&other, &device_key), "another device's key");
        assert!(!key().verifies(&serial, "not base64!"));
        assert!(!key().verifies(&serial, &device_key[..20]));
        let another_group = GroupKey::from_bytes([7; GroupKey::LEN]);
        assert!(!another_group.verifies(&serial, &device_key));
    }

    #[test]
    fn a_group_key_must_be_32_bytes_of_base64_and_never_prints() {
        assert!(GroupKey::from_base64("c2hvcnQ=").is_err());
        assert!(GroupKey::from_base64("***").is_err());
        assert_eq!(format!("{:?}", key()), "GroupKey(<redacted>)");
    }
}
