//! An enrollment group's credential, by the well-known symmetric-key scheme (the one Azure
//! IoT DPS's "symmetric key enrollment groups" use): the group has a random key; a device's
//! key is `base64(HMAC-SHA256(group key, serial number))`, so a factory can burn each device's
//! key without the service storing any of them, and one device's key says nothing of
//! another's. What a device presents (`DeviceCredential`) is its serial number, optionally
//! the name of its group (`<serial>@<group>`: serial numbers and group names never hold an
//! `@`), and its key, parsed once into its 32 bytes (`DeviceKey`), refusing anything longer
//! before decoding it.
//!
//! Must not: reveal a key through `Debug` or `Display` (neither prints it), or compare keys in
//! time that depends on their bytes.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{EnrollmentGroupName, InvalidValue, SerialNumber};

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
        self.derive(serial).to_base64()
    }

    /// The key of the device with `serial`: for protocols in which both sides use it as a
    /// shared secret (CMP's password-based MAC protects requests and answers).
    pub fn derive(&self, serial: &SerialNumber) -> DeviceKey {
        DeviceKey(self.mac(serial).finalize().into_bytes().into())
    }

    /// Whether `presented` is the key of the device with `serial`; in constant time.
    pub fn verifies(&self, serial: &SerialNumber, presented: &DeviceKey) -> bool {
        self.mac(serial).verify_slice(&presented.0).is_ok()
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(<redacted>)")
    }
}

/// A device's key as it presents it: the 32 bytes of an HMAC-SHA256, written as standard
/// base64 (44 characters).
pub struct DeviceKey([u8; DeviceKey::LEN]);

impl DeviceKey {
    pub const LEN: usize = 32;
    /// The base64 of [`DeviceKey::LEN`] bytes, with its padding.
    pub const BASE64_LEN: usize = Self::LEN.div_ceil(3) * 4;

    /// The key written as base64; anything longer than a key's base64 is refused before it
    /// is decoded, so a long password costs nothing.
    pub fn from_base64(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue(format!("a device key is the base64 of {} bytes", Self::LEN));
        if raw.len() != Self::BASE64_LEN {
            return Err(invalid());
        }
        let mut bytes = [0u8; Self::LEN];
        match STANDARD.decode_slice(raw, &mut bytes) {
            Ok(Self::LEN) => Ok(Self(bytes)),
            _ => Err(invalid()),
        }
    }

    /// The key as the factory burns it and a device presents it: standard base64. (A
    /// protocol's shared secret is this text: `openssl cmp -secret pass:<it>`.)
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}

/// What a device presents to enroll: its serial number, the group it names (if any) and its
/// key (HTTP Basic's user, `<serial>` or `<serial>@<group>`, and password).
#[derive(Debug)]
pub struct DeviceCredential {
    pub serial: SerialNumber,
    pub group: Option<EnrollmentGroupName>,
    pub key: DeviceKey,
}

/// A label and the group a credential names are two different groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMismatch;

impl DeviceCredential {
    /// The longest user name: a serial number, `@` and a group's name.
    pub const MAX_USER_LEN: usize = SerialNumber::MAX_LEN + 1 + EnrollmentGroupName::MAX_LEN;

    /// `user` is the serial number, or `<serial>@<group>`; `password` the device's key.
    pub fn parse(user: &str, password: &str) -> Result<Self, InvalidValue> {
        let (serial, group) = match user.split_once('@') {
            Some((serial, group)) => (serial, Some(EnrollmentGroupName::parse(group)?)),
            None => (user, None),
        };
        Ok(Self {
            serial: SerialNumber::parse(serial)?,
            group,
            key: DeviceKey::from_base64(password)?,
        })
    }

