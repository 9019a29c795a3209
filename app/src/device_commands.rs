//! The command use cases: register, renew, decommission (public, idempotent by key) and the
//! provisioner's outcomes (internal, idempotent by request id).
//!
//! The store only loads and appends; this module decides: it loads the device, lets the
//! aggregate decide (`Device::decide`), folds the new events into its copy (`apply`) for the
//! answer, and appends them at the loaded version, with the public command's idempotency
//! claim. Every public command runs the same loop: decide and append; on an
//! optimistic-concurrency conflict (the version or the key was taken), look the idempotency
//! key up, and if it was not used, start over after a short jittered backoff, a bounded
//! number of times. A registration's first attempt does not even read the device: it bets
//! the device is new (`Loaded::without_events`) and lets the append's uniqueness check
//! (sequence 1 of the derived id) prove it.
//!
//! Why the key is not looked up before appending: the idempotency record, written by the
//! store in the append's own transaction under a unique key, is what guarantees at most one
//! execution per key, not the lookup. A retried request either is refused by the domain
//! (e.g. the device is already registered) or its append collides with the record (a
//! conflict); both send us to the lookup, which answers with the recorded outcome (or 422
//! for another body). The lookup follows every conflict, the last attempt's included, so a
//! replay never depends on the retry budget (`COMMAND_MAX_ATTEMPTS=1` replays too): only a
//! conflict that no earlier request with this key explains is contention. So new commands,
//! the common case, save a round trip, and duplicates, including concurrent ones that lost
//! the race, are answered with the winner's response.
//!
//! Internal commands may start from a device their caller has just loaded (the provisioner
//! reads it to find the open request): the first attempt decides on it, only a conflict
//! reads again.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use cqrs_es::Aggregate;
use domain::{
    CertificateCredential, CertificateRequestId, CertificateSigningRequest, CompleteProvisioning,
    DecommissionDevice, DecommissionReason, Device, DeviceCommand, DeviceError, DeviceId,
    DeviceModel, DeviceStatus, FailProvisioning, IssuedCertificate, Labels, ProvisioningFailure,
    RegisterDevice, RenewCertificate, RevocationReason, RevokeCertificate, SerialNumber,
};
use uuid::Uuid;

use crate::{
    Append, AppendOutcome, CommandError, CommandMetadata, EventStore, IdempotencyClaim,
    IdempotencyStore, Loaded, OutcomeCountMismatch, StoreError,
};

/// How hard to try when other writers keep winning the race for the same device.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(100),
        }
    }
}

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
    store: Arc<dyn EventStore<Device>>,
    idempotency: Arc<dyn IdempotencyStore>,
    retry: RetryPolicy,
}

/// What one decision and its append came to (store failures aside).
enum Decided {
    Applied(Applied),
    Rejected(DeviceError),
    /// The append lost a race: another writer took the version, or another request with the
    /// same key committed. Nothing was written.
    Conflict,
    /// The store refused a value of the append (`AppendOutcome::Refused`). Nothing was written.
    Unstorable,
}

/// Why one attempt ended: only `Conflict` is worth another attempt.
enum AttemptError {
    Conflict,
    Final(CommandError),
}

impl From<StoreError> for AttemptError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => Self::Final(CommandError::Unavailable(e)),
            StoreError::Corrupt(e) => Self::Final(CommandError::Corrupt(e)),
        }
    }
}

