//! The CA: checks a CSR against policy and signs a device certificate with the key from
//! `CA_CERT_PATH` / `CA_KEY_PATH`. Implements `app::CertificateAuthority`.
//!
//! Policy (a refusal is a domain outcome, `ProvisioningFailed` with a code, never a retry):
//! - the key is ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 4096 bits
//!   (`key_policy_violation`);
//! - the CSR's self-signature verifies (`invalid_signature`);
//! - the subject has exactly one CN and it is the device's serial number
//!   (`subject_mismatch`).
//!
//! The certificate carries only what the CA decides: subject CN = serial number, clientAuth,
//! digitalSignature, not a CA, and where its status is published (a CRL distribution point
//! and an Authority Information Access OCSP URL under `PUBLIC_BASE_URL`, naming this CA:
//! `app::pki`); requested extensions are ignored. Its serial number is derived
//! from the certificate request id, so signing one request twice (two racing deliveries)
//! yields the same serial.
//!
//! The key must be the CA certificate's (checked at start: [`CaLoadError::KeyNotCertificates`]),
//! and each certificate signed is verified against the CA certificate before it is handed
//! out ([`LocalCa::issue_verified`]): one that does not verify is the CA's failure (an outage,
//! retried), never a device's certificate.
//!
//! Checking and signing are CPU-bound: [`BlockingCa`] runs them on Tokio's blocking pool,
//! at most `concurrency` at a time, never on the async runtime's threads.

use std::path::Path;
use std::sync::Arc;

use app::pki::{CrlSigner, CrlSigningError, IssuingCaId, PublicBaseUrl, RevocationListContent};
use app::{CaUnavailable, CertificateAuthority, CertificateRequest};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{FailureCode, IssuedCertificate, ProvisioningFailure, RevocationReason};
use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, CrlDistributionPoint, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SubjectPublicKeyInfo,
};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

#[derive(Debug, thiserror::Error)]
pub enum CaLoadError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Never includes the key material.
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

/// Refuses `key` unless it is the private key of `certificate` (same public key).
pub(crate) fn check_key_is_certificates(
    certificate: &x509_parser::certificate::X509Certificate<'_>,
    key: &KeyPair,
) -> Result<(), CaLoadError> {
    let certified: &[u8] = &certificate.public_key().subject_public_key.data;
    if key.der_bytes() == certified {
        Ok(())
    } else {
        Err(CaLoadError::KeyNotCertificates)
    }
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
    x509_parser::certificate::X509Certificate::from_der(&der).map_err(|_| invalid())?;
    Ok(der)
}

/// What issued certificates contain besides the subject (CN = serial number), the device's
/// key, the validity and `clientAuth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateProfile {
    #[default]
    Standard,
    /// Also a subjectAltName URI `urn:uuid:<device id>`, so relying parties can map a client
    /// certificate to its device without a lookup. Behind the `cert-profile-device-uri`
    /// feature flag: relying parties with strict SAN checks must be ready for it first.
    DeviceUri,
}

/// The CA's certificate and key, the validity and profile of what it issues.
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    /// `CA_CERT_PATH`'s certificate (DER): what each signed certificate is verified against.
    certificate_der: Vec<u8>,
    id: IssuingCaId,
    validity: chrono::Duration,
    profile: CertificateProfile,
    status_locations: Option<StatusLocations>,
}

/// The CRL distribution point and the AIA extension (OCSP) written into every certificate.
struct StatusLocations {
    crl_url: String,
    authority_info_access: CustomExtension,
}

/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const OID_ACCESS_OCSP: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

