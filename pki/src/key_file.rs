//! The first [`SigningKey`]: a private key read from a PKCS#8 PEM file (`CA_KEY_PATH`,
//! `OCSP_SIGNER_KEY_PATH`) and held in this process's memory, signing with ring through
//! rcgen's `KeyPair`.
//!
//! Must not: log, display or return the key's text (errors name the variable only).

use std::path::Path;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};

use crate::signing_key::{KeyUnavailable, SigningKey};

/// A key loaded from a file.
pub struct KeyFile {
    key: KeyPair,
}

/// The key file cannot be read or is not a key. Never includes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{variable}: cannot read {path}")]
    Read {
        variable: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{variable}: not a PEM private key (PKCS#8)")]
    NotAKey { variable: &'static str },
}

impl KeyFile {
    /// Reads the key at `path`, which the configuration `variable` named.
    pub fn read(variable: &'static str, path: &Path) -> Result<Self, KeyFileError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            variable,
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(variable, &pem)
    }

    pub fn from_pem(variable: &'static str, pem: &str) -> Result<Self, KeyFileError> {
        KeyPair::from_pem(pem)
            .map(|key| Self { key })
            .map_err(|_| KeyFileError::NotAKey { variable })
    }
}

impl SigningKey for KeyFile {
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.algorithm()
    }

    fn public_key(&self) -> &[u8] {
        self.key.der_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyUnavailable> {
        // ring fails only on a broken key or platform: report it, it is not the message's.
        rcgen::SigningKey::sign(&self.key, message)
            .map_err(|e| KeyUnavailable(format!("the key file's key did not sign: {e}")))
    }
}
