//! EST (RFC 7030, Enrollment over Secure Transport) for devices: what the routes in
//! `http/est.rs` need besides the application's `DeviceEnrollmentService`: the bodies EST
//! sends (`wire_format`: certs-only PKCS#7, CSR attributes, base64), the device's HTTP Basic
//! credential (`basic_credential`), and the one place EST failures become EST's own error
//! responses (`est_error`: a status, a human-readable `text/plain` reason, RFC 7030 §4.2.3;
//! never problem+json, which EST clients do not read).
//!
//! Must not: hold the CA key (it serves the CA's certificate only), or echo a credential.

mod basic_credential;
mod est_error;
pub mod wire_format;

use std::path::Path;
use std::time::Duration;

use app::pki::{CertificateSerialHex, IssuingCaId};
use app::{DeviceEnrollmentService, EnrollmentError, EnrollmentRefusal, PresentedCertificate};
use x509_parser::prelude::FromDer;

pub use basic_credential::basic_credential;
pub use est_error::EstError;

/// The EST endpoints' configuration and service, built once at start.
pub struct EstServer {
    pub enrollment: DeviceEnrollmentService,
    /// `cacerts`'s body: the fleet CA's certificate as certs-only PKCS#7, base64.
    pub cacerts: String,
    /// `csrattrs`'s body, base64.
    pub csr_attributes: String,
    /// `Retry-After` of a pending enrollment.
    pub retry_after: Duration,
    /// The issuing CA (`CA_CERT_PATH`'s first certificate), DER: the only CA whose
    /// certificates re-enroll, and its id.
    issuing_ca: Vec<u8>,
    issuing_ca_id: IssuingCaId,
}

/// The CA certificate that `cacerts` would serve cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EstSetupError {
    #[error("CA_CERT_PATH {path}: {reason}")]
    CaCertificate { path: String, reason: String },
}

impl EstServer {
    pub fn new(
        enrollment: DeviceEnrollmentService,
        ca_cert_path: &Path,
        retry_after: Duration,
    ) -> Result<Self, EstSetupError> {
        let refused = |reason: String| EstSetupError::CaCertificate {
            path: ca_cert_path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(ca_cert_path).map_err(|e| refused(e.to_string()))?;
        let blocks = pem::parse_many(&text).map_err(|e| refused(e.to_string()))?;
        let certificates: Vec<&[u8]> = blocks
            .iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| block.contents())
            .collect();
        if certificates.is_empty() {
            return Err(refused("holds no PEM CERTIFICATE".into()));
        }
        let (_, issuing_ca) = x509_parser::certificate::X509Certificate::from_der(certificates[0])
            .map_err(|e| refused(format!("its first certificate does not parse: {e}")))?;
        let issuing_ca_id = IssuingCaId::of_public_key(issuing_ca.public_key().raw);
        let cacerts = wire_format::certs_only(&certificates).map_err(|e| refused(e.to_string()))?;
        let csr_attributes =
            wire_format::csr_attributes().expect("the fixed CSR attributes encode");
        Ok(Self {
            enrollment,
            cacerts: wire_format::base64_body(&cacerts),
            csr_attributes: wire_format::base64_body(&csr_attributes),
            retry_after,
            issuing_ca: certificates[0].to_vec(),
            issuing_ca_id,
        })
    }

    /// The client certificate TLS verified (`der`), as the device presents it: its serial
    /// and issuer. Only a certificate the issuing CA signed names a device here (TLS may
    /// trust more CAs than the one that issues devices' certificates).
    pub fn presented(&self, der: &[u8]) -> Result<PresentedCertificate, EstError> {
        let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|_| EstError::NoClientCertificate)?;
        let (_, issuer) = x509_parser::certificate::X509Certificate::from_der(&self.issuing_ca)
            .expect("parsed at start");
        let signed_by_issuer = certificate.issuer() == issuer.subject()
            && certificate
                .verify_signature(Some(issuer.public_key()))
                .is_ok();
        if !signed_by_issuer {
            return Err(EnrollmentError::from(EnrollmentRefusal::UnknownCertificate).into());
        }
        Ok(PresentedCertificate {
            serial: CertificateSerialHex::from_bytes(certificate.raw_serial()),
            issuer: self.issuing_ca_id.clone(),
        })
    }
}