impl DeviceCommandService {
    pub fn new(
        store: Arc<dyn EventStore<Device>>,
        idempotency: Arc<dyn IdempotencyStore>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            store,
            idempotency,
            retry,
        }
    }

    pub async fn register(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        serial_number: SerialNumber,
        model: DeviceModel,
        labels: Labels,
        csr: CertificateSigningRequest,
    ) -> Result<Accepted, CommandError> {
        let id = DeviceId::derive(&metadata.tenant, &serial_number);
        let command = DeviceCommand::Register(RegisterDevice {
            tenant: metadata.tenant.clone(),
            serial_number,
            model,
            labels,
            csr,
            request_id: new_request_id(),
        });
        self.execute_public("register", metadata, claim, id, command)
            .await
    }

    /// A new certificate for `csr`. `authenticated_by`: the certificate the device presented
    /// to ask, which the device accepts only while it is its current, unrevoked one (`None`
    /// when the caller's own authority stands for the request).
    pub async fn renew_certificate(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        id: DeviceId,
        csr: CertificateSigningRequest,
        authenticated_by: Option<CertificateCredential>,
    ) -> Result<Accepted, CommandError> {
        let command = DeviceCommand::RenewCertificate(RenewCertificate {
            tenant: metadata.tenant.clone(),
            csr,
            request_id: new_request_id(),
            authenticated_by,
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

    /// Revokes the device's live certificate, from now on.
    pub async fn revoke_certificate(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        id: DeviceId,
        reason: RevocationReason,
    ) -> Result<Accepted, CommandError> {
        let command = DeviceCommand::RevokeCertificate(RevokeCertificate {
            tenant: metadata.tenant.clone(),
            reason,
            at: Utc::now(),
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
        let (metadata, claim, command) = (&metadata, &claim, &command);
        let mut attempts = 0;
        let result = self
            .with_retries(|| {
                attempts += 1;
                self.attempt_public(id, command, metadata, claim, attempts == 1)
            })
            .await;
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
        let (metadata, command) = (&metadata, &command);
        let mut loaded = loaded;
        let result = self
            .with_retries(|| {
                // Only the first attempt may use the caller's copy: after a conflict it is stale.
                let loaded = loaded.take();
                async move {
                    let loaded = match loaded {
                        Some(loaded) => loaded,
                        None => self.store.load(id).await?,
                    };
                    match self
                        .decide_and_append(id, loaded, command, metadata, None)
                        .await?
                    {
                        Decided::Applied(applied) => {
                            metrics::counter!("events_appended_total")
                                .increment(applied.events_appended as u64);
                            Ok(applied)
                        }
                        Decided::Rejected(rejection) => {
                            Err(AttemptError::Final(CommandError::Rejected {
                                device_id: id,
                                rejection,
                            }))
                        }
                        Decided::Conflict => Err(AttemptError::Conflict),
                        Decided::Unstorable => Err(AttemptError::Final(CommandError::Unstorable)),
                    }
                }
            })
            .await;
        record_outcome(name, &result.as_ref().map(|_| false));
        result
    }

    async fn with_retries<T, F, Fut>(&self, attempt: F) -> Result<T, CommandError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1))
            .with_jitter();
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, AttemptError::Conflict))
            .notify(|_, delay| tracing::debug!(?delay, "optimistic concurrency conflict, retrying"))
            .await
            .map_err(|e| match e {
                AttemptError::Conflict => CommandError::ConcurrencyConflict,
                AttemptError::Final(e) => e,
            })
    }

    async fn attempt_public(
        &self,
        id: DeviceId,
        command: &DeviceCommand,
        metadata: &CommandMetadata,
        claim: &IdempotencyClaim,
        first_attempt: bool,
    ) -> Result<Accepted, AttemptError> {
        if first_attempt && command.creates_device() {
            // Bet that the device is new (it nearly always is): decide without reading it.
            // A lost bet (the device exists, or this key was used) is not contention, so it
            // is settled now, on the full path below, rather than after a backoff.
            let assumed = Loaded::without_events();
            match self
                .decide_and_append(id, assumed, command, metadata, Some(claim))
                .await?
            {
                Decided::Conflict => {
                    if let Some(accepted) = self.replay(claim).await? {
                        return Ok(accepted);
                    }
                }
                decided => return self.answer(id, decided, claim).await,
            }
        }
        let loaded = self.store.load(id).await?;
        let decided = self
            .decide_and_append(id, loaded, command, metadata, Some(claim))
            .await?;
        self.answer(id, decided, claim).await
    }

    /// Lets the device decide on `command` in the `loaded` state and appends the events at
    /// the loaded version (with `claim`, atomically). Nothing is appended for a refusal, nor
    /// for an accepted command that has nothing left to do.
    async fn decide_and_append(
        &self,
        id: DeviceId,
        loaded: Loaded<Device>,
        command: &DeviceCommand,
        metadata: &CommandMetadata,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Decided, StoreError> {
        let Loaded {
            aggregate: mut device,
            version,
        } = loaded;
        let events = match device.decide(command.clone()) {
            Ok(events) => events,
            Err(rejection) => return Ok(Decided::Rejected(rejection)),
        };
        // Fold the new events into our copy: the status we answer with is the state right
        // after them.
        for event in &events {
            device.apply(event.clone());
        }
        let status = device
            .status()
            .expect("a device that accepted a command is registered");
        if events.is_empty() {
            return Ok(Decided::Applied(Applied {
                version,
                status,
                events_appended: 0,
            }));
        }
        let append = Append {
            aggregate_id: id,
            expected_version: version,
            events: &events,
            metadata,
            claim,
        };
        let outcomes = self.store.append(std::slice::from_ref(&append)).await?;
        let [outcome] = outcomes[..] else {
            return Err(StoreError::Corrupt(Box::new(OutcomeCountMismatch {
                appended: 1,
                answered: outcomes.len(),
            })));
        };
        Ok(match outcome {
            AppendOutcome::Appended { version } => Decided::Applied(Applied {
                version,
                status,
                events_appended: events.len(),
            }),
            // Either way nothing was written, and the key's record (if that is what we
            // collided with) tells the caller whether this is a replay.
            AppendOutcome::VersionConflict | AppendOutcome::KeyAlreadyClaimed => Decided::Conflict,
            AppendOutcome::Refused => Decided::Unstorable,
        })
    }

    /// Turns what an attempt decided into the answer: accepted, or refused (or contention)
    /// unless an earlier request with this key explains the refusal or the conflict.
    async fn answer(
        &self,
        id: DeviceId,
        decided: Decided,
        claim: &IdempotencyClaim,
    ) -> Result<Accepted, AttemptError> {
        let refusal = match decided {
            Decided::Applied(applied) => {
                metrics::counter!("events_appended_total")
                    .increment(applied.events_appended as u64);
                return Ok(Accepted {
                    device_id: id,
                    status: applied.status,
                    version: applied.version,
                    replayed: false,
                });
            }
            // E.g. an earlier request with this key is why the device "already exists".
            Decided::Rejected(rejection) => AttemptError::Final(CommandError::Rejected {
                device_id: id,
                rejection,
            }),
            // E.g. an earlier request with this key holds the key's record, which the append
            // collided with: that is a replay, not contention, on any attempt.
            Decided::Conflict => AttemptError::Conflict,
            // Nothing of it was written (its key's record included), so nothing to replay.
            Decided::Unstorable => return Err(AttemptError::Final(CommandError::Unstorable)),
        };
        // The earlier request's record committed with its events, so it is visible now.
        match self.replay(claim).await? {
            Some(accepted) => Ok(accepted),
            None => Err(refusal),
        }
    }

    /// The recorded outcome for `claim`'s key, if the key was used before.
    async fn replay(&self, claim: &IdempotencyClaim) -> Result<Option<Accepted>, AttemptError> {
        let Some(record) = self.idempotency.find(&claim.scope).await? else {
            return Ok(None);
        };
        if record.fingerprint != claim.fingerprint {
            return Err(AttemptError::Final(CommandError::IdempotencyKeyReused));
        }
        let loaded = self.store.load_at(record.device_id, record.version).await?;
        let status = loaded.aggregate.status().ok_or_else(|| {
            AttemptError::Final(CommandError::Corrupt(Box::new(DanglingIdempotencyRecord {
                device_id: record.device_id,
                version: record.version,
            })))
        })?;
        Ok(Some(Accepted {
            device_id: record.device_id,
            status,
            version: record.version,
            replayed: true,
        }))
    }
}

/// An idempotency record whose device has no events: the store lost events it committed
/// together with the record, or was edited by hand.
#[derive(Debug, thiserror::Error)]
#[error("idempotency record points at device {device_id} version {version}, which has no events")]
struct DanglingIdempotencyRecord {
    device_id: DeviceId,
    version: u64,
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
