//! Version 2 of the stored forms of the two events that carry a certificate request,
//! `DeviceRegistered` and `CertificateRenewalRequested`, and their upcasters from version 1.
//!
//! What changed, and why:
//! - **The request has a form**: `"request": {"pkcs10": "<PEM>"}`,
//!   `"request": {"crmf": "<base64 of the CertReqMsg's DER>"}` or
//!   `"request": {"verified_pkcs10": {"public_key": "<base64 SPKI>", "common_names": […],
//!   "sha256": "<hex>"}}`. Version 1 had `"csr": "<PEM>"`, which only a PKCS#10 request
//!   fills; CMP's `ir`, `cr` and `kur` carry CRMF requests, which are kept as sent, since their
//!   proof of possession signs them as sent; SCEP's CSRs hold the device's key as their
//!   challenge password, so only what certifying them needs is kept (`domain::VerifiedCsr`).
//!   A version 1 row reads as a PKCS#10 request.
//! - **The payload is the event's data**, as `CertificateIssued`'s since its version 2: the
//!   type is the row's `event_type`.

use std::collections::BTreeMap;

use domain::{
    CertificateRequestId, CertificateSigningRequest, CrmfRequest, DeviceEvent, DeviceModel, Labels,
    SerialNumber, SigningRequest, TenantId, VerifiedCsr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::device_forms_v1::{CertificateRenewalRequestedV1, DeviceRegisteredV1};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DeviceRegisteredV2 {
    tenant: String,
    serial_number: String,
    model: String,
    labels: BTreeMap<String, String>,
    request: StoredRequestV2,
    request_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CertificateRenewalRequestedV2 {
    request: StoredRequestV2,
    request_id: Uuid,
}

/// A certificate request in its form: exactly one key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum StoredRequestV2 {
    /// PEM, as the client sent it.
    Pkcs10(String),
    /// The `CertReqMsg`'s DER, standard base64 (a value that is not is not this form).
    Crmf(#[serde(with = "standard_base64")] Vec<u8>),
    VerifiedPkcs10(VerifiedPkcs10V2),
}

/// A CSR verified where it arrived: its key, its subject's CNs, its digest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifiedPkcs10V2 {
    #[serde(with = "standard_base64")]
    public_key: Vec<u8>,
    common_names: Vec<String>,
    /// Lowercase hex of the 32 bytes.
    sha256: String,
}

mod standard_base64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(der: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(der))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl StoredRequestV2 {
    fn of(request: &SigningRequest) -> Self {
        match request {
            SigningRequest::Pkcs10(csr) => Self::Pkcs10(csr.as_pem().to_owned()),
            SigningRequest::Crmf(crmf) => Self::Crmf(crmf.as_der().to_vec()),
            SigningRequest::VerifiedPkcs10(verified) => Self::VerifiedPkcs10(VerifiedPkcs10V2 {
                public_key: verified.public_key_der().to_vec(),
                common_names: verified.common_names().to_vec(),
                sha256: hex::encode(verified.sha256()),
            }),
        }
    }

    fn into_recorded(self) -> Result<SigningRequest, NotADigest> {
        Ok(match self {
            Self::Pkcs10(pem) => CertificateSigningRequest::recorded(pem).into(),
            Self::Crmf(der) => CrmfRequest::recorded(der).into(),
            Self::VerifiedPkcs10(verified) => {
                let sha256 = hex::decode(&verified.sha256)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or(NotADigest)?;
                SigningRequest::VerifiedPkcs10(VerifiedCsr::recorded(
                    verified.public_key,
                    verified.common_names,
                    sha256,
                ))
            }
        })
    }
}

/// A stored verified CSR whose `sha256` is not 32 bytes of hex: not this form.
#[derive(Debug)]
pub(super) struct NotADigest;

/// The upcaster: a version 1 row's CSR is a PKCS#10 request.
impl From<DeviceRegisteredV1> for DeviceRegisteredV2 {
    fn from(v1: DeviceRegisteredV1) -> Self {
        Self {
            tenant: v1.tenant,
            serial_number: v1.serial_number,
            model: v1.model,
            labels: v1.labels,
            request: StoredRequestV2::Pkcs10(v1.csr),
            request_id: v1.request_id,
        }
    }
}

/// The upcaster: a version 1 row's CSR is a PKCS#10 request.
impl From<CertificateRenewalRequestedV1> for CertificateRenewalRequestedV2 {
    fn from(v1: CertificateRenewalRequestedV1) -> Self {
        Self {
            request: StoredRequestV2::Pkcs10(v1.csr),
            request_id: v1.request_id,
        }
    }
}

impl DeviceRegisteredV2 {
    /// `None` unless `event` is a `DeviceRegistered`.
    pub(super) fn of(event: &DeviceEvent) -> Option<Self> {
        let DeviceEvent::DeviceRegistered {
            tenant,
            serial_number,
            model,
            labels,
            request,
            request_id,
        } = event
        else {
            return None;
        };
        Some(Self {
            tenant: tenant.as_str().to_owned(),
            serial_number: serial_number.as_str().to_owned(),
            model: model.as_str().to_owned(),
            labels: labels.as_map().clone(),
            request: StoredRequestV2::of(request),
            request_id: request_id.as_uuid(),
        })
    }

    pub(super) fn into_recorded(self) -> Result<DeviceEvent, NotADigest> {
        Ok(DeviceEvent::DeviceRegistered {
            tenant: TenantId::recorded(self.tenant),
            serial_number: SerialNumber::recorded(self.serial_number),
            model: DeviceModel::recorded(self.model),
            labels: Labels::recorded(self.labels),
            request: self.request.into_recorded()?,
            request_id: CertificateRequestId::from_uuid(self.request_id),
        })
    }
}

impl CertificateRenewalRequestedV2 {
    /// `None` unless `event` is a `CertificateRenewalRequested`.
    pub(super) fn of(event: &DeviceEvent) -> Option<Self> {
        let DeviceEvent::CertificateRenewalRequested {
            request,
            request_id,
        } = event
        else {
            return None;
        };
        Some(Self {
            request: StoredRequestV2::of(request),
            request_id: request_id.as_uuid(),
        })
    }

    pub(super) fn into_recorded(self) -> Result<DeviceEvent, NotADigest> {
        Ok(DeviceEvent::CertificateRenewalRequested {
            request: self.request.into_recorded()?,
            request_id: CertificateRequestId::from_uuid(self.request_id),
        })
    }
}
