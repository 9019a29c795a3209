//! The responder's delegated signer (`OCSP_SIGNER_CERT_PATH`, `OCSP_SIGNER_KEY_PATH`, as
//! `worker ocsp-signer` writes them): the signer's certificate followed by the CA's, and the
//! signer's P-256 key, checked once at startup as every delegated signer is
//! (`signer_files.rs`: for OCSP signing, issued and signed by the CA that follows it, within
//! its validity, the key its key). What the responder needs per request is derived here
//! once: the CA's identifier in URLs, the hashes CertIDs name it by, the responder's key
//! hash.

use std::path::Path;
use std::sync::Arc;

use app::pki::IssuingCaId;
use chrono::{DateTime, Utc};
use der::asn1::OctetString;
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::signer_certificate::SignerPurpose;
use crate::signer_files::{self, SignerLoadError};
use crate::{KeyUnavailable, SigningKey};

/// How CertIDs name the CA, by the hash algorithms the responder answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuerHashes {
    /// SHA-1 of the CA's subject Name (DER), and of its subjectPublicKey's bits.
    pub sha1: (Vec<u8>, Vec<u8>),
    pub sha256: (Vec<u8>, Vec<u8>),
}

/// A signer checked at startup (see the module docs).
pub struct DelegatedSigner {
    key: Arc<dyn SigningKey>,
    /// Sent in every response's `certs`, so relying parties can check the delegation.
    certificate: x509_cert::Certificate,
    /// ResponderID byKey: SHA-1 of the signer's subjectPublicKey bits (RFC 6960 §4.2.1).
    responder_key_hash: OctetString,
    ca: IssuingCaId,
    issuer_hashes: IssuerHashes,
    not_after: DateTime<Utc>,
}

impl DelegatedSigner {
    pub fn from_files(
        cert_path: &Path,
        key_path: &Path,
        now: DateTime<Utc>,
    ) -> Result<Self, SignerLoadError> {
        Self::checked(signer_files::from_files(
            SignerPurpose::Ocsp,
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
            SignerPurpose::Ocsp,
            chain_pem,
            key_pem,
            now,
        )?)
    }

    /// The signer of `chain_pem` signing with `key`, wherever that is held.
    pub fn new(
        chain_pem: &str,
        key: Arc<dyn SigningKey>,
        now: DateTime<Utc>,
    ) -> Result<Self, SignerLoadError> {
        Self::checked(signer_files::check(
            SignerPurpose::Ocsp,
            chain_pem,
            key,
            now,
        )?)
    }

    fn checked(checked: signer_files::CheckedSigner) -> Result<Self, SignerLoadError> {
        let undecodable = || SignerLoadError::Invalid {
            variable: "OCSP_SIGNER_CERT_PATH",
            problem: "the first certificate does not decode",
        };
        let (_, signer) =
            X509Certificate::from_der(&checked.signer_der).map_err(|_| undecodable())?;
        let (_, ca) = X509Certificate::from_der(&checked.ca_der).map_err(|_| undecodable())?;
        let signer_key_bits: &[u8] = &signer.public_key().subject_public_key.data;
        let ca_name = ca.subject().as_raw();
        let ca_key_bits: &[u8] = &ca.public_key().subject_public_key.data;
        let issuer_hashes = IssuerHashes {
            sha1: (
                Sha1::digest(ca_name).to_vec(),
                Sha1::digest(ca_key_bits).to_vec(),
            ),
            sha256: (
                Sha256::digest(ca_name).to_vec(),
                Sha256::digest(ca_key_bits).to_vec(),
            ),
        };
        let certificate =
            x509_cert::Certificate::from_der(&checked.signer_der).map_err(|_| undecodable())?;
        Ok(Self {
            responder_key_hash: OctetString::new(Sha1::digest(signer_key_bits).to_vec())
                .expect("a SHA-1 digest is a short OCTET STRING"),
            ca: IssuingCaId::of_public_key(ca.public_key().raw),
            issuer_hashes,
            certificate,
            key: checked.key,
            not_after: checked.not_after,
        })
    }

    /// The CA this signer answers for.
    pub fn ca(&self) -> &IssuingCaId {
        &self.ca
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    pub(crate) fn issuer_hashes(&self) -> &IssuerHashes {
        &self.issuer_hashes
    }

    pub(crate) fn responder_key_hash(&self) -> &OctetString {
        &self.responder_key_hash
    }

    pub(crate) fn certificate(&self) -> &x509_cert::Certificate {
        &self.certificate
    }

    /// An ECDSA P-256 SHA-256 signature of `message`, DER (a key file: ring, ~25 µs).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyUnavailable> {
        self.key.sign(message)
    }

    /// The signer's key, which tenants' CAs certify too (it never leaves this process).
    pub fn key(&self) -> Arc<dyn SigningKey> {
        self.key.clone()
    }

