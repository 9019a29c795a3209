//! The api's delegated signing certificates, each for one purpose ([`SignerPurpose`]): a new
//! ECDSA P-256 key certified by the CA for that purpose only, so that the api signs without
//! ever holding the CA key. Short lived; rotation is issuing again and restarting the api.
//!
//! - **OCSP responses** (`worker ocsp-signer`): `id-kp-OCSPSigning` only (RFC 6960
//!   §4.2.2.2), with `id-pkix-ocsp-nocheck` (RFC 6960 §4.2.2.2.1): relying parties do not ask
//!   for its own status, it expires instead.
//! - **CMP answers** (`worker cmp-signer`): `id-kp-cmcRA` (RFC 6402 §2.10, RFC 9483 §3.1:
//!   the registration authority devices' CMP clients check answers against).
//! - **SCEP** (`worker scep-ra`): the registration authority devices encrypt their requests
//!   to and whose signature they check on our answers (RFC 8894 §2.1), an RSA-2048 key made
//!   in a PKCS#11 token (it decrypts there), keyUsage digitalSignature and keyEncipherment,
//!   `id-kp-cmcRA`; [`certify_key`] certifies a key held elsewhere.
//!
//! Certifying is the CA's signature through its key (`IssuingCa`); writing the files (the key
//! with mode 0600) is [`IssuedSigner::write_to`]. Nothing here logs or reports key material.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::signing_key::is_key_failure;
use crate::x509_time::to_time;
use crate::{certificate_serial, IssuingCa, KeyUnavailable};

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// id-kp-cmcRA (RFC 6402 §2.10).
const OID_CMC_RA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 28];

/// What a delegated signer signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerPurpose {
    /// OCSP responses.
    Ocsp,
    /// CMP answers, as a registration authority.
    CmpRa,
    /// SCEP's registration authority: it signs answers and decrypts requests.
    ScepRa,
}

impl SignerPurpose {
    /// The files `worker ocsp-signer` and `worker cmp-signer` write into their `--out`
    /// directory: the chain, then the key.
    pub fn files(self) -> (&'static str, &'static str) {
        match self {
            Self::Ocsp => ("ocsp-signer.pem", "ocsp-signer.key"),
            Self::CmpRa => ("cmp-signer.pem", "cmp-signer.key"),
            // Its key stays in its token: no key file is written.
            Self::ScepRa => ("scep-ra.pem", ""),
        }
    }

    /// The signer's CN, after its CA's.
    fn role(self) -> &'static str {
        match self {
            Self::Ocsp => "OCSP responder",
            Self::CmpRa => "CMP registration authority",
            Self::ScepRa => "SCEP registration authority",
        }
    }
}

