//! A password-based MAC (RFC 4210 §5.1.3.1, `id-PasswordBasedMac`): how a device that holds
//! only a shared secret protects its CMP messages, and how our answers to it are protected.
//! The key is the one-way function applied `iterationCount` times to `secret ‖ salt`; the MAC
//! is HMAC over the DER of `ProtectedPart` (the message's header and body, as sent).
//!
//! Accepted: SHA-256 as the one-way function (OpenSSL's and RFC 9481's choice) and HMAC-SHA1
//! (OpenSSL's default MAC) or HMAC-SHA256; an iteration count of 100 to 10,000 (OpenSSL
//! sends 500; it would accept up to 100,000), so that a request costs at most that many
//! hashes, about 3 ms, before its MAC is known to be wrong: the MAC is checked before the
//! sender is known to hold the secret; a salt of at most 64 bytes.

use cmpv2::parameter::PbmParameter;
use der::asn1::AnyRef;
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Reader, Sequence, SliceReader};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;

/// `id-PasswordBasedMac`.
pub const PASSWORD_BASED_MAC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113533.7.66.13");
const SHA_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `hmac-sha1` (RFC 2104's, as OpenSSL names it by default) and PKCS#5's `hmacWithSHA1`.
const HMAC_SHA1: [ObjectIdentifier; 2] = [
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.8.1.2"),
    ObjectIdentifier::new_unwrap("1.2.840.113549.2.7"),
];
/// PKCS#5's `hmacWithSHA256`.
const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");

const ITERATIONS: std::ops::RangeInclusive<u64> = 100..=10_000;
const MAX_SALT: usize = 64;

/// Why a message's protection is not a password-based MAC this service checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbmRefusal {
    #[error("the protection is not a password-based MAC")]
    NotPasswordBased,
    #[error("the password-based MAC's parameters do not parse")]
    Malformed,
    #[error("the one-way function is not SHA-256")]
    OneWayFunction,
    #[error("the MAC is neither HMAC-SHA1 nor HMAC-SHA256")]
    MacAlgorithm,
    #[error("the iteration count is outside 100 to 10,000")]
    IterationCount,
    #[error("the salt is longer than 64 bytes")]
    Salt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MacAlgorithm {
    HmacSha1,
    HmacSha256,
}

/// A password-based MAC's parameters, as a message's `protectionAlg` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordBasedMac {
    /// `protectionAlg` as the sender wrote it: an answer is protected with the same.
    algorithm: AlgorithmIdentifierOwned,
    salt: Vec<u8>,
    iterations: u64,
    mac: MacAlgorithm,
}

impl PasswordBasedMac {
    /// The parameters of `protection_alg` (a message header's `protectionAlg`), if it is a
    /// password-based MAC within the bounds above.
    pub fn of(protection_alg: &AlgorithmIdentifierOwned) -> Result<Self, PbmRefusal> {
        if protection_alg.oid != PASSWORD_BASED_MAC {
            return Err(PbmRefusal::NotPasswordBased);
        }
        let parameters = protection_alg
            .parameters
            .as_ref()
            .ok_or(PbmRefusal::Malformed)?
            .decode_as::<PbmParameter>()
            .map_err(|_| PbmRefusal::Malformed)?;
        if parameters.owf.oid != SHA_256 {
            return Err(PbmRefusal::OneWayFunction);
        }
        let mac = match parameters.mac.oid {
            oid if HMAC_SHA1.contains(&oid) => MacAlgorithm::HmacSha1,
            oid if oid == HMAC_SHA256 => MacAlgorithm::HmacSha256,
            _ => return Err(PbmRefusal::MacAlgorithm),
        };
        if !ITERATIONS.contains(&parameters.iteration_count) {
            return Err(PbmRefusal::IterationCount);
        }
        let salt = parameters.salt.as_bytes();
        if salt.len() > MAX_SALT {
            return Err(PbmRefusal::Salt);
        }
        Ok(Self {
            algorithm: protection_alg.clone(),
            salt: salt.to_vec(),
            iterations: parameters.iteration_count,
            mac,
        })
    }

