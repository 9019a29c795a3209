//! The public event contract: what analysts, downstream systems and our own workers see of a
//! stored event, on NATS and over HTTP (`/v1/events`, `/v1/devices/{id}/history`).
//!
//! It is deliberately a separate type from `domain::DeviceEvent`: the stored event may gain
//! versions and fields, the envelope (`specversion` "1.0", CloudEvents-style) changes only by
//! adding a new `dataversion`. Documented in `docs/events.md`; change both together.
//!
//! Everything downstream of the event store (relay, provisioner, projectors, feed) works on
//! [`EventEnvelope`], whether the event came over NATS or was read back from Postgres (a
//! projector filling a gap), so there is one path from event to effect.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use domain::{
    CertificateRequestId, CertificateSigningRequest, CrmfRequest, DecommissionReason, DeviceEvent,
    DeviceId, DeviceModel, IssuedCertificate, Labels, LifecycleStep, ProvisioningFailure,
    Revocation, RevocationReason, SerialNumber, SigningRequest, TenantId, VerifiedCsr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A place in the gap-safe commit order of all events: `(transaction id, position)`.
/// Every event committed later sorts after every position already read (see
/// `migrations/20261124000001_event_store.sql`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitPosition {
    pub transaction_id: u64,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor issued by this service")]
pub struct InvalidCursor;

impl CommitPosition {
    /// Before every event.
    pub const START: Self = Self {
        transaction_id: 0,
        position: 0,
    };

    /// The opaque cursor clients page with: 16 bytes, base64url. Opaque on purpose, so that
    /// how commit order is represented can change without breaking clients.
    pub fn to_cursor(self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.transaction_id.to_be_bytes());
        bytes[8..].copy_from_slice(&self.position.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn from_cursor(cursor: &str) -> Result<Self, InvalidCursor> {
        if cursor.len() != 22 {
            return Err(InvalidCursor);
        }
        let bytes: [u8; 16] = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| InvalidCursor)?
            .try_into()
            .map_err(|_| InvalidCursor)?;
        let position = i64::from_be_bytes(bytes[8..].try_into().expect("8 bytes"));
        if position < 0 {
            return Err(InvalidCursor);
        }
        Ok(Self {
            transaction_id: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            position,
        })
    }
}

impl fmt::Display for CommitPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_cursor())
    }
}

/// An event as the event store holds it, with where it stands in commit order.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub device_id: DeviceId,
    pub sequence: u64,
    pub tenant: TenantId,
    pub event: DeviceEvent,
    /// The command's W3C trace context, when it had one.
    pub traceparent: Option<String>,
    pub position: CommitPosition,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Stable across relays, retries and replays: the NATS `Nats-Msg-Id` and the envelope's
    /// `id`, derived from the device id and sequence, which the event store keeps unique.
    pub fn event_id(&self) -> Uuid {
        event_id(self.device_id, self.sequence)
    }

    pub fn to_envelope(&self) -> EventEnvelope {
        self.clone().into_envelope()
    }

    /// Like [`Self::to_envelope`], without copying the event (the feed's hot path).
    pub fn into_envelope(self) -> EventEnvelope {
        EventEnvelope {
            specversion: "1.0".to_owned(),
            id: self.event_id(),
            source: format!("/tenants/{}/devices", self.tenant),
            subject: self.device_id,
            time: self.recorded_at,
            datacontenttype: "application/json".to_owned(),
            dataversion: "1".to_owned(),
            tenant: self.tenant,
            sequence: self.sequence,
            position: self.position.to_cursor(),
            event: PublicEvent::from_domain(self.event),
        }
    }
}

/// The id of a device's `sequence`-th event.
pub fn event_id(device_id: DeviceId, sequence: u64) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_0f4e_54a5_4b2f_9a47_3c2b_07e5_e1a1);
    Uuid::new_v5(
        &NAMESPACE,
        format!("{}/{}", device_id.as_uuid(), sequence).as_bytes(),
    )
}

