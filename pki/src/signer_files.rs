//! The api's delegated signers as it is given them (a chain file, the signer's certificate
//! followed by its CA's, and a key file, as `worker ocsp-signer` and `worker cmp-signer`
//! write them), checked once, at startup, the same way for every purpose: the certificate is
//! for that purpose (its extended key usage), issued and signed by the CA that follows it,
//! within its validity, and the key is its P-256 key. The OCSP responder's
//! (`ocsp/delegated_signer.rs`) and CMP's (`cmp/cmp_signer.rs`) derive what they need from
//! the checked files.
//!
//! Errors name the variable and the problem, never a file's content.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::signer_certificate::SignerPurpose;
use crate::{KeyFile, SigningKey};

/// id-kp-cmcRA (RFC 6402 §2.10), as x509-parser writes an OID.
const CMC_RA: &str = "1.3.6.1.5.5.7.3.28";

#[derive(Debug, thiserror::Error)]
pub enum SignerLoadError {
    #[error("{variable}: cannot read {path}")]
    Read {
        variable: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{variable}: {problem}")]
    Invalid {
        variable: &'static str,
        problem: &'static str,
    },
    #[error("{variable}: the signer certificate expired at {not_after}; issue a new one with `worker {command}`")]
    Expired {
        variable: &'static str,
        command: &'static str,
        not_after: DateTime<Utc>,
    },
    #[error("{variable}: the signer certificate is not valid before {not_before}")]
    NotYetValid {
        variable: &'static str,
        not_before: DateTime<Utc>,
    },
}

/// What each purpose's files are called in the configuration, and what issues them.
struct Names {
    cert: &'static str,
    key: &'static str,
    command: &'static str,
    usage: &'static str,
}

fn names(purpose: SignerPurpose) -> Names {
    match purpose {
        SignerPurpose::Ocsp => Names {
            cert: "OCSP_SIGNER_CERT_PATH",
            key: "OCSP_SIGNER_KEY_PATH",
            command: "ocsp-signer",
            usage: "the signer certificate lacks the id-kp-OCSPSigning extended key usage",
        },
        SignerPurpose::CmpRa => Names {
            cert: "CMP_SIGNER_CERT_PATH",
            key: "CMP_SIGNER_KEY_PATH",
            command: "cmp-signer",
            usage: "the signer certificate lacks the id-kp-cmcRA extended key usage",
        },
        SignerPurpose::ScepRa => Names {
            cert: "SCEP_RA_CERT_PATH",
            key: "SCEP_RA_KEY",
            command: "scep-ra",
            usage: "the RA certificate lacks the id-kp-cmcRA extended key usage",
        },
    }
}

/// A delegated signer whose files passed the checks.
pub(crate) struct CheckedSigner {
    pub key: Arc<dyn SigningKey>,
    /// The signer's certificate, DER.
    pub signer_der: Vec<u8>,
    /// Its CA's, DER.
    pub ca_der: Vec<u8>,
    pub not_after: DateTime<Utc>,
}

/// The chain and key files of a `purpose` signer, checked.
pub(crate) fn from_files(
    purpose: SignerPurpose,
    cert_path: &Path,
    key_path: &Path,
    now: DateTime<Utc>,
) -> Result<CheckedSigner, SignerLoadError> {
    let names = names(purpose);
    let read = |variable: &'static str, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| SignerLoadError::Read {
            variable,
            path: path.display().to_string(),
            source,
        })
    };
    from_pem(
        purpose,
        &read(names.cert, cert_path)?,
        &read(names.key, key_path)?,
        now,
    )
}

/// As [`from_files`], from the files' text.
pub(crate) fn from_pem(
    purpose: SignerPurpose,
    chain_pem: &str,
    key_pem: &str,
    now: DateTime<Utc>,
) -> Result<CheckedSigner, SignerLoadError> {
    let variable = names(purpose).key;
    let key = KeyFile::from_pem(variable, key_pem).map_err(|_| SignerLoadError::Invalid {
        variable,
        problem: "not a PEM private key (PKCS#8)",
    })?;
    check(purpose, chain_pem, Arc::new(key), now)
}

/// The signer of `chain_pem` for `purpose`, signing with `key` (wherever that is held).
pub(crate) fn check(
    purpose: SignerPurpose,
    chain_pem: &str,
    key: Arc<dyn SigningKey>,
    now: DateTime<Utc>,
) -> Result<CheckedSigner, SignerLoadError> {
    let names = names(purpose);
    let invalid_cert = |problem| SignerLoadError::Invalid {
        variable: names.cert,
        problem,
    };
    let chain: Vec<Vec<u8>> = ::pem::parse_many(chain_pem)
        .map_err(|_| invalid_cert("not PEM"))?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| block.into_contents())
        .collect();
    let [signer_der, ca_der, ..] = chain.as_slice() else {
        return Err(invalid_cert(
            "expected the signer certificate followed by the CA certificate",
        ));
    };
    let (_, signer) = X509Certificate::from_der(signer_der)
        .map_err(|_| invalid_cert("the first certificate does not decode"))?;
    let (_, ca) = X509Certificate::from_der(ca_der)
        .map_err(|_| invalid_cert("the second certificate (the CA) does not decode"))?;

    let usage = signer.extended_key_usage().ok().flatten();
    let for_purpose = usage.is_some_and(|eku| match purpose {
        SignerPurpose::Ocsp => eku.value.ocsp_signing,
        SignerPurpose::CmpRa | SignerPurpose::ScepRa => eku
            .value
            .other
            .iter()
            .any(|oid| oid.to_id_string() == CMC_RA),
    });
    if !for_purpose {
        return Err(invalid_cert(names.usage));
    }
    if signer.issuer() != ca.subject() || signer.verify_signature(Some(ca.public_key())).is_err() {
        return Err(invalid_cert(
            "the signer certificate is not signed by the CA certificate that follows it",
        ));
    }
    let timestamp = |seconds| {
        DateTime::from_timestamp(seconds, 0).ok_or(invalid_cert("a validity date is out of range"))
    };
    let not_before = timestamp(signer.validity().not_before.timestamp())?;
    let not_after = timestamp(signer.validity().not_after.timestamp())?;
    if now >= not_after {
        return Err(SignerLoadError::Expired {
            variable: names.cert,
            command: names.command,
            not_after,
        });
    }
    if now < not_before {
        return Err(SignerLoadError::NotYetValid {
            variable: names.cert,
            not_before,
        });
    }
    let (algorithm, problem) = match purpose {
        SignerPurpose::Ocsp | SignerPurpose::CmpRa => (
            &rcgen::PKCS_ECDSA_P256_SHA256,
            "the signer key must be ECDSA P-256 (as `worker ocsp-signer` and `worker cmp-signer` make)",
        ),
        SignerPurpose::ScepRa => (
            &rcgen::PKCS_RSA_SHA256,
            "the SCEP RA key must be RSA (as `worker scep-ra` makes): devices encrypt to it",
        ),
    };
    if key.algorithm() != algorithm {
        return Err(SignerLoadError::Invalid {
            variable: names.key,
            problem,
        });
    }
    let signer_key_bits: &[u8] = &signer.public_key().subject_public_key.data;
    if key.public_key() != signer_key_bits {
        return Err(SignerLoadError::Invalid {
            variable: names.key,
            problem: "not the key of the signer certificate",
        });
    }
    Ok(CheckedSigner {
        key,
        signer_der: signer_der.clone(),
        ca_der: ca_der.clone(),
        not_after,
    })
}
