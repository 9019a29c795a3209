//! A certificate's serial number as the read models key it: the lowercase hex of the
//! serial's bytes as the certificate carries them (the DER INTEGER's content octets), the
//! form `IssuedCertificate::serial` has.

use domain::InvalidValue;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertificateSerialHex(String);

impl CertificateSerialHex {
    /// The serial whose INTEGER content octets are `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(bytes))
    }

    /// A serial as [`CertificateSerialHex::as_str`] wrote it: pairs of lowercase hex digits.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = !raw.is_empty()
            && raw.len().is_multiple_of(2)
            && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(
                "a certificate serial is pairs of lowercase hexadecimal digits".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CertificateSerialHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_lowercase_hex_leading_zeros_kept() {
        assert_eq!(
            CertificateSerialHex::from_bytes(&[0x00, 0x8f, 0x0a]).as_str(),
            "008f0a"
        );
        let serial = CertificateSerialHex::from_bytes(&[0x7f, 0x01]);
        assert_eq!(
            CertificateSerialHex::parse(serial.as_str()).unwrap(),
            serial
        );
        for raw in ["", "0", "0A", "xy", "01 "] {
            assert!(CertificateSerialHex::parse(raw).is_err(), "{raw}");
        }
    }
}
