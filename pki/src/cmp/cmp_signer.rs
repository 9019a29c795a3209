//! The api's CMP signer (`CMP_SIGNER_CERT_PATH`, `CMP_SIGNER_KEY_PATH`, as `worker
//! cmp-signer` writes them): a registration authority's certificate (`id-kp-cmcRA`) followed
//! by its CA's, and its P-256 key, checked at startup as every delegated signer is
//! (`signer_files.rs`). It signs the answers to signature-protected requests (`kur`, `rr`),
//! which cannot be protected with a shared secret; its chain travels in `extraCerts`, and
//! its subject is the answers' `sender`, by which clients find it.
//!
//! Must not: hold a CA key, or sign anything but CMP answers.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use der::Decode;
use spki::AlgorithmIdentifierOwned;
use x509_cert::name::Name;

use crate::signer_certificate::SignerPurpose;
use crate::signer_files::{self, SignerLoadError};
use crate::{KeyUnavailable, SigningKey};

/// `ecdsa-with-SHA256`: what a P-256 signer signs with (no parameters, RFC 5758 §3.2).
const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

pub struct CmpSigner {
    key: Arc<dyn SigningKey>,
    /// The signer's certificate, then its CA's, DER.
    chain: Vec<Vec<u8>>,
    subject: Name,
    not_after: DateTime<Utc>,
}

impl CmpSigner {
    pub fn from_files(
        cert_path: &Path,
        key_path: &Path,
        now: DateTime<Utc>,
    ) -> Result<Self, SignerLoadError> {
        Self::checked(signer_files::from_files(
            SignerPurpose::CmpRa,
            cert_path,
            key_path,
            now,
        )?)
    }

    pub fn from_pem(
        chain_pem: &str,
        key_pem: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, SignerLoadError> {
        Self::checked(signer_files::from_pem(
            SignerPurpose::CmpRa,
            chain_pem,
            key_pem,
            now,
        )?)
    }

    fn checked(checked: signer_files::CheckedSigner) -> Result<Self, SignerLoadError> {
        let certificate = x509_cert::Certificate::from_der(&checked.signer_der).map_err(|_| {
            SignerLoadError::Invalid {
                variable: "CMP_SIGNER_CERT_PATH",
                problem: "the first certificate does not decode",
            }
        })?;
        Ok(Self {
            key: checked.key,
            subject: certificate.tbs_certificate.subject,
            chain: vec![checked.signer_der, checked.ca_der],
            not_after: checked.not_after,
        })
    }

    /// The answers' `sender`: the signer certificate's subject.
    pub fn subject(&self) -> &Name {
        &self.subject
    }

    /// What the answers are protected with.
    pub fn algorithm(&self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        }
    }

    /// A signature of an answer's protected part, DER `Ecdsa-Sig-Value`.
    pub fn sign(&self, protected_part: &[u8]) -> Result<Vec<u8>, KeyUnavailable> {
        self.key.sign(protected_part)
    }

    /// The signer's certificate and its CA's, DER: the answers' `extraCerts`.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }
}
