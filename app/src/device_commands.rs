//! The command use cases: register, renew, decommission (public, idempotent by key) and the
//! provisioner's outcomes (internal, idempotent by request id), run against the `Device`
//! aggregate by the command runner (`command_runner.rs`: decide, append at the loaded version
//! with the idempotency claim, replay, retry on conflicts). A registration's first attempt
//! bets the device is new and does not read it.

use std::sync::Arc;

use chrono::Utc;
use domain::{
    CertificateRequestId, CompleteProvisioning, DecommissionDevice, DecommissionReason, Device,
    DeviceCommand, DeviceError, DeviceEvent, DeviceId, DeviceModel, DeviceStatus, FailProvisioning,
    IssuedCertificate, IssuingCaId, Labels, ProvisioningFailure, RegisterDevice, RenewCertificate,
    RenewalAuthority, RevocationAuthority, RevocationReason, RevokeCertificate, SerialNumber,
    SigningRequest,
};
use uuid::Uuid;

use crate::command_runner::{CommandRunner, Decides, Decision, RetryPolicy, RunError};
use crate::{
    CommandError, CommandMetadata, EventStore, IdempotencyClaim, IdempotencyStore, Loaded,
    StoreError,
};

/// What an accepted command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The device's version after the command (= the sequence of its last event).
    pub version: u64,
    pub status: DeviceStatus,
    /// 0 when the command was accepted but had nothing left to do.
    pub events_appended: usize,
}

/// The answer to an accepted public command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub device_id: DeviceId,
    pub status: DeviceStatus,
    /// The version a client can wait for on the read side.
    pub version: u64,
    /// True when this is the recorded outcome of an earlier request with the same key.
    pub replayed: bool,
}

pub struct DeviceCommandService {
    runner: CommandRunner<Device>,
}

impl Decides for Device {
    fn decide_on(&self, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, DeviceError> {
        self.decide(command.clone())
    }

    fn creates(command: &DeviceCommand) -> bool {
        command.creates_device()
    }
}

impl DeviceCommandService {
    pub fn new(
        store: Arc<dyn EventStore<Device>>,
        idempotency: Arc<dyn IdempotencyStore>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            runner: CommandRunner::new(store, idempotency, retry),
        }
    }

    /// The device as its events say now (not a read model): where its requests stand.
    pub async fn current(&self, id: DeviceId) -> Result<Loaded<Device>, StoreError> {
        self.runner.store().load(id).await
    }

    pub async fn register(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        serial_number: SerialNumber,
        model: DeviceModel,
        labels: Labels,
        request: SigningRequest,
    ) -> Result<Accepted, CommandError> {
        let id = DeviceId::derive(&metadata.tenant, &serial_number);
        let command = DeviceCommand::Register(RegisterDevice {
            tenant: metadata.tenant.clone(),
            serial_number,
            model,
            labels,
            request,
            request_id: new_request_id(),
        });
        self.execute_public("register", metadata, claim, id, command)
            .await
    }

    /// A new certificate for `request`, asked for by `authority` (the tenant's token, the
    /// certificate the device presented, or its group's credential), which the device checks;
    /// `revoked_cas`: the tenant's revoked issuing CAs, as their events say.
    pub async fn renew_certificate(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        id: DeviceId,
        request: SigningRequest,
        authority: RenewalAuthority,
        revoked_cas: Vec<IssuingCaId>,
    ) -> Result<Accepted, CommandError> {
        let command = DeviceCommand::RenewCertificate(RenewCertificate {
            tenant: metadata.tenant.clone(),
            request,
            request_id: new_request_id(),
            authority,
            revoked_cas,
        });
        self.execute_public("renew_certificate", metadata, claim, id, command)
            .await
    }

    pub async fn decommission(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        id: DeviceId,
        reason: DecommissionReason,
    ) -> Result<Accepted, CommandError> {
        let command = DeviceCommand::Decommission(DecommissionDevice {
            tenant: metadata.tenant.clone(),
            reason,
            at: Utc::now(),
        });
        self.execute_public("decommission", metadata, claim, id, command)
            .await
    }

    /// Revokes the device's live certificate, from now on, asked for by `authority` (the
    /// tenant's token, or the certificate itself), which the device checks.
    pub async fn revoke_certificate(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        id: DeviceId,
        reason: RevocationReason,
        authority: RevocationAuthority,
    ) -> Result<Accepted, CommandError> {
        let command = DeviceCommand::RevokeCertificate(RevokeCertificate {
            tenant: metadata.tenant.clone(),
            reason,
            at: Utc::now(),
            authority,
        });
        self.execute_public("revoke_certificate", metadata, claim, id, command)
            .await
    }

