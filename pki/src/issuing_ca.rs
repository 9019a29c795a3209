//! The issuing CA: its certificate (`CA_CERT_PATH`), its key behind the signing-key port
//! (`signing_key.rs`; loaded once, wherever it is held), and what it issues: it checks a
//! device's CSR against policy (`csr_policy.rs`) and signs a certificate of its profile
//! (`certificate_profile.rs`) with a serial derived from the request (`certificate_serial.rs`).
//! `BlockingCa` makes it `app::CertificateAuthority`; `crl_signing.rs` makes it
//! `app::pki::CrlSigner`; `signer_certificate.rs` has it certify the api's delegated signers.
//!
//! The key must be the CA certificate's (checked at start: [`CaLoadError::KeyNotCertificates`]),
//! and each certificate signed is verified against the CA certificate before it is handed
//! out ([`IssuingCa::issue_verified`]): one that does not verify is the CA's failure (an
//! outage, retried), never a device's certificate. A key that cannot sign is an outage too.
//!
//! Must not: run on the async runtime's threads (signing is CPU-bound and a key may block),
//! or know where its key is held.

use std::path::Path;
use std::sync::Arc;

use app::pki::{CrlSigner, IssuingCaId, PublicBaseUrl, RevocationListContent};
use app::{CaUnavailable, CertificateRequest};
use chrono::{DateTime, Utc};
use domain::{FailureCode, IssuedCertificate, ProvisioningFailure};
use rcgen::{Issuer, SubjectPublicKeyInfo};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::certificate_profile::{CertificateProfile, StatusLocations};
use crate::certificate_serial;
use crate::csr_policy::{check_csr, failure};
use crate::key_file::KeyFile;
use crate::key_reference::{KeyOpenError, KeyReference};
use crate::signing_key::{is_key_failure, RcgenKey, SigningKey};
use crate::x509_time::{to_time, truncate_to_seconds};

#[derive(Debug, thiserror::Error)]
pub enum CaLoadError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Never includes the key material.
    #[error(transparent)]
    Key(#[from] KeyOpenError),
    #[error("{what} is not a usable PEM {expected}")]
    Invalid {
        what: &'static str,
        expected: &'static str,
    },
    /// What the key signs would not verify against the certificate.
    #[error(
        "CA_KEY_PATH is not the private key of the certificate in CA_CERT_PATH: certificates \
         signed with it would not verify against that CA certificate"
    )]
    KeyNotCertificates,
}

/// The DER of the first certificate of `pem`, decoded as one (`CA_CERT_PATH`'s).
fn ca_certificate_der(pem: &str) -> Result<Vec<u8>, CaLoadError> {
    let invalid = || CaLoadError::Invalid {
        what: "CA_CERT_PATH",
        expected: "CA certificate",
    };
    let der = ::pem::parse_many(pem)
        .map_err(|_| invalid())?
        .into_iter()
        .find(|block| block.tag() == "CERTIFICATE")
        .ok_or_else(invalid)?
        .into_contents();
    X509Certificate::from_der(&der).map_err(|_| invalid())?;
    Ok(der)
}

/// The CA's certificate and key, the validity and profile of what it issues.
pub struct IssuingCa {
    issuer: Issuer<'static, RcgenKey>,
    /// `CA_CERT_PATH`'s certificate (DER): what each signed certificate is verified against.
    certificate_der: Vec<u8>,
    /// Its subject's common name, which the OCSP signers it certifies are named after.
    common_name: String,
    id: IssuingCaId,
    /// The CA certificate's end: nothing it issues outlives it.
    not_after: DateTime<Utc>,
    validity: chrono::Duration,
    profile: CertificateProfile,
    status_locations: Option<StatusLocations>,
}