    /// The signer's key as tenants' CAs certify it: its SubjectPublicKeyInfo and its hash.
    pub fn responder_key(&self) -> app::pki::ResponderKey {
        let spki = self
            .certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("a decoded key encodes");
        app::pki::ResponderKey {
            sha256: hex::encode(Sha256::digest(&spki)),
            spki,
        }
    }

    /// The signer certificate, DER (for tests and diagnostics).
    pub fn certificate_der(&self) -> Vec<u8> {
        self.certificate
            .to_der()
            .expect("a decoded certificate encodes")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, PublicKeyData,
    };

    /// A CA, and a signer it issued with `eku`, valid from `from` to `until`:
    /// (CA PEM, CA key, chain PEM, signer key PEM).
    pub(crate) fn chain_with(
        eku: ExtendedKeyUsagePurpose,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> (String, KeyPair, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "unit-test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), &ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "unit-test CA OCSP responder");
        params.extended_key_usages = vec![eku];
        params.not_before = time::OffsetDateTime::from_unix_timestamp(from.timestamp()).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(until.timestamp()).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let ca_pem = ca_cert.pem();
        (
            ca_pem.clone(),
            ca_key,
            format!("{}{}", cert.pem(), ca_pem),
            key.serialize_pem(),
        )
    }

    pub(crate) fn valid_chain() -> (String, String) {
        let now = Utc::now();
        let (_, _, chain, key) = chain_with(
            ExtendedKeyUsagePurpose::OcspSigning,
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::days(30),
        );
        (chain, key)
    }

    fn refusal(chain: &str, key: &str) -> String {
        DelegatedSigner::from_pem(chain, key, Utc::now())
            .err()
            .expect("refused")
            .to_string()
    }

    #[test]
    fn a_signer_issued_by_the_ca_for_ocsp_signing_is_accepted() {
        let (chain, key) = valid_chain();
        let signer = DelegatedSigner::from_pem(&chain, &key, Utc::now()).unwrap();
        let ca_der = ::pem::parse_many(&chain).unwrap()[1].contents().to_vec();
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(
            signer.ca(),
            &IssuingCaId::of_public_key(ca.public_key().raw)
        );
        assert_eq!(
            signer.issuer_hashes().sha1.0,
            Sha1::digest(ca.subject().as_raw()).to_vec()
        );
        assert_eq!(signer.responder_key_hash().as_bytes().len(), 20);
    }

    #[test]
    fn the_ca_id_is_the_one_the_worker_writes_into_certificates() {
        // The worker derives it from the CA key (rcgen's SubjectPublicKeyInfo), the api from
        // the CA certificate: both must name the same CA in URLs.
        let now = Utc::now();
        let (_, ca_key, chain, key) = chain_with(
            ExtendedKeyUsagePurpose::OcspSigning,
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::days(1),
        );
        let signer = DelegatedSigner::from_pem(&chain, &key, now).unwrap();
        assert_eq!(
            signer.ca(),
            &IssuingCaId::of_public_key(&ca_key.subject_public_key_info())
        );
    }

    #[test]
    fn a_signer_without_the_ocsp_signing_purpose_is_refused() {
        let now = Utc::now();
        let (_, _, chain, key) = chain_with(
            ExtendedKeyUsagePurpose::ClientAuth,
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::days(1),
        );
        assert!(refusal(&chain, &key).contains("id-kp-OCSPSigning"));
    }

    #[test]
    fn a_signer_not_signed_by_the_following_ca_is_refused() {
        let (chain, key) = valid_chain();
        let (other_chain, _) = valid_chain();
        let signer_pem = ::pem::encode(&::pem::parse_many(&chain).unwrap()[0]);
        let other_ca_pem = ::pem::encode(&::pem::parse_many(&other_chain).unwrap()[1]);
        let err = refusal(&format!("{signer_pem}{other_ca_pem}"), &key);
        assert!(err.contains("not signed by the CA"), "{err}");
        assert!(refusal(&signer_pem, &key).contains("followed by the CA"));
    }

    #[test]
    fn an_expired_signer_is_refused_and_one_not_yet_valid_too() {
        let now = Utc::now();
        let (_, _, chain, key) = chain_with(
            ExtendedKeyUsagePurpose::OcspSigning,
            now - chrono::Duration::days(10),
            now - chrono::Duration::days(1),
        );
        assert!(refusal(&chain, &key).contains("expired"));
        let (_, _, chain, key) = chain_with(
            ExtendedKeyUsagePurpose::OcspSigning,
            now + chrono::Duration::days(1),
            now + chrono::Duration::days(10),
        );
        assert!(refusal(&chain, &key).contains("not valid before"));
    }

    #[test]
    fn a_key_that_is_not_the_signers_is_refused_without_echoing_it() {
        let (chain, _) = valid_chain();
        let (_, other_key) = valid_chain();
        assert!(refusal(&chain, &other_key).contains("not the key of the signer certificate"));
        let err = refusal(&chain, "secret-looking text");
        assert!(err.contains("OCSP_SIGNER_KEY_PATH"), "{err}");
        assert!(!err.contains("secret-looking"));
    }
}
