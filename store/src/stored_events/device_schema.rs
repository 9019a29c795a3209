//! The `Device` aggregate's stored schema: the version each event type is written at, and how
//! a row of each version is read. The one table of versions; the forms are in their modules
//! (`device_forms_v1.rs`, `certificate_issued_v2.rs`, `certificate_requests_v2.rs`).
//!
//! | event type | written at | read |
//! |---|---|---|
//! | `CertificateIssued` | 2 | 1 (upcast to 2), 2 |
//! | `DeviceRegistered` | 2 | 1 (upcast to 2), 2 |
//! | `CertificateRenewalRequested` | 2 | 1 (upcast to 2), 2 |
//! | every other device event | 1 | 1 |

use domain::{Device, DeviceEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::certificate_issued_v2::CertificateIssuedV2;
use super::certificate_requests_v2::{CertificateRenewalRequestedV2, DeviceRegisteredV2};
use super::device_forms_v1::{DeviceEventV1, MovedOn};
use super::{EventSchema, Problem, StoredEvent, StoredEventRef, UnreadableEvent};

const CERTIFICATE_ISSUED: &str = "CertificateIssued";
const DEVICE_REGISTERED: &str = "DeviceRegistered";
const CERTIFICATE_RENEWAL_REQUESTED: &str = "CertificateRenewalRequested";

impl EventSchema for Device {
    fn encode(event: &DeviceEvent) -> Result<StoredEvent, serde_json::Error> {
        match event {
            DeviceEvent::CertificateIssued {
                request_id,
                certificate,
            } => at_v2(
                CERTIFICATE_ISSUED,
                &CertificateIssuedV2::of(*request_id, certificate),
            ),
            DeviceEvent::DeviceRegistered { .. } => at_v2(
                DEVICE_REGISTERED,
                &DeviceRegisteredV2::of(event).expect("a DeviceRegistered"),
            ),
            DeviceEvent::CertificateRenewalRequested { .. } => at_v2(
                CERTIFICATE_RENEWAL_REQUESTED,
                &CertificateRenewalRequestedV2::of(event).expect("a CertificateRenewalRequested"),
            ),
            _ => {
                let form = DeviceEventV1::of(event).expect("the others are written at v1");
                Ok(StoredEvent {
                    event_type: form.event_type(),
                    event_version: "1",
                    payload: serde_json::to_string(&form)?,
                })
            }
        }
    }

    fn decode(stored: StoredEventRef<'_>) -> Result<DeviceEvent, UnreadableEvent> {
        match (stored.event_type, stored.event_version) {
            (CERTIFICATE_ISSUED, "2") => Ok(form::<CertificateIssuedV2>(stored)?.into_recorded()),
            (DEVICE_REGISTERED, "2") => form::<DeviceRegisteredV2>(stored)?
                .into_recorded()
                .map_err(|_| not_a_digest(stored)),
            (CERTIFICATE_RENEWAL_REQUESTED, "2") => form::<CertificateRenewalRequestedV2>(stored)?
                .into_recorded()
                .map_err(|_| not_a_digest(stored)),
            (_, "1") => {
                let form: DeviceEventV1 = form(stored)?;
                if form.event_type() != stored.event_type {
                    let problem = Problem::OfAnotherType(form.event_type());
                    return Err(UnreadableEvent::new(stored, problem));
                }
                Ok(form
                    .into_recorded()
                    .unwrap_or_else(|moved_on| match moved_on {
                        MovedOn::CertificateIssued(v1) => {
                            CertificateIssuedV2::from(*v1).into_recorded()
                        }
                        // A version 1 row holds a PEM CSR, never a verified one: no digest
                        // to read.
                        MovedOn::DeviceRegistered(v1) => DeviceRegisteredV2::from(*v1)
                            .into_recorded()
                            .expect("a version 1 request is PKCS#10"),
                        MovedOn::CertificateRenewalRequested(v1) => {
                            CertificateRenewalRequestedV2::from(*v1)
                                .into_recorded()
                                .expect("a version 1 request is PKCS#10")
                        }
                    }))
            }
            _ => Err(UnreadableEvent::new(stored, Problem::UnknownVersion)),
        }
    }
}

/// `form`, written at version 2.
fn at_v2<F: Serialize>(
    event_type: &'static str,
    form: &F,
) -> Result<StoredEvent, serde_json::Error> {
    Ok(StoredEvent {
        event_type,
        event_version: "2",
        payload: serde_json::to_string(form)?,
    })
}

/// A verified CSR whose digest is not 32 bytes of hex.
fn not_a_digest(stored: StoredEventRef<'_>) -> UnreadableEvent {
    UnreadableEvent::new(stored, Problem::NotADigest)
}

/// The row's payload read as the form `F`.
fn form<F: DeserializeOwned>(stored: StoredEventRef<'_>) -> Result<F, UnreadableEvent> {
    serde_json::from_str(stored.payload)
        .map_err(|e| UnreadableEvent::new(stored, Problem::NotItsForm(e)))
}
