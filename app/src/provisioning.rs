//! The provisioner's use case: settle one certificate request (a registration's or a
//! renewal's) by asking the CA, then record the outcome on the device as an internal command.
//!
//! Messages are notifications, the event store holds the facts: the provisioner is told only
//! which device to look at, and signs the CSR that device's events recorded for its open
//! request (never one carried by a message).
//!
//! The CA is the tenant's own issuing CA, or the platform's for a tenant without CAs of its
//! own (`TenantIssuers`, from the tenant's CA events); a tenant whose CA is not ready yet has
//! its requests wait, as for any CA outage.
//!
//! The device is read once per message: the open request is taken from that read, and the
//! outcome is decided on the same state and appended at its version
//! (`DeviceCommandService::complete_provisioning` with the loaded device); only a conflict
//! (another writer appended meanwhile) reads it again, within the command retry budget.
//!
//! At most one certificate per request reaches the device's history, however often the
//! request's message is delivered: the request is signed only while it is still the device's
//! open request, and recording an outcome for a request that is no longer open appends
//! nothing (`Device::decide`). Two deliveries racing each other may both sign, but only the
//! first outcome is recorded; the CA derives the certificate serial from the request id, so
//! even then both are the same certificate identity.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use domain::{
    CertificateRequestId, Device, DeviceId, IssuedCertificate, ProvisioningFailure, SerialNumber,
    SigningRequest,
};

use crate::{
    CommandError, CommandMetadata, DeviceCommandService, EventStore, Issuer, StoreError,
    TenantIssuers,
};

/// What the CA is asked to sign.
#[derive(Debug, Clone)]
pub struct CertificateRequest {
    pub device_id: DeviceId,
    pub request_id: CertificateRequestId,
    pub serial_number: SerialNumber,
    pub request: SigningRequest,
}

/// The CA could not answer now (overloaded, shutting down, its key unreadable): the request
/// must be retried later, it is not the device's fault.
#[derive(Debug, thiserror::Error)]
#[error("the certificate authority is unavailable: {0}")]
pub struct CaUnavailable(pub String);

/// Port: checks a CSR against policy and signs it. CPU-bound: adapters must keep the work off
/// the async runtime's threads.
#[async_trait]
pub trait CertificateAuthority: Send + Sync + 'static {
    /// `request` signed by `issuer`. `Ok(Err(_))` is a domain outcome: the CSR is refused (bad
    /// signature, key policy, subject), and retrying will not change that.
    async fn issue(
        &self,
        request: CertificateRequest,
        issuer: Issuer,
    ) -> Result<Result<IssuedCertificate, ProvisioningFailure>, CaUnavailable>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisioningOutcome {
    Issued,
    Failed,
    /// The request was already settled (a redelivery) or superseded by a newer one, or the
    /// device is gone: nothing was signed.
    AlreadySettled,
}

/// Transient: the message should be delivered again later.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error(transparent)]
    Ca(#[from] CaUnavailable),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a provisioning run comes from, for the outcome's metadata: who acts, what caused it
/// (the message or dead letter that woke the provisioner), and the trace to continue.
/// None of it is a fact the provisioner acts on.
#[derive(Debug, Clone)]
pub struct ProvisioningCause {
    pub actor: &'static str,
    pub correlation_id: String,
    pub traceparent: Option<String>,
}

pub struct ProvisioningService {
    store: Arc<dyn EventStore<Device>>,
    commands: Arc<DeviceCommandService>,
    issuers: TenantIssuers,
    ca: Arc<dyn CertificateAuthority>,
}

impl ProvisioningService {
    pub fn new(
        store: Arc<dyn EventStore<Device>>,
        commands: Arc<DeviceCommandService>,
        issuers: TenantIssuers,
        ca: Arc<dyn CertificateAuthority>,
    ) -> Self {
        Self {
            store,
            commands,
            issuers,
            ca,
        }
    }

    /// Settles the open certificate request of `device_id`, if it has one.
    ///
    /// A message only says "this device may have a request to settle": the request, its CSR,
    /// the serial number and the tenant all come from the device's events in the event store.
    /// A forged or stale message therefore costs at most a read; it can never get another
    /// CSR signed.
    #[tracing::instrument(skip_all, fields(device_id = %device_id, request_id = tracing::field::Empty))]
    pub async fn provision(
        &self,
        device_id: DeviceId,
        cause: ProvisioningCause,
    ) -> Result<ProvisioningOutcome, ProvisioningError> {
        // The only read of the device for this message: the outcome is decided on this
        // state and appended at its version; only a conflict reads it again.
        let loaded = self.store.load(device_id).await?;
        let device = &loaded.aggregate;
        let (Some(serial_number), Some(tenant), Some(open)) = (
            device.serial_number(),
            device.tenant(),
            device.open_request(),
        ) else {
            return Ok(ProvisioningOutcome::AlreadySettled);
        };
        let request_id = open.id;
        tracing::Span::current().record("request_id", tracing::field::display(request_id));
        let metadata = CommandMetadata {
            tenant: tenant.clone(),
            actor: cause.actor.to_owned(),
            request_id: cause.correlation_id,
            traceparent: cause.traceparent,
        };
        let request = CertificateRequest {
            device_id,
            request_id,
            serial_number: serial_number.clone(),
            request: open.request.clone(),
        };
        // The tenant's own CA if it has CAs (decided from their events), else the platform's;
        // none while the tenant's CA is being made: the request waits, an outage.
        // A renewal decides on the tenant's CAs as they are now: it may recover a device whose
        // CA was revoked a moment ago (see `TenantIssuers::issuer_for`).
        let issuer = self
            .issuers
            .issuer_for(tenant, Utc::now(), device.has_been_certified())
            .await?
            .ok_or_else(|| CaUnavailable("the tenant's issuing CA is not ready yet".into()))?;
        let started = std::time::Instant::now();
        let outcome = self.ca.issue(request, issuer).await?;
        metrics::histogram!("provisioner_ca_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(certificate) => {
                let applied = self
                    .commands
                    .complete_provisioning(
                        metadata,
                        device_id,
                        request_id,
                        certificate,
                        Some(loaded),
                    )
                    .await?;
                Ok(if applied.events_appended > 0 {
                    ProvisioningOutcome::Issued
                } else {
                    ProvisioningOutcome::AlreadySettled
                })
            }
            Err(failure) => {
                tracing::info!(code = ?failure.code, "certificate request refused");
                let applied = self
                    .commands
                    .fail_provisioning(metadata, device_id, request_id, failure, Some(loaded))
                    .await?;
                Ok(if applied.events_appended > 0 {
                    ProvisioningOutcome::Failed
                } else {
                    ProvisioningOutcome::AlreadySettled
                })
            }
        }
    }
}
