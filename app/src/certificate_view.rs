//! A device's current certificate as the read side shows it: what the CA issued, and its
//! revocation once there is one. Whether it has expired is a question of when it is asked
//! ([`CertificateView::status_at`]), so it is computed when read, never stored.

use chrono::{DateTime, Utc};
use domain::{IssuedCertificate, Revocation};
use serde::{Deserialize, Serialize};

/// Stored in the device read model's `certificate` column: the issued certificate's fields,
/// with `revocation` alongside (absent in rows written before revocations existed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    #[serde(flatten)]
    pub issued: IssuedCertificate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// Whether relying parties should trust the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    Live,
    Revoked,
    /// Past its `not_after` (and not revoked).
    Expired,
}

impl CertificateView {
    pub fn issued(issued: IssuedCertificate) -> Self {
        Self {
            issued,
            revocation: None,
        }
    }

    /// Issued and not revoked (whatever its dates): what the device can still renew from.
    pub fn is_live(&self) -> bool {
        self.revocation.is_none()
    }

    /// Its status at `now`: a revocation first, then the validity period.
    pub fn status_at(&self, now: DateTime<Utc>) -> CertificateStatus {
        if self.revocation.is_some() {
            CertificateStatus::Revoked
        } else if now >= self.issued.not_after {
            CertificateStatus::Expired
        } else {
            CertificateStatus::Live
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use domain::RevocationReason;

    fn view() -> CertificateView {
        CertificateView::issued(IssuedCertificate {
            pem: "pem".into(),
            serial: "01".into(),
            fingerprint_sha256: "00".into(),
            not_before: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            not_after: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
            issuer: None,
        })
    }

    #[test]
    fn a_certificate_is_live_until_revoked_or_past_its_end() {
        let during = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let after = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let mut certificate = view();
        assert_eq!(certificate.status_at(during), CertificateStatus::Live);
        assert_eq!(certificate.status_at(after), CertificateStatus::Expired);
        certificate.revocation = Some(Revocation {
            serial: "01".into(),
            reason: RevocationReason::KeyCompromise,
            revoked_at: during,
        });
        assert_eq!(certificate.status_at(after), CertificateStatus::Revoked);
    }

    #[test]
    fn rows_written_before_revocations_existed_still_read() {
        let old = serde_json::to_value(&view().issued).unwrap();
        let read: CertificateView = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(read, view());
        assert_eq!(serde_json::to_value(&read).unwrap(), old);
    }
}