    /// Internal (provisioner): records the certificate issued for `request_id`. Applying the
    /// same outcome again, or an outcome for a superseded request, appends nothing.
    ///
    /// `loaded`: the device `id` as the caller has just loaded it, if it has; the first
    /// attempt then decides on it instead of reading it again.
    pub async fn complete_provisioning(
        &self,
        metadata: CommandMetadata,
        id: DeviceId,
        request_id: CertificateRequestId,
        certificate: IssuedCertificate,
        loaded: Option<Loaded<Device>>,
    ) -> Result<Applied, CommandError> {
        let command = DeviceCommand::CompleteProvisioning(CompleteProvisioning {
            tenant: metadata.tenant.clone(),
            request_id,
            certificate,
            at: Utc::now(),
        });
        self.execute_internal("complete_provisioning", metadata, id, command, loaded)
            .await
    }

    /// Internal (provisioner): records why `request_id` was refused. Idempotent like
    /// [`Self::complete_provisioning`], and `loaded` is the same.
    pub async fn fail_provisioning(
        &self,
        metadata: CommandMetadata,
        id: DeviceId,
        request_id: CertificateRequestId,
        failure: ProvisioningFailure,
        loaded: Option<Loaded<Device>>,
    ) -> Result<Applied, CommandError> {
        let command = DeviceCommand::FailProvisioning(FailProvisioning {
            tenant: metadata.tenant.clone(),
            request_id,
            failure,
        });
        self.execute_internal("fail_provisioning", metadata, id, command, loaded)
            .await
    }

    #[tracing::instrument(skip_all, fields(command = name, device_id = %id))]
    async fn execute_public(
        &self,
        name: &'static str,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        id: DeviceId,
        command: DeviceCommand,
    ) -> Result<Accepted, CommandError> {
        let result = self
            .runner
            .public(id, &command, &metadata, &claim)
            .await
            .map_err(|e| command_error(id, e))
            .and_then(|decision| {
                let replayed = decision.replayed;
                let applied = applied(decision)?;
                Ok(Accepted {
                    device_id: id,
                    status: applied.status,
                    version: applied.version,
                    replayed,
                })
            });
        record_outcome(name, &result.as_ref().map(|a| a.replayed));
        result
    }

    #[tracing::instrument(skip_all, fields(command = name, device_id = %id))]
    async fn execute_internal(
        &self,
        name: &'static str,
        metadata: CommandMetadata,
        id: DeviceId,
        command: DeviceCommand,
        loaded: Option<Loaded<Device>>,
    ) -> Result<Applied, CommandError> {
        let result = self
            .runner
            .internal(id, &command, &metadata, loaded)
            .await
            .map_err(|e| command_error(id, e))
            .and_then(applied);
        record_outcome(name, &result.as_ref().map(|_| false));
        result
    }
}

/// What an accepted command did to the device.
fn applied(decision: Decision<Device>) -> Result<Applied, CommandError> {
    metrics::counter!("events_appended_total").increment(decision.events_appended as u64);
    let status = decision.aggregate.status().ok_or_else(|| {
        CommandError::Corrupt("a device that accepted a command is not registered".into())
    })?;
    Ok(Applied {
        version: decision.version,
        status,
        events_appended: decision.events_appended,
    })
}

fn command_error(device_id: DeviceId, error: RunError<DeviceError>) -> CommandError {
    match error {
        RunError::Rejected(rejection) => CommandError::Rejected {
            device_id,
            rejection,
        },
        RunError::IdempotencyKeyReused => CommandError::IdempotencyKeyReused,
        RunError::ConcurrencyConflict => CommandError::ConcurrencyConflict,
        RunError::Unstorable => CommandError::Unstorable,
        RunError::Unavailable(e) => CommandError::Unavailable(e),
        RunError::Corrupt(e) => CommandError::Corrupt(e),
    }
}

fn new_request_id() -> CertificateRequestId {
    CertificateRequestId::from_uuid(Uuid::now_v7())
}

fn record_outcome(command: &'static str, result: &Result<bool, &CommandError>) {
    let outcome = match result {
        Ok(false) => "accepted",
        Ok(true) => "replayed",
        Err(CommandError::Rejected { .. }) => "rejected",
        Err(CommandError::IdempotencyKeyReused) => "idempotency_key_reused",
        Err(CommandError::ConcurrencyConflict) => "concurrency_conflict",
        Err(CommandError::Unstorable) => "unstorable",
        Err(CommandError::Unavailable(_)) => "unavailable",
        Err(CommandError::Corrupt(_)) => "corrupt",
    };
    metrics::counter!("commands_total", "command" => command, "outcome" => outcome).increment(1);
    if matches!(result, Ok(true)) {
        metrics::counter!("idempotent_replays_total", "command" => command).increment(1);
    }
}
