//! Which certificates this service issued to devices: the platform's issuing CA's
//! (`CA_CERT_PATH`) and every tenant's issuing CAs' (`tls::TenantClientCas`, read from their
//! events while the api runs). A device that authenticates with its certificate (EST's
//! `simplereenroll` over mutual TLS, CMP's `kur` and `rr` by their signature) is named by
//! the certificate's serial and issuer here; whether that certificate may still act for the
//! device is the device's decision, from its events.
//!
//! Must not: trust a certificate for anything but naming a device (TLS or the CMP signature
//! check verified its holder; dates are the caller's to check where TLS did not).

use std::sync::Arc;

use app::PresentedCertificate;
use pki::{CaCertificates, NotIssuedHere};

use crate::tls::TenantClientCas;

pub struct DeviceCertificates {
    /// `CA_CERT_PATH`'s certificates: the issuing CA's first.
    platform: CaCertificates,
    tenants: Arc<TenantClientCas>,
}

/// Why a presented certificate names no device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotADeviceCertificate {
    /// It is not a DER X.509 certificate.
    Unreadable,
    /// No CA of this service issued it.
    OtherIssuer,
}

impl DeviceCertificates {
    pub fn new(platform: CaCertificates, tenants: Arc<TenantClientCas>) -> Self {
        Self { platform, tenants }
    }

    /// The platform's certificates, DER, the issuing CA's first: what devices of tenants
    /// without CAs chain to.
    pub fn platform_chain(&self) -> Vec<Vec<u8>> {
        self.platform.chain_der()
    }

    /// The platform's certificates as EST's `cacerts` body (certs-only PKCS#7, DER).
    pub fn platform_certs_only(&self) -> Result<Vec<u8>, der::Error> {
        self.platform.certs_only()
    }

    /// The certificate `der` as a device presents it: its serial and issuer, when the
    /// platform's issuing CA or a tenant's issuing CA signed it.
    pub fn presented(&self, der: &[u8]) -> Result<PresentedCertificate, NotADeviceCertificate> {
        match self.platform.issued(der) {
            Ok(serial) => Ok(PresentedCertificate {
                serial,
                issuer: self.platform.issuing_ca_id().clone(),
            }),
            Err(NotIssuedHere::Unreadable) => Err(NotADeviceCertificate::Unreadable),
            Err(NotIssuedHere::OtherIssuer) => self
                .tenants
                .presented(der)
                .ok_or(NotADeviceCertificate::OtherIssuer),
        }
    }
}
