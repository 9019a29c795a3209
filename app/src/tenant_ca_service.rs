//! The use cases of a tenant's certificate authorities (`domain::TenantCas`): operators create
//! them, start a rotation and revoke an issuing CA (public commands, idempotent by key); the
//! worker certifies the CAs whose keys and certificates it made, rotates on schedule and
//! retires a rotated-out CA (internal commands, idempotent by what the aggregate decides).
//! Every command runs through the command runner, so its events are the CAs' audit trail
//! (who asked is in their metadata).
//!
//! Must not: make keys or certificates (the worker's `pki`), or decide anything the aggregate
//! decides.

use std::sync::Arc;

use chrono::Utc;
use domain::{
    CaCertificate, CaGeneration, CaKeyReference, CaRevocationReason, CaSpec, CertifyCa,
    CreateTenantCas, RetireCa, RevokeCa, RotationCause, StartRotation, TenantCas, TenantCasCommand,
    TenantCasError, TenantCasEvent, TenantCasId, TenantId,
};

use crate::command_runner::{CommandRunner, Decides, Decision, RetryPolicy, RunError};
use crate::{CommandMetadata, EventStore, IdempotencyClaim, IdempotencyStore, Loaded, StoreError};

impl Decides for TenantCas {
    fn decide_on(&self, command: &TenantCasCommand) -> Result<Vec<TenantCasEvent>, TenantCasError> {
        self.decide(command.clone())
    }

    fn creates(command: &TenantCasCommand) -> bool {
        matches!(command, TenantCasCommand::Create(_))
    }
}

/// A command on a tenant's CAs that was not accepted.
pub type CaCommandError = RunError<TenantCasError>;

pub struct TenantCaService {
    runner: CommandRunner<TenantCas>,
}

impl TenantCaService {
    pub fn new(
        store: Arc<dyn EventStore<TenantCas>>,
        idempotency: Arc<dyn IdempotencyStore>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            runner: CommandRunner::new(store, idempotency, retry),
        }
    }

    /// The tenant's CAs as their events say now (no events: the tenant has none of its own).
    pub async fn cas_of(&self, tenant: &TenantId) -> Result<Loaded<TenantCas>, StoreError> {
        self.load(TenantCasId::of(tenant)).await
    }

    pub async fn load(&self, id: TenantCasId) -> Result<Loaded<TenantCas>, StoreError> {
        self.runner.store().load(id).await
    }

    /// Operators: the tenant's root CA and first issuing CA, which the worker then makes.
    pub async fn create(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        root: CaSpec,
        issuing: CaSpec,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let command = TenantCasCommand::Create(CreateTenantCas {
            tenant: metadata.tenant.clone(),
            root,
            issuing,
        });
        self.public("create", metadata, claim, command).await
    }

    /// Operators: the tenant's next issuing CA (`issuing`: how it is made; `None`: as the
    /// current one).
    pub async fn start_rotation(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        issuing: Option<CaSpec>,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let command = TenantCasCommand::StartRotation(StartRotation {
            tenant: metadata.tenant.clone(),
            issuing,
            cause: RotationCause::Operator,
            at: Utc::now(),
        });
        self.public("start_rotation", metadata, claim, command)
            .await
    }

    /// Operators: an issuing CA is no longer to be trusted; its replacement is started with
    /// it unless another CA is active or being made.
    pub async fn revoke(
        &self,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        generation: CaGeneration,
        reason: CaRevocationReason,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let command = TenantCasCommand::Revoke(RevokeCa {
            tenant: metadata.tenant.clone(),
            generation,
            reason,
            at: Utc::now(),
        });
        self.public("revoke", metadata, claim, command).await
    }

    /// Worker: the CA of `generation` has its key (`key`) and certificate.
    pub async fn certify(
        &self,
        metadata: CommandMetadata,
        generation: CaGeneration,
        key: CaKeyReference,
        certificate: CaCertificate,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let command = TenantCasCommand::Certify(CertifyCa {
            tenant: metadata.tenant.clone(),
            generation,
            key,
            certificate,
            at: Utc::now(),
        });
        self.internal("certify", metadata, command).await
    }

    /// Worker: the issuing CA's end is near; its successor is to be made.
    pub async fn rotate_on_schedule(
        &self,
        metadata: CommandMetadata,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let command = TenantCasCommand::StartRotation(StartRotation {
            tenant: metadata.tenant.clone(),
            issuing: None,
            cause: RotationCause::Schedule,
            at: Utc::now(),
        });
        self.internal("rotate_on_schedule", metadata, command).await
    }

    /// Worker: a rotated-out CA has nothing left to answer for.
    pub async fn retire(
        &self,
        metadata: CommandMetadata,
        generation: CaGeneration,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let command = TenantCasCommand::Retire(RetireCa {
            tenant: metadata.tenant.clone(),
            generation,
            at: Utc::now(),
        });
        self.internal("retire", metadata, command).await
    }

    #[tracing::instrument(skip_all, fields(command = name, tenant = %metadata.tenant.as_str()))]
    async fn public(
        &self,
        name: &'static str,
        metadata: CommandMetadata,
        claim: IdempotencyClaim,
        command: TenantCasCommand,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let id = TenantCasId::of(&metadata.tenant);
        let result = self.runner.public(id, &command, &metadata, &claim).await;
        record_outcome(name, &result);
        result
    }

    #[tracing::instrument(skip_all, fields(command = name, tenant = %metadata.tenant.as_str()))]
    async fn internal(
        &self,
        name: &'static str,
        metadata: CommandMetadata,
        command: TenantCasCommand,
    ) -> Result<Decision<TenantCas>, CaCommandError> {
        let id = TenantCasId::of(&metadata.tenant);
        let result = self.runner.internal(id, &command, &metadata, None).await;
        record_outcome(name, &result);
        result
    }
}

fn record_outcome(command: &'static str, result: &Result<Decision<TenantCas>, CaCommandError>) {
    let outcome = match result {
        Ok(decision) if decision.replayed => "replayed",
        Ok(_) => "accepted",
        Err(RunError::Rejected(_)) => "rejected",
        Err(RunError::IdempotencyKeyReused) => "idempotency_key_reused",
        Err(RunError::ConcurrencyConflict) => "concurrency_conflict",
        Err(RunError::Unstorable) => "unstorable",
        Err(RunError::Unavailable(_)) => "unavailable",
        Err(RunError::Corrupt(_)) => "corrupt",
    };
    metrics::counter!("ca_commands_total", "command" => command, "outcome" => outcome).increment(1);
}
