//! The signing-key port: what every signature this crate makes (device and OCSP-signer
//! certificates, CRLs, OCSP responses) needs of a key, and nothing else. A key held elsewhere
//! (a file today: `key_file.rs`; an HSM next) is one implementation of [`SigningKey`]; the
//! certificate and CRL encoders reach it through rcgen's external-key traits
//! ([`RcgenKey`]), so no ASN.1 is written here.
//!
//! Must not: expose private key material (the port has no way to read it), or decide what is
//! signed (that is the CA's and the responder's business).

use std::sync::Arc;

use rcgen::SignatureAlgorithm;

/// A private key that signs, wherever it is held.
///
/// Implementations are called from blocking contexts (the CA runs on Tokio's blocking pool);
/// a key in a device may block. `sign` may be called from many threads at once.
pub trait SigningKey: Send + Sync + 'static {
    /// The signature algorithm, which also names the key type (rcgen's constants, e.g.
    /// `PKCS_ECDSA_P256_SHA256`).
    fn algorithm(&self) -> &'static SignatureAlgorithm;

    /// The public key as a SubjectPublicKeyInfo's `subjectPublicKey` bits (for EC keys the
    /// uncompressed point).
    fn public_key(&self) -> &[u8];

    /// A signature of `message` with [`SigningKey::algorithm`] (the key hashes as the
    /// algorithm says), in X.509's encoding (ECDSA: DER `Ecdsa-Sig-Value`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyUnavailable>;
}

/// The key could not sign now (its device does not answer, a session failed): an outage,
/// retried, never a refusal of what was to be signed. The message never holds key material.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the signing key is unavailable: {0}")]
pub struct KeyUnavailable(pub String);

/// A [`SigningKey`] as rcgen's external key, for `Issuer`s and `signed_by`.
///
/// rcgen's error cannot carry ours: a failure is logged here and reported to rcgen as
/// `RemoteKeyError`, which the callers map back to an outage ([`is_key_failure`]).
#[derive(Clone)]
pub struct RcgenKey(pub Arc<dyn SigningKey>);

impl rcgen::PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(message).map_err(|unavailable| {
            tracing::warn!(error = %unavailable, "a CA signature failed");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// Whether rcgen failed because the key did not sign (an outage) rather than because of
/// what it was given.
pub fn is_key_failure(error: &rcgen::Error) -> bool {
    matches!(error, rcgen::Error::RemoteKeyError)
}
