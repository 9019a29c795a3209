//! The `Device` aggregate's stored schema: the version each event type is written at, and how
//! a row of each version is read. The one table of versions; the forms are in their modules
//! (`device_forms_v1.rs`, `certificate_issued_v2.rs`).
//!
//! | event type | written at | read |
//! |---|---|---|
//! | `CertificateIssued` | 2 | 1 (upcast to 2), 2 |
//! | every other device event | 1 | 1 |

use domain::{Device, DeviceEvent};

use super::certificate_issued_v2::CertificateIssuedV2;
use super::device_forms_v1::{DeviceEventV1, MovedOn};
use super::{EventSchema, Problem, StoredEvent, StoredEventRef, UnreadableEvent};

const CERTIFICATE_ISSUED: &str = "CertificateIssued";

impl EventSchema for Device {
    fn encode(event: &DeviceEvent) -> Result<StoredEvent, serde_json::Error> {
        if let DeviceEvent::CertificateIssued {
            request_id,
            certificate,
        } = event
        {
            return Ok(StoredEvent {
                event_type: CERTIFICATE_ISSUED,
                event_version: "2",
                payload: serde_json::to_string(&CertificateIssuedV2::of(*request_id, certificate))?,
            });
        }
        let form = DeviceEventV1::of(event).expect("only CertificateIssued has moved past v1");
        Ok(StoredEvent {
            event_type: form.event_type(),
            event_version: "1",
            payload: serde_json::to_string(&form)?,
        })
    }

    fn decode(stored: StoredEventRef<'_>) -> Result<DeviceEvent, UnreadableEvent> {
        let not_its_form = |e| UnreadableEvent::new(stored, Problem::NotItsForm(e));
        match (stored.event_type, stored.event_version) {
            (CERTIFICATE_ISSUED, "2") => {
                let form: CertificateIssuedV2 =
                    serde_json::from_str(stored.payload).map_err(not_its_form)?;
                Ok(form.into_recorded())
            }
            (_, "1") => {
                let form: DeviceEventV1 =
                    serde_json::from_str(stored.payload).map_err(not_its_form)?;
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
                    }))
            }
            _ => Err(UnreadableEvent::new(stored, Problem::UnknownVersion)),
        }
    }
}
