//! Postgres adapters behind the application's ports, and the schema they need.
//!
//! - [`PostgresEventStore`]: the event store, storage only, for every aggregate with a stored
//!   schema (loads an aggregate's events, appends a command's events with its idempotency
//!   record in one statement, in postgres-es's table layout), implementing
//!   `app::EventStore<A>`; one aggregate's view of it shares the group commit with the
//!   others' (`PostgresEventStore::of`); `event_metadata` is how a command's metadata is
//!   stored with its events.
//! - [`stored_events`]: the stored events' schema, the one place that writes and reads
//!   `events.payload`: versioned stored forms of the store's own, read back through
//!   upcasters as the facts they were, never through the domain's serde nor today's
//!   validation ([`EventSchema`], implemented for `Device` and `TenantCas`); the versions of
//!   every aggregate of a type (`PostgresEventStore::versions`: a tenant's CAs, as
//!   `app::TenantCaDirectory`).
//! - [`PostgresIdempotencyStore`]: reads the idempotency records that the append writes in the
//!   same statement as a command's events; purges them after the retention period.
//! - [`PostgresEventLog`]: the device events read back (tenant feed in commit order, a
//!   device's history; another aggregate's events are never among them); [`RelayLeases`]: the relay's lock, checkpoint and commit-order reads;
//!   [`AppendNotifier`]: wakes the relay and feed readers after appends, naming the tenants
//!   ([`PgAppendedEvents`] wakes a tenant's feed readers from those notifications); [`PostgresDeadLetters`]: messages
//!   consumers gave up on; [`PostgresCrls`]: the current signed CRL of each CA;
//!   [`PostgresResponderCertificates`]: the api's OCSP responder key and tenant CAs'
//!   certificates of it;
//!   [`PostgresEnrollmentGroups`]: enrollment groups, their keys sealed at rest
//!   ([`GroupKeySealer`]); [`ExclusiveLeases`]: one process at a time for a named piece of
//!   work (an advisory lock on a connection of its own); [`backlog_after`] and [`count_events`]: how far a reader is
//!   behind, and a rebuild's total.
//! - [`schema`]: the embedded migrations (`migrations/` at the workspace root), applied by
//!   `api migrate`, and the check that makes services refuse a schema that is behind.
//!
//! This crate owns SQL for `events`, `snapshots` (kept by the migrations for postgres-es's
//! layout; nothing reads or writes it), `idempotency_keys`, `relay_checkpoints`,
//! `dead_letters`, `operator_actions`, `certificate_revocation_lists`, `enrollment_groups`,
//! `ocsp_responder_keys` and `ocsp_signer_certificates`,
//! and nothing else: read models belong to the
//! `projections` crate. It must not know about HTTP, nor run the aggregate's decisions.

mod append_notifier;
mod append_statement;
mod appended_events;
mod committed_events;
mod database;
mod database_ping;
mod dead_letters;
mod enrollment_groups;
mod event_counts;
mod event_metadata;
mod exclusive_lease;
mod group_commit;
mod key_encryption_key_check;
mod notification_listener;
mod ocsp_responder_certificates;
mod operator_actions;
mod postgres_event_log;
mod postgres_event_store;
mod postgres_idempotency_store;
mod published_crls;
mod recorded_event_row;
mod relay_lease;
pub mod schema;
mod sealed_group_key;
pub mod stored_events;

pub use append_notifier::{AppendNotifier, AppendedTenants};
pub use appended_events::PgAppendedEvents;
pub use committed_events::{committed_events_after, visible_events_after, CommittedBatch};
pub use database::{close, connect, DatabaseSettings, DatabaseUrlError};
pub use database_ping::{ping, DatabaseProbe};
pub use dead_letters::{ClaimedRetry, DeadLetter, PostgresDeadLetters, DEAD_LETTER_RETRY_CHANNEL};
pub use enrollment_groups::PostgresEnrollmentGroups;
pub use event_counts::{backlog_after, count_events, EventBacklog};
pub use exclusive_lease::{ExclusiveLease, ExclusiveLeases};
pub use group_commit::GroupCommitSettings;
pub use key_encryption_key_check::{check_key_encryption_key, KeyEncryptionKeyError};
pub use notification_listener::spawn_listener;
pub use ocsp_responder_certificates::PostgresResponderCertificates;
pub use operator_actions::OperatorAction;
pub use postgres_event_log::{
    device_events_between, device_events_in_ranges, devices_changed_since, events_of_devices,
    PostgresEventLog,
};
pub use postgres_event_store::PostgresEventStore;
pub use postgres_idempotency_store::PostgresIdempotencyStore;
pub use published_crls::PostgresCrls;
pub use relay_lease::{AppendListener, RelayLease, RelayLeases, EVENTS_APPENDED_CHANNEL};
pub use sealed_group_key::{GroupKeySealer, UnsealError};
/// The connection pool every Postgres adapter takes (its users need not know sqlx).
pub use sqlx::PgPool;
pub use stored_events::EventSchema;
