//! A device's place in the counts, and how an event moves it (the status by the domain's
//! rule, `DeviceStatus::after`).

use app::{EventEnvelope, PublicEvent};
use domain::DeviceStatus;

use crate::FoldError;

/// A device's place in the counts, at its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub tenant: String,
    pub model: String,
    pub status: DeviceStatus,
    /// Whether it holds a live certificate (issued, not revoked): the status rule needs it.
    pub has_certificate: bool,
    /// That certificate's serial: a revocation of another (a renewal's `superseded`) leaves
    /// it live.
    pub live_certificate: Option<String>,
    pub version: u64,
}

/// The count a member is in: (tenant, model, status).
pub(crate) type CountKey = (String, String, &'static str);

impl Member {
    pub fn count_key(&self) -> CountKey {
        (
            self.tenant.clone(),
            self.model.clone(),
            self.status.as_str(),
        )
    }
}

/// A device's place after `event`, given its place before.
pub(crate) fn follow(current: Option<Member>, event: &EventEnvelope) -> Result<Member, FoldError> {
    let mut member = match (current, &event.event) {
        (None, PublicEvent::DeviceRegistered { model, .. }) => Member {
            tenant: event.tenant.as_str().to_owned(),
            model: model.as_str().to_owned(),
            status: DeviceStatus::REGISTERED,
            has_certificate: false,
            live_certificate: None,
            version: 0,
        },
        (None, other) => {
            return Err(FoldError::NotRegistered {
                device: event.subject.to_string(),
                event_type: other.event_type().to_owned(),
            })
        }
        (Some(mut member), event) => {
            member.status = member
                .status
                .after(member.has_certificate, event.lifecycle_step());
            match event {
                PublicEvent::CertificateIssued { certificate, .. } => {
                    member.has_certificate = true;
                    member.live_certificate = Some(certificate.serial.clone());
                }
                // Only the live certificate's revocation leaves the device without one (a
                // renewal's `superseded` names the certificate before it).
                PublicEvent::CertificateRevoked { serial, .. }
                    if member.live_certificate.as_deref() == Some(serial.as_str()) =>
                {
                    member.has_certificate = false;
                    member.live_certificate = None;
                }
                _ => {}
            }
            member
        }
    };
    member.version = event.sequence;
    Ok(member)
}
