//! A device's certificates as this read model keeps them, and how an event moves them.

use app::{EventEnvelope, PublicEvent};
use chrono::{DateTime, SubsecRound, Utc};
use domain::RevocationReason;

use crate::FoldError;

/// A device's certificates, at its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceCertificates {
    pub tenant: String,
    pub version: u64,
    /// By serial: the order the tables give them back in, so that a state read back equals
    /// the same state folded (a replay repairs only what differs).
    pub certificates: Vec<CertificateRecord>,
}

/// One certificate the CA issued, and its revocation once there is one (final).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateRecord {
    pub serial: String,
    /// The id of the CA that signed it; `None` for a certificate recorded before certificates
    /// named their issuer (the platform's CA signed those).
    pub issuer: Option<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub revocation: Option<(DateTime<Utc>, RevocationReason)>,
}

/// The device's certificates after `event`, given them before.
pub(crate) fn follow(
    current: Option<DeviceCertificates>,
    event: &EventEnvelope,
) -> Result<DeviceCertificates, FoldError> {
    let mut device = match (current, &event.event) {
        (None, PublicEvent::DeviceRegistered { .. }) => DeviceCertificates {
            tenant: event.tenant.as_str().to_owned(),
            version: 0,
            certificates: Vec::new(),
        },
        (None, other) => {
            return Err(FoldError::NotRegistered {
                device: event.subject.to_string(),
                event_type: other.event_type().to_owned(),
            })
        }
        (Some(device), _) => device,
    };
    match &event.event {
        PublicEvent::CertificateIssued { certificate, .. } => {
            let record = CertificateRecord {
                serial: certificate.serial.clone(),
                issuer: certificate
                    .issuer
                    .as_ref()
                    .map(|issuer| issuer.as_str().to_owned()),
                not_before: as_stored(certificate.not_before),
                not_after: as_stored(certificate.not_after),
                revocation: None,
            };
            let at = device
                .certificates
                .partition_point(|c| c.serial < record.serial);
            device.certificates.insert(at, record);
        }
        PublicEvent::CertificateRevoked {
            serial,
            reason,
            revoked_at,
        } => {
            // A revocation is final: a second one (there is none: the aggregate refuses it)
            // would not move its time or reason.
            if let Some(record) = device
                .certificates
                .iter_mut()
                .find(|c| c.serial == *serial && c.revocation.is_none())
            {
                record.revocation = Some((as_stored(*revoked_at), *reason));
            }
        }
        _ => {}
    }
    device.version = event.sequence;
    Ok(device)
}

/// A time as a `timestamptz` column keeps it (microseconds): the state folded from events
/// then equals the state read back, and a replay repairs only what really differs.
fn as_stored(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}