    /// The group to check the credential against: the label (the URL's), the group the
    /// credential names, or none (then the group is the one whose key derives it); a label
    /// and another group named is a mismatch.
    pub fn group_named<'a>(
        &'a self,
        label: Option<&'a EnrollmentGroupName>,
    ) -> Result<Option<&'a EnrollmentGroupName>, GroupMismatch> {
        match (label, self.group.as_ref()) {
            (Some(label), Some(named)) if label != named => Err(GroupMismatch),
            (label, named) => Ok(label.or(named)),
        }
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
        let device_key = DeviceKey::from_base64(&key().device_key(&serial)).unwrap();
        assert!(key().verifies(&serial, &device_key));
        assert!(!key().verifies(&other, &device_key), "another device's key");
        let another_group = GroupKey::from_bytes([7; GroupKey::LEN]);
        assert!(!another_group.verifies(&serial, &device_key));
    }

    #[test]
    fn a_device_key_is_exactly_the_base64_of_32_bytes() {
        let written = key().device_key(&SerialNumber::parse("SN-1").unwrap());
        assert_eq!(written.len(), DeviceKey::BASE64_LEN);
        assert!(DeviceKey::from_base64(&written).is_ok());
        for wrong in [
            String::new(),
            "not base64 at all, but forty-four chars long".to_owned(),
            written[..43].to_owned(),
            format!("{written}="),
            format!(" {}", &written[1..]),
            // 33 bytes, 32 bytes unpadded, 31 bytes
            STANDARD.encode([1u8; 33]),
            STANDARD.encode([1u8; 32]).trim_end_matches('=').to_owned(),
            STANDARD.encode([1u8; 31]),
            "A".repeat(60_000),
        ] {
            assert!(DeviceKey::from_base64(&wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn the_user_is_the_serial_optionally_at_its_group() {
        let password = key().device_key(&SerialNumber::parse("x").unwrap());
        let plain = DeviceCredential::parse("SN:12:34", &password).unwrap();
        assert_eq!(plain.serial.as_str(), "SN:12:34");
        assert_eq!(plain.group, None);
        let named = DeviceCredential::parse("SN-1@line-7", &password).unwrap();
        assert_eq!(named.serial.as_str(), "SN-1");
        assert_eq!(named.group.as_ref().unwrap().as_str(), "line-7");
        let longest = format!("{}@{}", "S".repeat(64), "g".repeat(63));
        assert_eq!(longest.len(), DeviceCredential::MAX_USER_LEN);
        assert!(DeviceCredential::parse(&longest, &password).is_ok());
        for user in [
            "",
            "@line-7",
            "SN-1@",
            "SN-1@Line_7",
            "SN-1@line-7@line-7",
            "SN 1",
            "SN-1@simpleenroll",
        ] {
            assert!(
                DeviceCredential::parse(user, &password).is_err(),
                "{user:?}"
            );
        }
        assert!(DeviceCredential::parse("SN-1", "a2V5").is_err());
    }

    #[test]
    fn a_label_and_another_named_group_do_not_match() {
        let password = key().device_key(&SerialNumber::parse("x").unwrap());
        let line = |name: &str| EnrollmentGroupName::parse(name).unwrap();
        let plain = DeviceCredential::parse("SN-1", &password).unwrap();
        let named = DeviceCredential::parse("SN-1@line-7", &password).unwrap();
        assert_eq!(plain.group_named(None), Ok(None));
        assert_eq!(
            plain.group_named(Some(&line("line-8"))),
            Ok(Some(&line("line-8")))
        );
        assert_eq!(named.group_named(None), Ok(Some(&line("line-7"))));
        assert_eq!(
            named.group_named(Some(&line("line-7"))),
            Ok(Some(&line("line-7")))
        );
        assert_eq!(named.group_named(Some(&line("line-8"))), Err(GroupMismatch));
    }

    #[test]
    fn a_credential_never_prints_its_key() {
        let password = key().device_key(&SerialNumber::parse("SN-1").unwrap());
        let printed = format!(
            "{:?}",
            DeviceCredential::parse("SN-1@line-7", &password).unwrap()
        );
        assert!(!printed.contains(&password), "{printed}");
        assert!(printed.contains("DeviceKey(<redacted>)"), "{printed}");
    }

    #[test]
    fn a_group_key_must_be_32_bytes_of_base64_and_never_prints() {
        assert!(GroupKey::from_base64("c2hvcnQ=").is_err());
        assert!(GroupKey::from_base64("***").is_err());
        assert_eq!(format!("{:?}", key()), "GroupKey(<redacted>)");
    }
}
