//! Application layer: the use cases (commands, queries, provisioning) and the ports they
//! need, plus the public event contract. Adapters implement the ports: `store` and
//! `projections` on Postgres, the CA in `worker`.
//!
//! This crate decides *how* a command is carried out (idempotency, retries on optimistic
//! concurrency conflicts, what is answered) but not *whether* it is allowed (the `domain`
//! crate decides that) nor how bytes reach a database or a socket (adapters and `api` do).
//! It must not depend on sqlx, axum or async-nats.

mod ca_stewardship;
mod certificate_view;
mod command_error;
mod command_metadata;
mod command_runner;
mod dead_letter_operations;
mod device_commands;
mod device_enrollment;
mod device_queries;
mod device_stats;
mod enrollment_groups;
mod event_contract;
mod event_log;
mod event_sourced;
mod event_store;
mod group_credential_verifier;
mod idempotency;
mod idempotency_store;
mod long_poll_slots;
pub mod pki;
mod projection_operations;
mod provisioning;
mod tenant_ca_service;
mod tenant_issuers;
mod wake_ups;

pub use ca_stewardship::{CaMaker, CaStewardship, StewardshipError, TenantCaDirectory};
pub use certificate_view::{CertificateStatus, CertificateView};
pub use command_error::CommandError;
pub use command_metadata::CommandMetadata;
pub use command_runner::{CommandRunner, Decides, Decision, RetryPolicy, RunError};
pub use dead_letter_operations::{
    DeadLetterActionError, DeadLetterFilter, DeadLetterOperations, DeadLetterState, DeadLetterView,
};
pub use device_commands::{Accepted, Applied, DeviceCommandService};
pub use device_enrollment::{
    Correlation, DeviceEnrollmentService, EnrollmentError, EnrollmentProgress, EnrollmentProtocol,
    EnrollmentRefusal, PresentedCertificate,
};
pub use device_queries::{
    DeviceFilter, DevicePage, DeviceQueryService, DeviceReadError, DeviceReadModel, DeviceView,
    EventPage, HistoryCursor, HistoryPage, ListCursor, ReadModelChanges, ANY_VERSION,
};
pub use device_stats::{DeviceCount, DeviceStatsReadModel};
pub use enrollment_groups::{
    random_group_key, CreatedGroup, EnrollmentGroup, EnrollmentGroupError, EnrollmentGroupService,
    EnrollmentGroupStore, GroupKeySource, GroupNameTaken, NewEnrollmentGroup,
};
pub use event_contract::{
    event_id, CommitPosition, EventEnvelope, InvalidCursor, PublicEvent, RecordedEvent,
};
pub use event_log::{AppendedEvents, EventLog, NoAppendSignal, TenantEvents};
pub use event_sourced::EventSourced;
pub use event_store::{
    Append, AppendOutcome, EventStore, Loaded, OutcomeCountMismatch, StoreError,
};
pub use group_credential_verifier::{AuthenticatedDevice, GroupCredentialVerifier};
pub use idempotency::{IdempotencyClaim, IdempotencyKey, IdempotencyScope, RequestFingerprint};
pub use idempotency_store::{IdempotencyRecord, IdempotencyStore};
pub use long_poll_slots::{LongPollLimitReached, LongPollLimits, LongPollSlot, LongPollSlots};
pub use projection_operations::{
    ProjectionOperations, ProjectionState, ProjectionStatus, RebuildRequestError, RebuildState,
    RebuildStatus, UnknownProjection,
};
pub use provisioning::{
    CaUnavailable, CertificateAuthority, CertificateRequest, ProvisioningCause, ProvisioningError,
    ProvisioningOutcome, ProvisioningService,
};
pub use tenant_ca_service::{CaCommandError, TenantCaService};
pub use tenant_issuers::{Issuer, TenantIssuers};
pub use wake_ups::WakeUps;