impl StatusLocations {
    fn new(base: &PublicBaseUrl, ca: &IssuingCaId) -> Self {
        use der::Encode;
        use x509_cert::ext::pkix::name::GeneralName;
        use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
        let ocsp = der::asn1::Ia5String::new(&base.ocsp_url(ca)).expect("a PublicBaseUrl is ASCII");
        let syntax = AuthorityInfoAccessSyntax(vec![AccessDescription {
            access_method: OID_ACCESS_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(ocsp),
        }]);
        let content = syntax.to_der().expect("an AIA of one URI encodes");
        Self {
            crl_url: base.crl_url(ca),
            authority_info_access: CustomExtension::from_oid_content(
                OID_AUTHORITY_INFO_ACCESS,
                content,
            ),
        }
    }
}

impl LocalCa {
    pub fn from_pem_files(
        cert_path: &Path,
        key_path: &Path,
        validity: chrono::Duration,
    ) -> Result<Self, CaLoadError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CaLoadError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read(cert_path)?, &read(key_path)?, validity)
    }

    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        validity: chrono::Duration,
    ) -> Result<Self, CaLoadError> {
        let key = KeyPair::from_pem(key_pem).map_err(|_| CaLoadError::Invalid {
            what: "CA_KEY_PATH",
            expected: "private key (PKCS#8)",
        })?;
        let certificate_der = ca_certificate_der(cert_pem)?;
        let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(
            &certificate_der,
        )
        .map_err(|_| CaLoadError::Invalid {
            what: "CA_CERT_PATH",
            expected: "CA certificate",
        })?;
        check_key_is_certificates(&certificate, &key)?;
        let id = IssuingCaId::of_public_key(&key.subject_public_key_info());
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|_| CaLoadError::Invalid {
            what: "CA_CERT_PATH",
            expected: "CA certificate",
        })?;
        Ok(Self {
            issuer,
            certificate_der,
            id,
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

    /// Checks the request and signs it, or says why not. Pure CPU; call it off the runtime.
    pub fn issue(
        &self,
        request: &CertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, ProvisioningFailure> {
        let spki_der = check_csr(request)?;
        let not_before = now - chrono::Duration::minutes(5); // tolerate devices' clock skew
        let not_after = now + self.validity;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, request.serial_number.as_str());
        params.distinguished_name = subject;
        params.serial_number = Some(certificate_serial(request).into());
        params.not_before = to_time(not_before);
        params.not_after = to_time(not_after);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        if let Some(locations) = &self.status_locations {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![locations.crl_url.clone()],
            }];
            params.custom_extensions = vec![locations.authority_info_access.clone()];
        }
        if self.profile == CertificateProfile::DeviceUri {
            let uri = Ia5String::try_from(format!("urn:uuid:{}", request.device_id))
                .expect("a UUID URN is ASCII");
            params.subject_alt_names = vec![SanType::URI(uri)];
        }
        let public_key = SubjectPublicKeyInfo::from_der(&spki_der)
            .map_err(|_| failure(FailureCode::KeyPolicyViolation, "unsupported public key"))?;
        let certificate = params.signed_by(&public_key, &self.issuer).map_err(|_| {
            failure(
                FailureCode::MalformedCsr,
                "the CSR's key cannot be certified",
            )
        })?;
        let der = certificate.der();
        Ok(IssuedCertificate {
            pem: certificate.pem(),
            serial: hex::encode(certificate_serial(request)),
            fingerprint_sha256: hex::encode(Sha256::digest(der)),
            // X.509 times have second precision: report what the certificate says.
            not_before: truncate_to_seconds(not_before),
            not_after: truncate_to_seconds(not_after),
            issuer: Some(self.id.clone()),
        })
    }
}