    /// The `protectionAlg` these parameters came from.
    pub fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    /// The MAC of `protected_part` (see [`protected_part`]) under `secret`.
    pub fn protect(&self, secret: &[u8], protected_part: &[u8]) -> Vec<u8> {
        match self.mac {
            MacAlgorithm::HmacSha1 => self
                .keyed::<Hmac<Sha1>>(secret, protected_part)
                .finalize()
                .into_bytes()
                .to_vec(),
            MacAlgorithm::HmacSha256 => self
                .keyed::<Hmac<Sha256>>(secret, protected_part)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `protection` is the MAC of `protected_part` under `secret`; in constant time.
    pub fn verifies(&self, secret: &[u8], protected_part: &[u8], protection: &[u8]) -> bool {
        match self.mac {
            MacAlgorithm::HmacSha1 => self
                .keyed::<Hmac<Sha1>>(secret, protected_part)
                .verify_slice(protection)
                .is_ok(),
            MacAlgorithm::HmacSha256 => self
                .keyed::<Hmac<Sha256>>(secret, protected_part)
                .verify_slice(protection)
                .is_ok(),
        }
    }

    /// The MAC, keyed with the base key and fed `data`.
    fn keyed<M: Mac + hmac::digest::KeyInit>(&self, secret: &[u8], data: &[u8]) -> M {
        let mut key = Sha256::new()
            .chain_update(secret)
            .chain_update(&self.salt)
            .finalize();
        for _ in 1..self.iterations {
            key = Sha256::digest(key);
        }
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(&key)
            .expect("HMAC takes a key of any length");
        mac.update(data);
        mac
    }
}

/// `ProtectedPart ::= SEQUENCE { header, body }`, with the header and body exactly as the
/// message `pki_message` (DER) carries them: what its protection covers. Never re-encoded
/// from decoded values, so that a sender's encoding choices cannot break the check.
pub fn protected_part(pki_message: &[u8]) -> Result<Vec<u8>, der::Error> {
    #[derive(Sequence)]
    struct RawProtectedPart<'a> {
        header: AnyRef<'a>,
        body: AnyRef<'a>,
    }
    let message = AnyRef::from_der(pki_message)?;
    let mut fields = SliceReader::new(message.value())?;
    let header = AnyRef::decode(&mut fields)?;
    let body = AnyRef::decode(&mut fields)?;
    // The protection and the extra certificates follow; they are not covered.
    let _ = fields.remaining_len();
    RawProtectedPart { header, body }.to_der()
}

#[cfg(test)]
mod tests {
    use cmpv2::message::PkiMessage;

    use super::*;

    /// Requests `openssl cmp` (3.0) wrote with `-reqout`, protected with `-ref SN-0001
    /// -secret pass:device-secret`: an `ir` with its default MAC (HMAC-SHA1), one with
    /// `-mac hmacWithSHA256`, and a `p10cr`.
    const IR_HMAC_SHA1: &[u8] = include_bytes!("../../tests/fixtures/cmp/ir-hmac-sha1.der");
    const IR_HMAC_SHA256: &[u8] = include_bytes!("../../tests/fixtures/cmp/ir-hmac-sha256.der");
    const P10CR: &[u8] = include_bytes!("../../tests/fixtures/cmp/p10cr-hmac-sha1.der");
    const SECRET: &[u8] = b"device-secret";

    fn checked(request: &[u8], secret: &[u8]) -> Result<bool, PbmRefusal> {
        let message = PkiMessage::from_der(request).expect("OpenSSL's request decodes");
        let pbm = PasswordBasedMac::of(message.header.protection_alg.as_ref().unwrap())?;
        let protection = message.protection.expect("protected");
        Ok(pbm.verifies(
            secret,
            &protected_part(request).unwrap(),
            protection.raw_bytes(),
        ))
    }

