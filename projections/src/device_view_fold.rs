//! How the device read model follows events: a pure fold, so that the live projector, a gap
//! fill and (later) a rebuild all produce the same row from the same events.
//!
//! The row at version N is a function of events 1..=N only; that is what lets concurrent
//! projectors write it with a plain "newer version wins" check.

use app::{DeviceView, EventEnvelope, PublicEvent};
use domain::DeviceStatus;

/// Why an event cannot follow the row it is applied to: the event store or the stream handed
/// us something out of order, which the projector treats as a gap to fill, never as data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("event {sequence} of device {device} does not follow version {version}")]
    OutOfOrder {
        device: String,
        sequence: u64,
        version: u64,
    },
    #[error("device {device}: the first event is {event_type}, not DeviceRegistered")]
    NotRegistered { device: String, event_type: String },
}

/// The row after `event`, given the row at the version just before it.
pub fn fold(current: Option<DeviceView>, event: &EventEnvelope) -> Result<DeviceView, FoldError> {
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
            status: DeviceStatus::Pending,
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
    device.status = status_after(device.status, device.certificate.is_some(), event);
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

/// A registered device's status after `event`, given its status and whether it holds a
/// certificate: the one definition every read model shares.
pub(crate) fn status_after(
    status: DeviceStatus,
    has_certificate: bool,
    event: &PublicEvent,
) -> DeviceStatus {
    match event {
        PublicEvent::DeviceRegistered { .. } => status,
        PublicEvent::CertificateRenewalRequested { .. } if status == DeviceStatus::Failed => {
            DeviceStatus::Pending
        }
        PublicEvent::CertificateRenewalRequested { .. } => status,
        PublicEvent::CertificateIssued { .. } => DeviceStatus::Provisioned,
        // A device with a certificate stays usable when a renewal fails.
        PublicEvent::ProvisioningFailed { .. } if !has_certificate => DeviceStatus::Failed,
        PublicEvent::ProvisioningFailed { .. } => status,
        PublicEvent::DeviceDecommissioned { .. } => DeviceStatus::Decommissioned,
    }
}
