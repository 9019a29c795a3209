//! The api's SCEP registration authority (`SCEP_RA_CERT_PATH`, `SCEP_RA_KEY`, as `worker
//! scep-ra` makes them): an RSA key in a PKCS#11 token, which decrypts what devices encrypt
//! to it and signs our answers there, and its certificate by the CA followed by the CA's,
//! which `GetCACert` serves. Checked once, at startup, as every delegated signer is
//! (`signer_files.rs`: issued and signed by the CA that follows it, for `id-kp-cmcRA`, within
//! its validity, the key its key).
//!
//! Must not: hold a CA key, or decrypt outside the token.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::cert_rep::CertRep;
use crate::est_wire_format;
use crate::pkcs11_key::{Pkcs11Key, Pkcs11Module, Pkcs11SetupError, Pkcs11Uri};
use crate::signer_certificate::SignerPurpose;
use crate::signer_files::{self, SignerLoadError};
use crate::{KeyUnavailable, Pkcs11Access, SigningKey};

pub struct ScepRa {
    key: Arc<Pkcs11Key>,
    answers: CertRep,
    /// `GetCACert`'s body: the RA's certificate and the CA's, certs-only PKCS#7, DER.
    ca_ra_certs: Vec<u8>,
    not_after: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScepRaError {
    #[error("SCEP_RA_KEY: {0}")]
    NotAPkcs11Uri(#[from] crate::NotAPkcs11Uri),
    #[error("SCEP_RA_KEY: {0}")]
    Token(#[from] Pkcs11SetupError),
    #[error(transparent)]
    Files(#[from] SignerLoadError),
    #[error("SCEP_RA_CERT_PATH: the certificates do not encode: {0}")]
    Encoding(String),
}

impl ScepRa {
    /// The RA of `cert_path` whose key `key_uri` (`pkcs11:token=…;object=…`) names in the
    /// token `access` reaches.
    pub fn open(
        cert_path: &Path,
        key_uri: &str,
        access: &Pkcs11Access,
        now: DateTime<Utc>,
    ) -> Result<Self, ScepRaError> {
        let uri = Pkcs11Uri::parse(key_uri)?;
        let module = Pkcs11Module::load(&access.module_path, &access.pin_file)?;
        let key = Arc::new(module.open_rsa(&uri)?);
        let chain = std::fs::read_to_string(cert_path).map_err(|source| SignerLoadError::Read {
            variable: "SCEP_RA_CERT_PATH",
            path: cert_path.display().to_string(),
            source,
        })?;
        Self::new(&chain, key, now)
    }

    /// The RA of `chain_pem` (its certificate, then the CA's) signing and decrypting with
    /// `key`.
    pub fn new(
        chain_pem: &str,
        key: Arc<Pkcs11Key>,
        now: DateTime<Utc>,
    ) -> Result<Self, ScepRaError> {
        let signer: Arc<dyn SigningKey> = key.clone();
        let checked = signer_files::check(SignerPurpose::ScepRa, chain_pem, signer.clone(), now)?;
        let encoding = |e: der::Error| ScepRaError::Encoding(e.to_string());
        let answers = CertRep::new(&checked.signer_der, signer).map_err(encoding)?;
        let ca_ra_certs = est_wire_format::certs_only(&[&checked.signer_der, &checked.ca_der])
            .map_err(encoding)?;
        Ok(Self {
            key,
            answers,
            ca_ra_certs,
            not_after: checked.not_after,
        })
    }

    /// `GetCACert`'s body (`application/x-x509-ca-ra-cert`).
    pub fn ca_ra_certs(&self) -> &[u8] {
        &self.ca_ra_certs
    }

    /// What signs the answers, and names the RA in envelopes.
    pub fn answers(&self) -> &CertRep {
        &self.answers
    }

    /// A key transport decrypted in the token (`None`: it does not decrypt). Blocks.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Option<Vec<u8>>, KeyUnavailable> {
        self.key.decrypt_pkcs1v15(ciphertext)
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }
}