impl LocalCa {
    /// [`LocalCa::issue`], then the certificate's signature verified against the CA
    /// certificate (`CA_CERT_PATH`) before anyone sees it. One that does not verify would
    /// fail every relying party's check: it is the CA's failure, an outage (retried, and
    /// counted in `ca_signature_failures_total`), never a device's certificate.
    pub fn issue_verified(
        &self,
        request: &CertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<Result<IssuedCertificate, ProvisioningFailure>, CaUnavailable> {
        let issued = match self.issue(request, now) {
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
        use x509_parser::certificate::X509Certificate;
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

impl CrlSigner for LocalCa {
    fn ca(&self) -> &IssuingCaId {
        &self.id
    }

    /// A full v2 CRL (RFC 5280 §5): CRL number, authority key identifier, and for each entry
    /// its serial, revocation time and reason code; signed with the CA's key.
    fn sign_crl(&self, content: &RevocationListContent) -> Result<Vec<u8>, CrlSigningError> {
        let revoked_certs = content
            .entries
            .iter()
            .map(|entry| {
                let serial = hex::decode(&entry.serial).map_err(|e| CrlSigningError(e.into()))?;
                Ok(RevokedCertParams {
                    serial_number: serial.into(),
                    revocation_time: to_time(entry.revoked_at),
                    reason_code: Some(crl_reason(entry.reason)),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CrlSigningError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_time(content.this_update),
            next_update: to_time(content.next_update),
            crl_number: content.number.into(),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| CrlSigningError(e.into()))?;
        Ok(crl.der().to_vec())
    }
}

/// RFC 5280's reason code for a domain reason; the same names, so one arm each.
fn crl_reason(reason: RevocationReason) -> rcgen::RevocationReason {
    match reason {
        RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
    }
}

/// Verifies the CSR and the policy; returns the DER of its SubjectPublicKeyInfo.
fn check_csr(request: &CertificateRequest) -> Result<Vec<u8>, ProvisioningFailure> {
    let malformed = || failure(FailureCode::MalformedCsr, "the CSR cannot be decoded");
    let pem = ::pem::parse(request.csr.as_pem()).map_err(|_| malformed())?;
    let (_, csr) = X509CertificationRequest::from_der(pem.contents()).map_err(|_| malformed())?;
    let info = &csr.certification_request_info;
    // Policy first: it is cheap, and keys we refuse may be ones the verifier cannot handle.
    check_key_policy(&info.subject_pki)?;
    csr.verify_signature().map_err(|_| {
        failure(
            FailureCode::InvalidSignature,
            "the CSR's signature does not verify with its own public key",
        )
    })?;
    request
        .csr
        .check_subject(&request.serial_number)
        .map_err(|e| failure(FailureCode::SubjectMismatch, &e.to_string()))?;
    Ok(info.subject_pki.raw.to_vec())
}

fn check_key_policy(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<(), ProvisioningFailure> {
    let refuse = |detail: &str| failure(FailureCode::KeyPolicyViolation, detail);
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 || c == OID_NIST_EC_P384 => Ok(()),
            _ => Err(refuse("EC keys must be on P-256 or P-384")),
        };
    }
    if *algorithm == OID_SIG_ED25519 {
        return Ok(());
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if (2048..=4096).contains(&rsa.key_size()) => Ok(()),
            _ => Err(refuse("RSA keys must be 2048 to 4096 bits")),
        };
    }
    Err(refuse(
        "the key type is not allowed (ECDSA P-256/P-384, Ed25519 or RSA 2048-4096)",
    ))
}

/// 16 bytes from SHA-256 of the request id, high bit clear (a positive DER INTEGER).
fn certificate_serial(request: &CertificateRequest) -> Vec<u8> {
    let digest = Sha256::digest(request.request_id.as_uuid().as_bytes());
    let mut serial = digest[..16].to_vec();
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1; // keep 16 significant bytes
    }
    serial
}

fn failure(code: FailureCode, detail: &str) -> ProvisioningFailure {
    ProvisioningFailure {
        code,
        detail: detail.to_owned(),
    }
}

fn to_time(at: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp())
        .expect("a timestamp within X.509's range")
}

fn truncate_to_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).expect("in range")
}

/// [`LocalCa`] on the blocking pool, bounded.
pub struct BlockingCa {
    ca: Arc<LocalCa>,
    permits: Arc<Semaphore>,
}

impl BlockingCa {
    pub fn new(ca: Arc<LocalCa>, concurrency: usize) -> Self {
        Self {
            ca,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }
}

#[async_trait]
impl CertificateAuthority for BlockingCa {
    async fn issue(
        &self,
        request: CertificateRequest,
    ) -> Result<Result<IssuedCertificate, ProvisioningFailure>, CaUnavailable> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CaUnavailable("the CA is shutting down".into()))?;
        let ca = self.ca.clone();
        tokio::task::spawn_blocking(move || ca.issue_verified(&request, Utc::now()))
            .await
            .map_err(|e| CaUnavailable(format!("the signing task failed: {e}")))?
    }
}