/// Version 1 of the public envelope (CloudEvents 1.0 attributes plus extensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventEnvelope {
    pub specversion: String,
    pub id: Uuid,
    pub source: String,
    /// The device id.
    pub subject: DeviceId,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// The version of `data`'s shape for this `type`.
    pub dataversion: String,
    pub tenant: TenantId,
    /// The device's version after this event.
    pub sequence: u64,
    /// Commit-order cursor (opaque): `GET /v1/events?after=<position>` resumes after it.
    pub position: String,
    /// `type` and `data`.
    #[serde(flatten)]
    pub event: PublicEvent,
}

impl EventEnvelope {
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}

/// The `type` and `data` of an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "data")]
pub enum PublicEvent {
    DeviceRegistered {
        serial_number: SerialNumber,
        model: DeviceModel,
        labels: Labels,
        /// The PKCS#10 request (HTTP API, EST, CMP's `p10cr`); absent for a CRMF request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        csr: Option<CertificateSigningRequest>,
        /// The CRMF request (CMP's `ir`, `cr`, `kur`), when the request was not a CSR.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        crmf: Option<CrmfRequest>,
        /// A CSR verified where it arrived and kept without its attributes (SCEP's, whose
        /// challenge password is the device's key): its key, CNs and digest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        verified_csr: Option<VerifiedCsr>,
        request_id: CertificateRequestId,
    },
    CertificateRenewalRequested {
        /// As in `DeviceRegistered`: exactly one of `csr`, `crmf` and `verified_csr`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        csr: Option<CertificateSigningRequest>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        crmf: Option<CrmfRequest>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        verified_csr: Option<VerifiedCsr>,
        request_id: CertificateRequestId,
    },
    CertificateIssued {
        request_id: CertificateRequestId,
        certificate: IssuedCertificate,
    },
    ProvisioningFailed {
        request_id: CertificateRequestId,
        failure: ProvisioningFailure,
    },
    DeviceDecommissioned {
        reason: DecommissionReason,
    },
    /// The certificate with this serial is revoked (explicitly, by a decommission, or
    /// superseded by a renewal's certificate).
    CertificateRevoked {
        /// The revoked certificate's serial number, lowercase hex.
        serial: String,
        /// RFC 5280's name for the reason (`keyCompromise`, `superseded`, …).
        reason: RevocationReason,
        /// From when the certificate is not to be trusted.
        revoked_at: DateTime<Utc>,
    },
}

/// A request as the envelope shows it: in `csr`, `crmf` or `verified_csr`.
#[derive(Default)]
struct PublicRequest {
    csr: Option<CertificateSigningRequest>,
    crmf: Option<CrmfRequest>,
    verified_csr: Option<VerifiedCsr>,
}

fn public_request(request: SigningRequest) -> PublicRequest {
    match request {
        SigningRequest::Pkcs10(csr) => PublicRequest {
            csr: Some(csr),
            ..PublicRequest::default()
        },
        SigningRequest::Crmf(crmf) => PublicRequest {
            crmf: Some(crmf),
            ..PublicRequest::default()
        },
        SigningRequest::VerifiedPkcs10(verified) => PublicRequest {
            verified_csr: Some(verified),
            ..PublicRequest::default()
        },
    }
}

impl PublicEvent {
    pub const DEVICE_REGISTERED: &'static str = "DeviceRegistered";
    pub const CERTIFICATE_RENEWAL_REQUESTED: &'static str = "CertificateRenewalRequested";
    pub const CERTIFICATE_ISSUED: &'static str = "CertificateIssued";
    pub const PROVISIONING_FAILED: &'static str = "ProvisioningFailed";
    pub const DEVICE_DECOMMISSIONED: &'static str = "DeviceDecommissioned";
    pub const CERTIFICATE_REVOKED: &'static str = "CertificateRevoked";

    /// Every event type, as it appears in `type` and in NATS subjects.
    pub const TYPES: [&'static str; 6] = [
        Self::DEVICE_REGISTERED,
        Self::CERTIFICATE_RENEWAL_REQUESTED,
        Self::CERTIFICATE_ISSUED,
        Self::PROVISIONING_FAILED,
        Self::DEVICE_DECOMMISSIONED,
        Self::CERTIFICATE_REVOKED,
    ];