impl IssuingCa {
    /// The CA of `cert_path` (`CA_CERT_PATH`) with the key `key` names (`CA_KEY_PATH`),
    /// opened once, wherever it is held.
    pub fn open(
        cert_path: &Path,
        key: &KeyReference,
        validity: chrono::Duration,
    ) -> Result<Self, CaLoadError> {
        let cert_pem = std::fs::read_to_string(cert_path).map_err(|source| CaLoadError::Read {
            path: cert_path.display().to_string(),
            source,
        })?;
        Self::new(&cert_pem, key.open()?, validity)
    }

    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        validity: chrono::Duration,
    ) -> Result<Self, CaLoadError> {
        let key = KeyFile::from_pem("CA_KEY_PATH", key_pem).map_err(KeyOpenError::from)?;
        Self::new(cert_pem, Arc::new(key), validity)
    }

    /// The CA of `cert_pem` signing with `key`, wherever that is held.
    pub fn new(
        cert_pem: &str,
        key: Arc<dyn SigningKey>,
        validity: chrono::Duration,
    ) -> Result<Self, CaLoadError> {
        let invalid = || CaLoadError::Invalid {
            what: "CA_CERT_PATH",
            expected: "CA certificate",
        };
        let certificate_der = ca_certificate_der(cert_pem)?;
        let (_, certificate) =
            X509Certificate::from_der(&certificate_der).map_err(|_| invalid())?;
        let certified: &[u8] = &certificate.public_key().subject_public_key.data;
        if key.public_key() != certified {
            return Err(CaLoadError::KeyNotCertificates);
        }
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("CA")
            .to_owned();
        let id = IssuingCaId::of_public_key(certificate.public_key().raw);
        let not_after = DateTime::from_timestamp(certificate.validity().not_after.timestamp(), 0)
            .ok_or_else(invalid)?;
        let issuer = Issuer::from_ca_cert_der(&certificate_der.as_slice().into(), RcgenKey(key))
            .map_err(|_| invalid())?;
        Ok(Self {
            issuer,
            certificate_der,
            common_name,
            id,
            not_after,
            validity,
            profile: CertificateProfile::Standard,
            status_locations: None,
        })
    }

    pub fn with_profile(self, profile: CertificateProfile) -> Self {
        Self { profile, ..self }
    }

    /// Certificates issued from now on name this CA's CRL and OCSP URLs under `base`.
    pub fn with_status_urls(self, base: &PublicBaseUrl) -> Self {
        Self {
            status_locations: Some(StatusLocations::new(base, &self.id)),
            ..self
        }
    }

    /// Refuses a CA certificate whose key usage does not allow signing CRLs, at startup
    /// rather than at the first revocation.
    pub fn check_can_sign_crls(&self) -> Result<(), CaLoadError> {
        let now = Utc::now();
        let empty = RevocationListContent {
            number: 1,
            this_update: now,
            next_update: now + chrono::Duration::hours(1),
            entries: Vec::new(),
        };
        self.sign_crl(&empty)
            .map(drop)
            .map_err(|_| CaLoadError::Invalid {
                what: "CA_CERT_PATH",
                expected: "CA certificate whose key usage includes cRLSign",
            })
    }

    /// This CA's identifier in the PKI URLs.
    pub fn id(&self) -> &IssuingCaId {
        &self.id
    }

    /// The CA certificate's end.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    pub(crate) fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The CA as rcgen's issuer (its name, key identifier and key), for what it signs.
    pub(crate) fn issuer(&self) -> &Issuer<'static, RcgenKey> {
        &self.issuer
    }

    /// Checks the request and signs it, or says why not; a key that does not sign is an
    /// outage. Pure CPU (or a blocking key); call it off the runtime.
    pub fn issue(
        &self,
        request: &CertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<Result<IssuedCertificate, ProvisioningFailure>, CaUnavailable> {
        if now >= self.not_after {
            // An outage, not the device's fault: requests wait for a CA that can sign.
            return Err(CaUnavailable("the CA certificate has expired".into()));
        }
        let spki_der = match check_csr(request) {
            Ok(spki_der) => spki_der,
            Err(refused) => return Ok(Err(refused)),
        };
        let not_before = now - chrono::Duration::minutes(5); // tolerate devices' clock skew
                                                             // Never past the CA's own end: a relying party would refuse the rest of it.
        let not_after = (now + self.validity).min(self.not_after);
        let serial = certificate_serial::of_request(request);
        let mut params = self.profile.params(request, self.status_locations.as_ref());
        params.serial_number = Some(serial.clone().into());
        params.not_before = to_time(not_before).expect("a timestamp within X.509's range");
        params.not_after = to_time(not_after).expect("a timestamp within X.509's range");
        let Ok(public_key) = SubjectPublicKeyInfo::from_der(&spki_der) else {
            return Ok(Err(failure(
                FailureCode::KeyPolicyViolation,
                "unsupported public key",
            )));
        };
        let certificate = match params.signed_by(&public_key, &self.issuer) {
            Ok(certificate) => certificate,
            Err(e) if is_key_failure(&e) => {
                return Err(CaUnavailable("the CA key did not sign".into()))
            }
            Err(_) => {
                return Ok(Err(failure(
                    FailureCode::MalformedCsr,
                    "the CSR's key cannot be certified",
                )))
            }
        };
        let der = certificate.der();
        Ok(Ok(IssuedCertificate {
            pem: certificate.pem(),
            serial: hex::encode(serial),
            fingerprint_sha256: hex::encode(Sha256::digest(der)),
            not_before: truncate_to_seconds(not_before),
            not_after: truncate_to_seconds(not_after),
            issuer: Some(self.id.clone()),
        }))
    }

    /// [`IssuingCa::issue`], then the certificate's signature verified against the CA
    /// certificate (`CA_CERT_PATH`) before anyone sees it. One that does not verify would
    /// fail every relying party's check: it is the CA's failure, an outage (retried, and
    /// counted in `ca_signature_failures_total`), never a device's certificate.
    pub fn issue_verified(
        &self,
        request: &CertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<Result<IssuedCertificate, ProvisioningFailure>, CaUnavailable> {
        let issued = match self.issue(request, now)? {
            Ok(issued) => issued,
            Err(refused) => return Ok(Err(refused)),
        };
        if let Err(problem) = self.verifies(&issued) {
            metrics::counter!("ca_signature_failures_total").increment(1);
            tracing::error!(
                problem,
                "a certificate the CA signed does not verify against CA_CERT_PATH; nothing is \
                 issued until the CA is fixed (is CA_KEY_PATH the key of CA_CERT_PATH?)"
            );
            return Err(CaUnavailable(format!(
                "the certificate signed does not verify against CA_CERT_PATH: {problem}"
            )));
        }
        Ok(Ok(issued))
    }

    /// Whether `issued` is signed by, and names as its issuer, the CA certificate.
    fn verifies(&self, issued: &IssuedCertificate) -> Result<(), &'static str> {
        let (_, ca) = X509Certificate::from_der(&self.certificate_der)
            .map_err(|_| "the CA certificate does not decode")?;
        let der = ::pem::parse(&issued.pem)
            .map_err(|_| "the signed certificate is not PEM")?
            .into_contents();
        let (_, certificate) = X509Certificate::from_der(&der)
            .map_err(|_| "the signed certificate does not decode")?;
        if certificate.issuer() != ca.subject() {
            return Err("its issuer is not the CA certificate's subject");
        }
        certificate
            .verify_signature(Some(ca.public_key()))
            .map_err(|_| "its signature does not verify with the CA certificate's key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev_ca::generate_dev_ca;
    use crate::CertificateProfile;
    use app::CertificateRequest;
    use domain::{CertificateRequestId, CertificateSigningRequest, DeviceId, SerialNumber};
    use rcgen::{CertificateParams, DnType, KeyPair};
    use x509_parser::certificate::X509Certificate;

    fn ca() -> (IssuingCa, String) {
        let (cert, key) = generate_dev_ca("unit-test CA").unwrap();
        (
            IssuingCa::from_pem(&cert, &key, chrono::Duration::days(30)).unwrap(),
            cert,
        )
    }

    fn request(serial: &str, csr_pem: &str) -> CertificateRequest {
        CertificateRequest {
            device_id: DeviceId::from_uuid(uuid::Uuid::from_u128(7)),
            request_id: CertificateRequestId::from_uuid(uuid::Uuid::from_u128(42)),
            serial_number: SerialNumber::parse(serial).unwrap(),
            request: CertificateSigningRequest::from_pem(csr_pem).unwrap().into(),
        }
    }

    fn csr(common_name: &str, alg: &'static rcgen::SignatureAlgorithm) -> String {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    /// What the CA answers `request` with, its key signing.
    fn signed(
        ca: &IssuingCa,
        request: &CertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, ProvisioningFailure> {
        ca.issue(request, now).expect("the key signs")
    }

    fn refusal(ca: &IssuingCa, request: &CertificateRequest) -> FailureCode {
        signed(ca, request, Utc::now()).unwrap_err().code
    }

    #[test]
    fn certificates_name_the_crl_and_ocsp_urls_of_their_ca() {
        use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
        let (ca, _) = ca();
        let base = PublicBaseUrl::parse("https://pki.example.com").unwrap();
        let ca = ca.with_status_urls(&base);
        let issued = signed(
            &ca,
            &request("SN-1", &csr("SN-1", &rcgen::PKCS_ECDSA_P256_SHA256)),
            Utc::now(),
        )
        .unwrap();
        let der = ::pem::parse(&issued.pem).unwrap().into_contents();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let (mut crl_urls, mut ocsp_urls) = (Vec::new(), Vec::new());
        for extension in cert.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(points) => {
                    for point in points.iter() {
                        if let Some(DistributionPointName::FullName(names)) =
                            &point.distribution_point
                        {
                            for name in names {
                                if let GeneralName::URI(uri) = name {
                                    crl_urls.push(uri.to_string());
                                }
                            }
                        }
                    }
                }
                ParsedExtension::AuthorityInfoAccess(access) => {
                    for description in access.iter() {
                        assert_eq!(
                            description.access_method.to_id_string(),
                            "1.3.6.1.5.5.7.48.1"
                        );
                        if let GeneralName::URI(uri) = &description.access_location {
                            ocsp_urls.push(uri.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(crl_urls, [base.crl_url(ca.id())]);
        assert_eq!(ocsp_urls, [base.ocsp_url(ca.id())]);
        assert!(crl_urls[0].starts_with("https://pki.example.com/pki/"));
    }

    #[test]
    fn issues_a_client_certificate_for_the_csr_key_signed_by_the_ca() {
        let (ca, ca_pem) = ca();
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let request = request("SN-1", &csr("SN-1", alg));
            let issued = signed(&ca, &request, Utc::now()).unwrap();
            let der = ::pem::parse(&issued.pem).unwrap().into_contents();
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            let ca_der = ::pem::parse(&ca_pem).unwrap().into_contents();
            let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
            cert.verify_signature(Some(ca_cert.public_key())).unwrap();
            assert!(!cert.is_ca());
            assert_eq!(issued.serial, hex::encode(cert.raw_serial()));
            assert_eq!(issued.fingerprint_sha256, hex::encode(Sha256::digest(&der)));
            assert_eq!(
                issued.not_after.timestamp(),
                cert.validity().not_after.timestamp()
            );
        }
    }

    fn subject_alt_names(issued: &IssuedCertificate) -> Vec<String> {
        let der = ::pem::parse(&issued.pem).unwrap().into_contents();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        cert.subject_alternative_name()
            .unwrap()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .map(|name| name.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_device_uri_profile_names_the_device_and_the_standard_one_does_not() {
        let (ca, _) = ca();
        let request = request("SN-1", &csr("SN-1", &rcgen::PKCS_ECDSA_P256_SHA256));
        let standard = signed(&ca, &request, Utc::now()).unwrap();
        assert!(subject_alt_names(&standard).is_empty());

        let ca = ca.with_profile(CertificateProfile::DeviceUri);
        let with_uri = signed(&ca, &request, Utc::now()).unwrap();
        assert_eq!(
            subject_alt_names(&with_uri),
            [format!("URI(urn:uuid:{})", request.device_id)]
        );
    }

    #[test]
    fn the_same_request_gets_the_same_certificate_serial() {
        let (ca, _) = ca();
        let request = request("SN-1", &csr("SN-1", &rcgen::PKCS_ECDSA_P256_SHA256));
        let a = signed(&ca, &request, Utc::now()).unwrap();
        let b = signed(&ca, &request, Utc::now()).unwrap();
        assert_eq!(a.serial, b.serial);
    }

    #[test]
    fn accepts_rsa_2048_and_refuses_small_rsa_and_other_curves() {
        let (ca, _) = ca();
        let rsa2048 = include_str!("../tests/fixtures/rsa2048.csr");
        assert!(signed(&ca, &request("SN-RSA", rsa2048), Utc::now()).is_ok());
        let rsa1024 = include_str!("../tests/fixtures/rsa1024.csr");
        assert_eq!(
            refusal(&ca, &request("SN-RSA", rsa1024)),
            FailureCode::KeyPolicyViolation
        );
        let p521 = include_str!("../tests/fixtures/p521.csr");
        assert_eq!(
            refusal(&ca, &request("SN-EC", p521)),
            FailureCode::KeyPolicyViolation
        );
    }

    #[test]
    fn refuses_a_subject_that_is_not_the_serial_number() {
        let (ca, _) = ca();
        let other = csr("SN-2", &rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            refusal(&ca, &request("SN-1", &other)),
            FailureCode::SubjectMismatch
        );
        // The detail says what was expected and what the CSR holds.
        let detail = signed(&ca, &request("SN-1", &other), Utc::now())
            .unwrap_err()
            .detail;
        assert!(
            detail.contains("\"SN-1\"") && detail.contains("it has CN \"SN-2\""),
            "{detail}"
        );
    }

    #[test]
    fn refuses_a_csr_whose_signature_does_not_verify() {
        let (ca, _) = ca();
        let good = csr("SN-1", &rcgen::PKCS_ECDSA_P256_SHA256);
        let mut der = ::pem::parse(&good).unwrap().into_contents();
        // The last byte is inside the signature: the request still parses, but no longer
        // verifies.
        *der.last_mut().unwrap() ^= 0x01;
        let tampered = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
        assert_eq!(
            refusal(&ca, &request("SN-1", &tampered)),
            FailureCode::InvalidSignature
        );
    }

    #[test]
    fn a_key_that_is_not_the_ca_certificates_is_refused() {
        let (cert, _) = generate_dev_ca("one").unwrap();
        let (_, other_key) = generate_dev_ca("other").unwrap();
        let err = IssuingCa::from_pem(&cert, &other_key, chrono::Duration::days(1))
            .err()
            .expect("refused");
        assert!(matches!(err, CaLoadError::KeyNotCertificates), "{err}");
        let message = err.to_string();
        assert!(message.contains("CA_KEY_PATH") && message.contains("CA_CERT_PATH"));
    }

    #[test]
    fn a_signature_that_does_not_verify_is_an_outage_never_a_certificate() {
        let (mut ca, _) = ca();
        let request = request("SN-1", &csr("SN-1", &rcgen::PKCS_ECDSA_P256_SHA256));
        assert!(matches!(ca.issue_verified(&request, Utc::now()), Ok(Ok(_))));
        // The certificate it is checked against is another CA's (as if CA_CERT_PATH and
        // CA_KEY_PATH did not belong together).
        let (other, _) = generate_dev_ca("unit-test CA").unwrap();
        ca.certificate_der = ::pem::parse(&other).unwrap().into_contents();
        let outage = ca
            .issue_verified(&request, Utc::now())
            .expect_err("an outage");
        assert!(outage.0.contains("does not verify"), "{}", outage.0);
        // A refused request is still the device's outcome.
        let wrong_subject = self::request("SN-1", &csr("SN-2", &rcgen::PKCS_ECDSA_P256_SHA256));
        assert!(matches!(
            ca.issue_verified(&wrong_subject, Utc::now()),
            Ok(Err(ProvisioningFailure {
                code: FailureCode::SubjectMismatch,
                ..
            }))
        ));
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_refused_without_echoing_it() {
        let (cert, _) = generate_dev_ca("x").unwrap();
        let err = IssuingCa::from_pem(&cert, "secret-looking text", chrono::Duration::days(1))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CA_KEY_PATH"));
        assert!(!err.contains("secret-looking"));
    }
}
