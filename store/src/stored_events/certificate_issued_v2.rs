//! Version 2 of `CertificateIssued`'s stored form, and its upcaster from version 1.
//!
//! What changed, and why:
//! - **The payload is the event's data**, `{"request_id": …, "certificate": {…}}`: the type
//!   is the row's `event_type`. Version 1 wrapped it in an object keyed by the type (the
//!   domain enum's serde shape), saying twice what one column says.
//! - **The issuer is always written**: `"issuer": "<ca id>"`, or `null` for a certificate
//!   recorded before certificates named their issuing CA. Version 1 left the key out for
//!   those, so a row that lost its issuer by mistake read as an old certificate; in version 2
//!   a missing key is an unreadable row, and only an explicit `null` means "before issuers".
//!
//! The domain event is unchanged: version 1 rows read as they did, through [`From`] below.

use chrono::{DateTime, Utc};
use domain::{CertificateRequestId, DeviceEvent, IssuedCertificate, IssuingCaId};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::device_forms_v1::CertificateIssuedV1;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CertificateIssuedV2 {
    request_id: Uuid,
    certificate: IssuedCertificateV2,
}

#[derive(Debug, Serialize, Deserialize)]
struct IssuedCertificateV2 {
    pem: String,
    serial: String,
    fingerprint_sha256: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    /// Required, `null` allowed (serde would otherwise read a missing `Option` as `None`).
    #[serde(deserialize_with = "present")]
    issuer: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::deserialize(deserializer)
}

/// The upcaster: a version 1 row in version 2's form. An absent issuer becomes the explicit
/// `null` of a certificate recorded before issuers were.
impl From<CertificateIssuedV1> for CertificateIssuedV2 {
    fn from(v1: CertificateIssuedV1) -> Self {
        let certificate = v1.certificate;
        Self {
            request_id: v1.request_id,
            certificate: IssuedCertificateV2 {
                pem: certificate.pem,
                serial: certificate.serial,
                fingerprint_sha256: certificate.fingerprint_sha256,
                not_before: certificate.not_before,
                not_after: certificate.not_after,
                issuer: certificate.issuer,
            },
        }
    }
}

impl CertificateIssuedV2 {
    pub(super) fn of(request_id: CertificateRequestId, certificate: &IssuedCertificate) -> Self {
        Self {
            request_id: request_id.as_uuid(),
            certificate: IssuedCertificateV2 {
                pem: certificate.pem.clone(),
                serial: certificate.serial.clone(),
                fingerprint_sha256: certificate.fingerprint_sha256.clone(),
                not_before: certificate.not_before,
                not_after: certificate.not_after,
                issuer: certificate.issuer.as_ref().map(|id| id.as_str().to_owned()),
            },
        }
    }

    pub(super) fn into_recorded(self) -> DeviceEvent {
        let certificate = self.certificate;
        DeviceEvent::CertificateIssued {
            request_id: CertificateRequestId::from_uuid(self.request_id),
            certificate: IssuedCertificate {
                pem: certificate.pem,
                serial: certificate.serial,
                fingerprint_sha256: certificate.fingerprint_sha256,
                not_before: certificate.not_before,
                not_after: certificate.not_after,
                issuer: certificate.issuer.map(IssuingCaId::recorded),
            },
        }
    }
}
