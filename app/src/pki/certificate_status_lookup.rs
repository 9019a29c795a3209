//! Port: what the CA issued and revoked, by serial, as the `certificate_status` read model
//! holds it; what the OCSP responder answers from. Public information (relying parties may
//! ask about any certificate), so it is not scoped to a tenant.

use async_trait::async_trait;
use domain::{DeviceId, Revocation, TenantId};

use super::CertificateSerialHex;
use crate::StoreError;

/// A certificate the CA issued, and its revocation once there is one (final).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatusRecord {
    pub serial: CertificateSerialHex,
    /// The device it was issued to, and its tenant.
    pub device_id: DeviceId,
    pub tenant: TenantId,
    /// The CA that issued it; `None` for a certificate recorded before certificates named
    /// their issuer (the platform's CA issued those).
    pub issuer: Option<super::IssuingCaId>,
    pub revocation: Option<Revocation>,
}

#[async_trait]
pub trait CertificateStatusLookup: Send + Sync + 'static {
    /// The records of those of `serials` the CA issued, in any order; a serial it never
    /// issued has none. One indexed read, however many serials (callers bound them).
    async fn statuses_of(
        &self,
        serials: &[CertificateSerialHex],
    ) -> Result<Vec<CertificateStatusRecord>, StoreError>;
}