/// A delegated signer: its certificate chain and its private key.
pub struct IssuedSigner {
    pub purpose: SignerPurpose,
    /// The signer's certificate followed by the CA's, PEM.
    pub chain_pem: String,
    /// The signer's private key, PKCS#8 PEM.
    key_pem: String,
    pub not_after: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignerIssueError {
    #[error("cannot issue the signer certificate: {0}")]
    Issue(#[from] rcgen::Error),
    #[error(transparent)]
    KeyUnavailable(#[from] KeyUnavailable),
    #[error("the SCEP RA's key is made in a PKCS#11 token, never in a file: `worker scep-ra`")]
    KeyInToken,
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl IssuedSigner {
    /// Issues a signer for `purpose` valid from `now` (less five minutes of clock skew) for
    /// `validity`, certified by `ca` (through its signing key, wherever that is held).
    pub fn issue(
        ca: &IssuingCa,
        purpose: SignerPurpose,
        validity: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Self, SignerIssueError> {
        if purpose == SignerPurpose::ScepRa {
            return Err(SignerIssueError::KeyInToken);
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let (chain_pem, not_after) = certify(ca, purpose, &key, validity, now)?;
        Ok(Self {
            purpose,
            chain_pem,
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// Writes the purpose's files ([`SignerPurpose::files`]: the chain, and the key with mode
    /// 0600) into `dir`, creating it if needed; returns their paths.
    pub fn write_to(&self, dir: &Path) -> Result<(PathBuf, PathBuf), SignerIssueError> {
        let (chain_file, key_file) = self.purpose.files();
        let failed = |path: &Path| {
            let path = path.display().to_string();
            move |source| SignerIssueError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(failed(dir))?;
        let chain = dir.join(chain_file);
        std::fs::write(&chain, &self.chain_pem).map_err(failed(&chain))?;
        let key = dir.join(key_file);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .map_err(failed(&key))?;
        // `mode` applies only to a new file: an older key file may have been looser.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed(&key))?;
        file.write_all(self.key_pem.as_bytes())
            .map_err(failed(&key))?;
        Ok((chain, key))
    }
}

/// `ca`'s certificate of a responder key held elsewhere (the api's; `spki_der`: its
/// SubjectPublicKeyInfo) for `validity` from `now`: the chain (the signer's certificate, then
/// the CA's) and its end. Tenants' CAs certify the api's key this way, so the key never
/// leaves the api.
pub fn certify_responder_key(
    ca: &IssuingCa,
    spki_der: &[u8],
    validity: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), SignerIssueError> {
    let key = rcgen::SubjectPublicKeyInfo::from_der(spki_der)?;
    certify(ca, SignerPurpose::Ocsp, &key, validity, now)
}

/// `ca`'s certificate of `key`, held elsewhere (in a token), for `purpose`, valid for
/// `validity` from `now`: the chain (the signer's certificate, then the CA's) and its end.
pub fn certify_key(
    ca: &IssuingCa,
    purpose: SignerPurpose,
    key: std::sync::Arc<dyn crate::SigningKey>,
    validity: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), SignerIssueError> {
    certify(ca, purpose, &crate::RcgenKey(key), validity, now)
}

/// The delegated signer certificate of `key` by `ca` for `purpose`: the chain PEM and its
/// end.
fn certify(
    ca: &IssuingCa,
    purpose: SignerPurpose,
    key: &impl rcgen::PublicKeyData,
    validity: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), SignerIssueError> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::CommonName,
        format!("{} {}", ca.common_name(), purpose.role()),
    );
    params.distinguished_name = subject;
    params.serial_number = Some(certificate_serial::random().into());
    let not_before = now - chrono::Duration::minutes(5);
    // Never past the CA's end.
    let not_after = (now + validity).min(ca.not_after());
    params.not_before = to_time(not_before)?;
    params.not_after = to_time(not_after)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = match purpose {
        SignerPurpose::ScepRa => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        SignerPurpose::Ocsp | SignerPurpose::CmpRa => vec![KeyUsagePurpose::DigitalSignature],
    };
    params.use_authority_key_identifier_extension = true;
    match purpose {
        SignerPurpose::Ocsp => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
            params.custom_extensions = vec![CustomExtension::from_oid_content(
                OID_OCSP_NOCHECK,
                der::Encode::to_der(&der::asn1::Null).expect("NULL encodes"),
            )];
        }
        SignerPurpose::CmpRa | SignerPurpose::ScepRa => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(OID_CMC_RA.to_vec())];
        }
    }
    let certificate = params.signed_by(key, ca.issuer()).map_err(|e| {
        if is_key_failure(&e) {
            SignerIssueError::KeyUnavailable(KeyUnavailable("the CA key did not sign".into()))
        } else {
            SignerIssueError::Issue(e)
        }
    })?;
    let ca_pem = ::pem::encode_config(
        &::pem::Pem::new("CERTIFICATE", ca.certificate_der()),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    );
    Ok((
        format!("{}{}", certificate.pem(), ca_pem),
        DateTime::from_timestamp(not_after.timestamp(), 0).expect("in range"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev_ca::generate_dev_ca;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::{FromDer, X509Certificate};

    /// As `worker ocsp-signer` does: the CA loaded from its certificate and key, then the
    /// signer issued through its key.
    fn issue(
        ca_pem: &str,
        ca_key: &str,
        validity: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<IssuedSigner, Box<dyn std::error::Error>> {
        let ca = IssuingCa::from_pem(ca_pem, ca_key, chrono::Duration::days(1))?;
        Ok(IssuedSigner::issue(
            &ca,
            SignerPurpose::Ocsp,
            validity,
            now,
        )?)
    }

    fn blocks(pem_text: &str) -> Vec<Vec<u8>> {
        ::pem::parse_many(pem_text)
            .unwrap()
            .into_iter()
            .map(|p| p.into_contents())
            .collect()
    }

    #[test]
    fn the_signer_is_certified_by_the_ca_for_ocsp_signing_only() {
        let (ca_pem, ca_key) = generate_dev_ca("unit-test CA").unwrap();
        let now = Utc::now();
        let signer = issue(&ca_pem, &ca_key, chrono::Duration::days(30), now).unwrap();

        let chain = blocks(&signer.chain_pem);
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], blocks(&ca_pem)[0], "the CA follows the signer");
        let (_, cert) = X509Certificate::from_der(&chain[0]).unwrap();
        let (_, ca) = X509Certificate::from_der(&chain[1]).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["unit-test CA OCSP responder"]);
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.ocsp_signing);
        assert!(!eku.client_auth && !eku.server_auth && !eku.any);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
        let nocheck = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5")
            .expect("id-pkix-ocsp-nocheck");
        assert_eq!(nocheck.value, [0x05, 0x00], "NULL content");
        assert!(!nocheck.critical);
        assert!(cert.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::AuthorityKeyIdentifier(_)
        )));
        assert_eq!(
            cert.validity().not_after.timestamp(),
            (now + chrono::Duration::days(30)).timestamp()
        );
        assert_eq!(
            signer.not_after.timestamp(),
            cert.validity().not_after.timestamp()
        );
        assert!(cert.validity().not_before.timestamp() < now.timestamp());
        // A P-256 key, as the api signs with.
        assert_eq!(
            cert.public_key()
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .as_oid()
                .unwrap()
                .to_id_string(),
            "1.2.840.10045.3.1.7"
        );
    }

    #[test]
    fn a_cmp_signer_is_certified_as_a_registration_authority_only() {
        let (ca_pem, ca_key) = generate_dev_ca("unit-test CA").unwrap();
        let ca = IssuingCa::from_pem(&ca_pem, &ca_key, chrono::Duration::days(1)).unwrap();
        let signer = IssuedSigner::issue(
            &ca,
            SignerPurpose::CmpRa,
            chrono::Duration::days(30),
            Utc::now(),
        )
        .unwrap();
        let chain = blocks(&signer.chain_pem);
        let (_, cert) = X509Certificate::from_der(&chain[0]).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(&chain[1]).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(!eku.ocsp_signing && !eku.client_auth && !eku.server_auth && !eku.any);
        assert_eq!(
            eku.other
                .iter()
                .map(|oid| oid.to_id_string())
                .collect::<Vec<_>>(),
            ["1.3.6.1.5.5.7.3.28"]
        );
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!cert
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5"));
        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["unit-test CA CMP registration authority"]);
    }

    #[test]
    fn two_signers_have_different_keys_and_serials() {
        let (ca_pem, ca_key) = generate_dev_ca("unit-test CA").unwrap();
        let a = issue(&ca_pem, &ca_key, chrono::Duration::days(1), Utc::now()).unwrap();
        let b = issue(&ca_pem, &ca_key, chrono::Duration::days(1), Utc::now()).unwrap();
        let (a_der, b_der) = (blocks(&a.chain_pem), blocks(&b.chain_pem));
        let (_, a_cert) = X509Certificate::from_der(&a_der[0]).unwrap();
        let (_, b_cert) = X509Certificate::from_der(&b_der[0]).unwrap();
        assert_ne!(a_cert.raw_serial(), b_cert.raw_serial());
        assert_ne!(a_cert.public_key().raw, b_cert.public_key().raw);
        assert_ne!(a.key_pem, b.key_pem);
    }

    #[test]
    fn the_files_are_written_with_the_key_private() {
        let (ca_pem, ca_key) = generate_dev_ca("unit-test CA").unwrap();
        let signer = issue(&ca_pem, &ca_key, chrono::Duration::days(1), Utc::now()).unwrap();
        let dir = std::env::temp_dir().join(format!("ocsp-signer-{}", uuid::Uuid::new_v4()));
        let (chain, key) = signer.write_to(&dir.join("nested")).unwrap();
        assert_eq!(std::fs::read_to_string(&chain).unwrap(), signer.chain_pem);
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(
            key_text.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8"
        );
        KeyPair::from_pem(&key_text).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_ca_key_is_refused_without_echoing_it() {
        let (ca_pem, _) = generate_dev_ca("x").unwrap();
        let err = issue(
            &ca_pem,
            "secret-looking text",
            chrono::Duration::days(1),
            Utc::now(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("CA_KEY_PATH"), "{err}");
        assert!(!err.contains("secret-looking"));
    }

    #[test]
    fn a_ca_key_that_is_not_the_ca_certificates_is_refused() {
        let (ca_pem, _) = generate_dev_ca("x").unwrap();
        let (_, other_key) = generate_dev_ca("y").unwrap();
        let err = issue(&ca_pem, &other_key, chrono::Duration::days(1), Utc::now())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("CA_KEY_PATH") && err.contains("CA_CERT_PATH"),
            "{err}"
        );
    }
}
