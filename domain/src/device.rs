//! The `Device` aggregate: decides which events a command produces, and folds events into
//! the little state those decisions need.
//!
//! `decide` is a pure function of (state, command). `handle` only adapts it to cqrs-es's
//! `EventSink`. The state holds what invariants need and nothing else: read models are
//! built by projections, not from this struct.

mod command;
mod error;
mod event;
mod status;

pub use command::{
    CompleteProvisioning, DecommissionDevice, DeviceCommand, FailProvisioning, RegisterDevice,
    RenewCertificate, RenewalAuthority, RevocationAuthority, RevokeCertificate,
};
pub use error::DeviceError;
pub use event::DeviceEvent;
pub use status::{DeviceStatus, LifecycleStep};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::{
    CertificateCredential, CertificateRequestId, IssuingCaId, Revocation, RevocationReason,
    SerialNumber, SigningRequest, TenantId,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `None` until `DeviceRegistered`.
    registered: Option<RegisteredDevice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RegisteredDevice {
    tenant: TenantId,
    /// The provisioner checks a renewal's CSR against it (subject CN = serial number).
    serial_number: SerialNumber,
    status: DeviceStatus,
    /// The certificate the device holds and that is not revoked: the one a revocation
    /// (explicit, a decommission's, a renewal's `superseded`) applies to, and the only one
    /// that may authenticate a renewal. A failed renewal leaves a device with a live
    /// certificate provisioned, one without it failed.
    live_certificate: Option<LiveCertificate>,
    /// Whether a certificate was ever issued (a revocation request without one is refused
    /// differently from one whose certificate is revoked already).
    ever_certified: bool,
    /// The request still waiting for the provisioner's outcome. Only an outcome for this
    /// request is applied; outcomes for resolved or superseded requests change nothing,
    /// which is what makes the internal commands idempotent under redelivery.
    open_request: Option<OpenRequest>,
}

/// The device's live certificate: its serial and, when the event recorded it, its issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LiveCertificate {
    serial: String,
    issuer: Option<IssuingCaId>,
}

impl LiveCertificate {
    /// Whether `credential` is this certificate. A certificate recorded without its issuer
    /// was signed by the one CA the service had then: its serial identifies it.
    fn is(&self, credential: &CertificateCredential) -> bool {
        self.serial == credential.serial
            && self
                .issuer
                .as_ref()
                .is_none_or(|issuer| *issuer == credential.issuer)
    }
}

/// A certificate request waiting for the provisioner: the one the device's events hold,
/// which is the only one the provisioner may sign (never a request carried by a message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub id: CertificateRequestId,
    pub request: SigningRequest,
}

impl Device {
    pub fn status(&self) -> Option<DeviceStatus> {
        self.registered.as_ref().map(|d| d.status)
    }

    pub fn tenant(&self) -> Option<&TenantId> {
        self.registered.as_ref().map(|d| &d.tenant)
    }

    pub fn serial_number(&self) -> Option<&SerialNumber> {
        self.registered.as_ref().map(|d| &d.serial_number)
    }

    /// The certificate request still waiting for the provisioner's outcome, if any, with the
    /// request its event recorded. The provisioner signs only this request: a redelivered or
    /// superseded request finds it settled and issues nothing.
    pub fn open_request(&self) -> Option<&OpenRequest> {
        self.registered
            .as_ref()
            .and_then(|d| d.open_request.as_ref())
    }

    /// Whether a certificate was ever issued to the device: its open request, if any, renews.
    pub fn has_been_certified(&self) -> bool {
        self.registered.as_ref().is_some_and(|d| d.ever_certified)
    }

