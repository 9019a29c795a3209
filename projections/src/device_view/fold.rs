//! How the device read model follows events: a pure fold, so that every path that writes
//! the table (live, gap fill, backfill, rebuild, verify, replay) produces the same row from
//! the same events. The status follows the domain's rule (`DeviceStatus::after`).
//!
//! The row at version N is a function of events 1..=N only; that is what lets concurrent
//! projectors write it with a plain "newer version wins" check.

use app::{DeviceView, EventEnvelope, PublicEvent};
use domain::DeviceStatus;

use crate::FoldError;

/// The row after `event`, given the row at the version just before it.
pub(crate) fn fold(
    current: Option<DeviceView>,
    event: &EventEnvelope,
) -> Result<DeviceView, FoldError> {
    let version = current.as_ref().map_or(0, |d| d.version);
    if event.sequence != version + 1 {
        return Err(FoldError::OutOfOrder {
            device: event.subject.to_string(),
            sequence: event.sequence,
            version,
        });
    }
    let mut device = match (current, &event.event) {
        (
            None,
            PublicEvent::DeviceRegistered {
                serial_number,
                model,
                labels,
                ..
            },
        ) => DeviceView {
            id: event.subject,
            tenant: event.tenant.clone(),
            serial_number: serial_number.clone(),
            model: model.clone(),
            labels: labels.clone(),
            status: DeviceStatus::REGISTERED,
            certificate: None,
            failure: None,
            version: 0,
            created_at: event.time,
            updated_at: event.time,
        },
        (None, other) => {
            return Err(FoldError::NotRegistered {
                device: event.subject.to_string(),
                event_type: other.event_type().to_owned(),
            })
        }
        (Some(device), event) => apply(device, event),
    };
    device.version = event.sequence;
    device.updated_at = event.time;
    Ok(device)
}

fn apply(mut device: DeviceView, event: &PublicEvent) -> DeviceView {
    device.status = device
        .status
        .after(device.certificate.is_some(), event.lifecycle_step());
    match event {
        // A second registration event cannot exist (the store's key forbids it).
        PublicEvent::DeviceRegistered { .. } | PublicEvent::DeviceDecommissioned { .. } => {}
        // The current certificate stays valid (and shown) while a renewal is pending.
        PublicEvent::CertificateRenewalRequested { .. } => device.failure = None,
        PublicEvent::CertificateIssued { certificate, .. } => {
            device.certificate = Some(certificate.clone());
            device.failure = None;
        }
        PublicEvent::ProvisioningFailed { failure, .. } => device.failure = Some(failure.clone()),
    }
    device
}
