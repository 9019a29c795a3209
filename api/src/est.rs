//! EST (RFC 7030, Enrollment over Secure Transport) for devices: what the routes in
//! `http/est.rs` need besides the application's `DeviceEnrollmentService`: the bodies EST
//! sends (`pki::est_wire_format`: certs-only PKCS#7, CSR attributes, base64), the device's HTTP Basic
//! credential (`basic_credential`), and the one place EST failures become EST's own error
//! responses (`est_error`: a status, a human-readable `text/plain` reason, RFC 7030 §4.2.3;
//! never problem+json, which EST clients do not read).
//!
//! Must not: hold the CA key (it serves the CA's certificate only), or echo a credential.

mod basic_credential;
mod est_error;

use std::sync::Arc;
use std::time::Duration;

use app::{DeviceEnrollmentService, EnrollmentError, EnrollmentRefusal, PresentedCertificate};
use pki::est_wire_format as wire_format;

use crate::device_certificates::{DeviceCertificates, NotADeviceCertificate};

pub use basic_credential::basic_credential;
pub use est_error::EstError;

/// The EST endpoints' configuration and service, built once at start.
pub struct EstServer {
    pub enrollment: Arc<DeviceEnrollmentService>,
    /// `cacerts`'s body: the fleet CA's certificate as certs-only PKCS#7, base64.
    pub cacerts: String,
    /// `csrattrs`'s body, base64.
    pub csr_attributes: String,
    /// `Retry-After` of a pending enrollment.
    pub retry_after: Duration,
    /// The certificates that re-enroll: the platform CA's and tenants' CAs'.
    certificates: Arc<DeviceCertificates>,
}

impl EstServer {
    pub fn new(
        enrollment: Arc<DeviceEnrollmentService>,
        certificates: Arc<DeviceCertificates>,
        retry_after: Duration,
    ) -> Result<Self, der::Error> {
        let cacerts = certificates.platform_certs_only()?;
        let csr_attributes =
            wire_format::csr_attributes().expect("the fixed CSR attributes encode");
        Ok(Self {
            enrollment,
            cacerts: wire_format::base64_body(&cacerts),
            csr_attributes: wire_format::base64_body(&csr_attributes),
            retry_after,
            certificates,
        })
    }

    /// `cacerts`'s body for the group `label` when its tenant has CAs of its own: their chain
    /// as certs-only PKCS#7, base64.
    pub async fn tenant_cacerts(
        &self,
        label: &domain::EnrollmentGroupName,
    ) -> Result<Option<String>, EstError> {
        let Some(chain) = self
            .enrollment
            .ca_chain(label)
            .await
            .map_err(EstError::from)?
        else {
            return Ok(None);
        };
        let ders: Vec<Vec<u8>> = chain
            .iter()
            .filter_map(|pem| ::pem::parse(pem).ok())
            .map(|block| block.into_contents())
            .collect();
        let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
        let body = wire_format::certs_only(&refs).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a tenant's CA chain");
            EstError::Internal
        })?;
        Ok(Some(wire_format::base64_body(&body)))
    }

    /// The client certificate TLS verified (`der`), as the device presents it: its serial
    /// and issuer. Only a certificate the platform's issuing CA or a tenant's issuing CA
    /// signed names a device here (TLS may trust more CAs than those that issue devices'
    /// certificates).
    pub fn presented(&self, der: &[u8]) -> Result<PresentedCertificate, EstError> {
        self.certificates
            .presented(der)
            .map_err(|not_ours| match not_ours {
                NotADeviceCertificate::Unreadable => EstError::NoClientCertificate,
                NotADeviceCertificate::OtherIssuer => {
                    EnrollmentError::from(EnrollmentRefusal::UnknownCertificate).into()
                }
            })
    }
}