    #[test]
    fn openssl_s_requests_verify_with_the_shared_secret_and_with_no_other() {
        for request in [IR_HMAC_SHA1, IR_HMAC_SHA256, P10CR] {
            assert_eq!(checked(request, SECRET), Ok(true));
            assert_eq!(checked(request, b"device-secreT"), Ok(false));
            assert_eq!(checked(request, b""), Ok(false));
        }
    }

    #[test]
    fn a_changed_body_or_header_no_longer_verifies() {
        for position in [40, 200, IR_HMAC_SHA1.len() - 60] {
            let mut tampered = IR_HMAC_SHA1.to_vec();
            tampered[position] ^= 0x01;
            let Ok(message) = PkiMessage::from_der(&tampered) else {
                continue; // no longer a message at all: refused before any MAC
            };
            let Ok(pbm) = PasswordBasedMac::of(message.header.protection_alg.as_ref().unwrap())
            else {
                continue;
            };
            let protection = message.protection.unwrap();
            assert!(!pbm.verifies(
                SECRET,
                &protected_part(&tampered).unwrap(),
                protection.raw_bytes()
            ));
        }
    }

    #[test]
    fn an_answer_protected_here_verifies_as_the_device_checks_it() {
        let message = PkiMessage::from_der(IR_HMAC_SHA256).unwrap();
        let pbm = PasswordBasedMac::of(message.header.protection_alg.as_ref().unwrap()).unwrap();
        let part = protected_part(IR_HMAC_SHA256).unwrap();
        let mac = pbm.protect(SECRET, &part);
        assert_eq!(mac.len(), 32);
        assert!(pbm.verifies(SECRET, &part, &mac));
        assert!(!pbm.verifies(b"other", &part, &mac));
    }

    fn with_parameters(
        iterations: u64,
        owf: &str,
        mac: &str,
        salt: usize,
    ) -> AlgorithmIdentifierOwned {
        let parameters = PbmParameter {
            salt: der::asn1::OctetString::new(vec![7; salt]).unwrap(),
            owf: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap(owf),
                parameters: None,
            },
            iteration_count: iterations,
            mac: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap(mac),
                parameters: None,
            },
        };
        AlgorithmIdentifierOwned {
            oid: PASSWORD_BASED_MAC,
            parameters: Some(der::Any::encode_from(&parameters).unwrap()),
        }
    }

    #[test]
    fn parameters_outside_the_bounds_are_refused_before_any_hashing() {
        let sha256 = "2.16.840.1.101.3.4.2.1";
        let hmac_sha1 = "1.3.6.1.5.5.8.1.2";
        assert!(PasswordBasedMac::of(&with_parameters(500, sha256, hmac_sha1, 16)).is_ok());
        assert_eq!(
            PasswordBasedMac::of(&with_parameters(10_001, sha256, hmac_sha1, 16)),
            Err(PbmRefusal::IterationCount)
        );
        assert_eq!(
            PasswordBasedMac::of(&with_parameters(99, sha256, hmac_sha1, 16)),
            Err(PbmRefusal::IterationCount)
        );
        assert_eq!(
            PasswordBasedMac::of(&with_parameters(500, "1.3.14.3.2.26", hmac_sha1, 16)),
            Err(PbmRefusal::OneWayFunction)
        );
        assert_eq!(
            PasswordBasedMac::of(&with_parameters(500, sha256, "1.2.840.113549.2.5", 16)),
            Err(PbmRefusal::MacAlgorithm)
        );
        assert_eq!(
            PasswordBasedMac::of(&with_parameters(500, sha256, hmac_sha1, 65)),
            Err(PbmRefusal::Salt)
        );
        let signature = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        };
        assert_eq!(
            PasswordBasedMac::of(&signature),
            Err(PbmRefusal::NotPasswordBased)
        );
    }

    #[test]
    fn garbage_is_no_message() {
        assert!(protected_part(b"").is_err());
        assert!(protected_part(&[0x30, 0x03, 0x02, 0x01, 0x02]).is_err());
        assert!(protected_part(&IR_HMAC_SHA1[..100]).is_err());
    }
}