/// A new self-signed ECDSA P-256 CA for local development (`worker dev-ca`). Returns
/// (certificate PEM, private key PEM).
pub fn generate_dev_ca(common_name: &str) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = Utc::now();
    params.not_before = to_time(now - chrono::Duration::minutes(5));
    params.not_after = to_time(now + chrono::Duration::days(3650));
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::CertificateRequest;
    use domain::{CertificateRequestId, CertificateSigningRequest, DeviceId, SerialNumber};
    use x509_parser::certificate::X509Certificate;

    fn ca() -> (LocalCa, String) {
        let (cert, key) = generate_dev_ca("unit-test CA").unwrap();
        (
            LocalCa::from_pem(&cert, &key, chrono::Duration::days(30)).unwrap(),
            cert,
        )
    }

    fn request(serial: &str, csr_pem: &str) -> CertificateRequest {
        CertificateRequest {
            device_id: DeviceId::from_uuid(uuid::Uuid::from_u128(7)),
            request_id: CertificateRequestId::from_uuid(uuid::Uuid::from_u128(42)),
            serial_number: SerialNumber::parse(serial).unwrap(),
            csr: CertificateSigningRequest::from_pem(csr_pem).unwrap(),
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

    fn refusal(ca: &LocalCa, request: &CertificateRequest) -> FailureCode {
        ca.issue(request, Utc::now()).unwrap_err().code
    }

    #[test]
    fn certificates_name_the_crl_and_ocsp_urls_of_their_ca() {
        use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
        let (ca, _) = ca();
        let base = PublicBaseUrl::parse("https://pki.example.com").unwrap();
        let ca = ca.with_status_urls(&base);
        let issued = ca
            .issue(
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
            let issued = ca.issue(&request, Utc::now()).unwrap();
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
        let standard = ca.issue(&request, Utc::now()).unwrap();
        assert!(subject_alt_names(&standard).is_empty());

        let ca = ca.with_profile(CertificateProfile::DeviceUri);
        let with_uri = ca.issue(&request, Utc::now()).unwrap();
        assert_eq!(
            subject_alt_names(&with_uri),
            [format!("URI(urn:uuid:{})", request.device_id)]
        );
    }

    #[test]
    fn the_same_request_gets_the_same_certificate_serial() {
        let (ca, _) = ca();
        let request = request("SN-1", &csr("SN-1", &rcgen::PKCS_ECDSA_P256_SHA256));
        let a = ca.issue(&request, Utc::now()).unwrap();
        let b = ca.issue(&request, Utc::now()).unwrap();
        assert_eq!(a.serial, b.serial);
    }

    #[test]
    fn accepts_rsa_2048_and_refuses_small_rsa_and_other_curves() {
        let (ca, _) = ca();
        let rsa2048 = include_str!("../tests/fixtures/rsa2048.csr");
        assert!(ca.issue(&request("SN-RSA", rsa2048), Utc::now()).is_ok());
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
        let detail = ca
            .issue(&request("SN-1", &other), Utc::now())
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
        let err = LocalCa::from_pem(&cert, &other_key, chrono::Duration::days(1))
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
        let err = LocalCa::from_pem(&cert, "secret-looking text", chrono::Duration::days(1))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CA_KEY_PATH"));
        assert!(!err.contains("secret-looking"));
    }
}
