//! How the device read model follows events: a pure fold, so that every path that writes
//! the table (live, gap fill, backfill, rebuild, verify, replay) produces the same row from
//! the same events. The status follows the domain's rule (`DeviceStatus::after`).
//!
//! The row at version N is a function of events 1..=N only; that is what lets concurrent
//! projectors write it with a plain "newer version wins" check.

use app::{CertificateView, DeviceView, EventEnvelope, PublicEvent};
use domain::{DeviceStatus, Revocation};

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
    let has_live_certificate = device.certificate.as_ref().is_some_and(|c| c.is_live());
    device.status = device
        .status
        .after(has_live_certificate, event.lifecycle_step());
    match event {
        // A second registration event cannot exist (the store's key forbids it).
        PublicEvent::DeviceRegistered { .. } | PublicEvent::DeviceDecommissioned { .. } => {}
        // The current certificate stays valid (and shown) while a renewal is pending.
        PublicEvent::CertificateRenewalRequested { .. } => device.failure = None,
        PublicEvent::CertificateIssued { certificate, .. } => {
            device.certificate = Some(CertificateView::issued(certificate.clone()));
            device.failure = None;
        }
        PublicEvent::ProvisioningFailed { failure, .. } => device.failure = Some(failure.clone()),
        // Only the shown certificate's revocation shows (a renewal's `superseded` names the
        // one before it, which is no longer shown).
        PublicEvent::CertificateRevoked {
            serial,
            reason,
            revoked_at,
        } => {
            if let Some(shown) = device
                .certificate
                .as_mut()
                .filter(|c| c.issued.serial == *serial)
            {
                shown.revocation = Some(Revocation {
                    serial: serial.clone(),
                    reason: *reason,
                    revoked_at: *revoked_at,
                });
            }
        }
    }
    device
}