    /// The events `command` produces in the current state, or why it is refused.
    /// An empty list means "already done": the command is accepted and changes nothing.
    pub fn decide(&self, command: DeviceCommand) -> Result<Vec<DeviceEvent>, DeviceError> {
        if let DeviceCommand::Register(cmd) = command {
            return match self.registered {
                Some(_) => Err(DeviceError::AlreadyRegistered),
                None => Ok(vec![DeviceEvent::DeviceRegistered {
                    tenant: cmd.tenant,
                    serial_number: cmd.serial_number,
                    model: cmd.model,
                    labels: cmd.labels,
                    request: cmd.request,
                    request_id: cmd.request_id,
                }]),
            };
        }
        let device = match &self.registered {
            Some(device) if device.tenant == *command.tenant() => device,
            _ => return Err(DeviceError::NotFound),
        };
        match command {
            DeviceCommand::Register(_) => unreachable!("handled above"),
            DeviceCommand::RenewCertificate(cmd) => match device.status {
                DeviceStatus::Decommissioned => Err(DeviceError::Decommissioned),
                DeviceStatus::Pending => Err(DeviceError::ProvisioningInProgress),
                DeviceStatus::Provisioned | DeviceStatus::Failed => {
                    let revoked_ca = |issuer: &IssuingCaId| cmd.revoked_cas.contains(issuer);
                    match &cmd.authority {
                        RenewalAuthority::Tenant => {}
                        // The device's own certificate authenticates only while it is the live
                        // one and its CA stands: a revoked (say, stolen) or superseded
                        // certificate, or one of a revoked CA, renews nothing.
                        RenewalAuthority::Certificate(credential) => {
                            let current = device
                                .live_certificate
                                .as_ref()
                                .is_some_and(|live| live.is(credential));
                            if !current || revoked_ca(&credential.issuer) {
                                return Err(DeviceError::CertificateNotCurrent);
                            }
                        }
                        // The group's credential stands in for a certificate only when the
                        // device has none it can use.
                        RenewalAuthority::EnrollmentGroup => {
                            let usable = device.live_certificate.as_ref().is_some_and(|live| {
                                live.issuer
                                    .as_ref()
                                    .is_none_or(|issuer| !revoked_ca(issuer))
                            });
                            if usable {
                                return Err(DeviceError::StillCertified);
                            }
                        }
                    }
                    Ok(vec![DeviceEvent::CertificateRenewalRequested {
                        request: cmd.request,
                        request_id: cmd.request_id,
                    }])
                }
            },
            DeviceCommand::Decommission(cmd) => match device.status {
                DeviceStatus::Decommissioned => Err(DeviceError::Decommissioned),
                _ => Ok(device
                    .revoke_live(RevocationReason::CessationOfOperation, cmd.at)
                    .into_iter()
                    .chain([DeviceEvent::DeviceDecommissioned { reason: cmd.reason }])
                    .collect()),
            },
            DeviceCommand::RevokeCertificate(cmd) => match device.status {
                DeviceStatus::Decommissioned => Err(DeviceError::Decommissioned),
                // A device revokes only the certificate it holds, and only while it is live:
                // a superseded or revoked one revokes nothing.
                _ if matches!(&cmd.authority, RevocationAuthority::Certificate(credential)
                    if !device.live_certificate.as_ref().is_some_and(|live| live.is(credential))) =>
                {
                    Err(DeviceError::CertificateNotCurrent)
                }
                _ => match device.revoke_live(cmd.reason, cmd.at) {
                    Some(revoked) => Ok(vec![revoked]),
                    None if device.ever_certified => Err(DeviceError::CertificateAlreadyRevoked),
                    None => Err(DeviceError::NoCertificate),
                },
            },
            DeviceCommand::CompleteProvisioning(cmd) => Ok(if device.is_open(cmd.request_id) {
                // The new certificate first: the one it replaces is revoked only once it is
                // issued, so the device is never left without a live certificate.
                let superseded = device.revoke_live(RevocationReason::Superseded, cmd.at);
                [DeviceEvent::CertificateIssued {
                    request_id: cmd.request_id,
                    certificate: cmd.certificate,
                }]
                .into_iter()
                .chain(superseded)
                .collect()
            } else {
                vec![]
            }),
            DeviceCommand::FailProvisioning(cmd) => Ok(if device.is_open(cmd.request_id) {
                vec![DeviceEvent::ProvisioningFailed {
                    request_id: cmd.request_id,
                    failure: cmd.failure,
                }]
            } else {
                vec![]
            }),
        }
    }
}

impl Aggregate for Device {
    const TYPE: &'static str = "device";
    type Command = DeviceCommand;
    type Event = DeviceEvent;
    type Error = DeviceError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DeviceEvent::DeviceRegistered {
                tenant,
                serial_number,
                request_id,
                request,
                ..
            } => {
                self.registered = Some(RegisteredDevice {
                    tenant,
                    serial_number,
                    status: DeviceStatus::REGISTERED,
                    live_certificate: None,
                    ever_certified: false,
                    open_request: Some(OpenRequest {
                        id: request_id,
                        request,
                    }),
                });
            }
            other => {
                // Events other than the first can only follow it; an event store that says
                // otherwise is corrupt, and folding into a default state would hide that.
                let device = self
                    .registered
                    .as_mut()
                    .expect("event applied to a device that was never registered");
                device.apply(other);
            }
        }
    }
}

impl RegisteredDevice {
    fn is_open(&self, request_id: CertificateRequestId) -> bool {
        self.open_request.as_ref().map(|r| r.id) == Some(request_id)
    }

    /// The event revoking the live certificate, if there is one.
    fn revoke_live(&self, reason: RevocationReason, at: DateTime<Utc>) -> Option<DeviceEvent> {
        self.live_certificate
            .as_ref()
            .map(|live| DeviceEvent::CertificateRevoked {
                revocation: Revocation {
                    serial: live.serial.clone(),
                    reason,
                    revoked_at: at,
                },
            })
    }

    fn apply(&mut self, event: DeviceEvent) {
        self.status = self
            .status
            .after(self.live_certificate.is_some(), LifecycleStep::from(&event));
        match event {
            DeviceEvent::DeviceRegistered { .. } => {}
            DeviceEvent::CertificateRenewalRequested {
                request_id,
                request,
            } => {
                self.open_request = Some(OpenRequest {
                    id: request_id,
                    request,
                });
            }
            DeviceEvent::CertificateIssued { certificate, .. } => {
                self.open_request = None;
                self.live_certificate = Some(LiveCertificate {
                    serial: certificate.serial,
                    issuer: certificate.issuer,
                });
                self.ever_certified = true;
            }
            DeviceEvent::ProvisioningFailed { .. } | DeviceEvent::DeviceDecommissioned { .. } => {
                self.open_request = None;
            }
            DeviceEvent::CertificateRevoked { revocation } => {
                if self
                    .live_certificate
                    .as_ref()
                    .is_some_and(|live| live.serial == revocation.serial)
                {
                    self.live_certificate = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