    pub fn event_type(&self) -> &'static str {
        match self {
            Self::DeviceRegistered { .. } => Self::DEVICE_REGISTERED,
            Self::CertificateRenewalRequested { .. } => Self::CERTIFICATE_RENEWAL_REQUESTED,
            Self::CertificateIssued { .. } => Self::CERTIFICATE_ISSUED,
            Self::ProvisioningFailed { .. } => Self::PROVISIONING_FAILED,
            Self::DeviceDecommissioned { .. } => Self::DEVICE_DECOMMISSIONED,
            Self::CertificateRevoked { .. } => Self::CERTIFICATE_REVOKED,
        }
    }

    /// What the event means for the device's status (`domain::DeviceStatus::after`): the
    /// read models follow the status with the aggregate's own rule.
    pub fn lifecycle_step(&self) -> LifecycleStep {
        match self {
            Self::DeviceRegistered { .. } => LifecycleStep::Registered,
            Self::CertificateRenewalRequested { .. } => LifecycleStep::RenewalRequested,
            Self::CertificateIssued { .. } => LifecycleStep::CertificateIssued,
            Self::ProvisioningFailed { .. } => LifecycleStep::ProvisioningFailed,
            Self::DeviceDecommissioned { .. } => LifecycleStep::Decommissioned,
            Self::CertificateRevoked { .. } => LifecycleStep::CertificateRevoked,
        }
    }

    fn from_domain(event: DeviceEvent) -> Self {
        match event {
            DeviceEvent::DeviceRegistered {
                tenant: _,
                serial_number,
                model,
                labels,
                request,
                request_id,
            } => {
                let PublicRequest {
                    csr,
                    crmf,
                    verified_csr,
                } = public_request(request);
                Self::DeviceRegistered {
                    serial_number,
                    model,
                    labels,
                    csr,
                    crmf,
                    verified_csr,
                    request_id,
                }
            }
            DeviceEvent::CertificateRenewalRequested {
                request,
                request_id,
            } => {
                let PublicRequest {
                    csr,
                    crmf,
                    verified_csr,
                } = public_request(request);
                Self::CertificateRenewalRequested {
                    csr,
                    crmf,
                    verified_csr,
                    request_id,
                }
            }
            DeviceEvent::CertificateIssued {
                request_id,
                certificate,
            } => Self::CertificateIssued {
                request_id,
                certificate,
            },
            DeviceEvent::ProvisioningFailed {
                request_id,
                failure,
            } => Self::ProvisioningFailed {
                request_id,
                failure,
            },
            DeviceEvent::DeviceDecommissioned { reason } => Self::DeviceDecommissioned { reason },
            DeviceEvent::CertificateRevoked {
                revocation:
                    Revocation {
                        serial,
                        reason,
                        revoked_at,
                    },
            } => Self::CertificateRevoked {
                serial,
                reason,
                revoked_at,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let p = CommitPosition {
            transaction_id: 9_876_543_210,
            position: 42,
        };
        assert_eq!(CommitPosition::from_cursor(&p.to_cursor()), Ok(p));
        assert_eq!(CommitPosition::from_cursor(""), Err(InvalidCursor));
        assert_eq!(
            CommitPosition::from_cursor("not a cursor"),
            Err(InvalidCursor)
        );
        assert_eq!(
            CommitPosition::from_cursor(&"A".repeat(23)),
            Err(InvalidCursor)
        );
        let negative = CommitPosition {
            transaction_id: 1,
            position: -1,
        };
        assert_eq!(
            CommitPosition::from_cursor(&negative.to_cursor()),
            Err(InvalidCursor)
        );
    }

    #[test]
    fn cursor_order_is_commit_order() {
        let a = CommitPosition {
            transaction_id: 5,
            position: 900,
        };
        let b = CommitPosition {
            transaction_id: 6,
            position: 3,
        };
        assert!(
            a < b,
            "a later transaction sorts later whatever its position"
        );
    }

    #[test]
    fn event_ids_are_stable_and_distinct_per_sequence() {
        let device = DeviceId::from_uuid(Uuid::nil());
        assert_eq!(event_id(device, 1), event_id(device, 1));
        assert_ne!(event_id(device, 1), event_id(device, 2));
    }
}
