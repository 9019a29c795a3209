//! Application layer: the use cases (one service method per command) and the ports they
//! need. Adapters implement the ports: `store` for Postgres today, NATS and the CA later.
//!
//! This crate decides *how* a command is carried out (idempotency, retries on optimistic
//! concurrency conflicts, what is answered) but not *whether* it is allowed (the `domain`
//! crate decides that) nor how bytes reach a database or a socket (adapters and `api` do).
//! It must not depend on sqlx, axum or async-nats.

mod command_error;
mod command_metadata;
mod device_commands;
mod device_event_store;
mod idempotency;
mod idempotency_store;

pub use command_error::CommandError;
pub use command_metadata::{CommandMetadata, IdempotencyClaim};
pub use device_commands::{Accepted, DeviceCommandService, RetryPolicy};
pub use device_event_store::{Applied, DeviceEventStore, History, StoreError};
pub use idempotency::{IdempotencyKey, IdempotencyScope, RequestFingerprint};
pub use idempotency_store::{IdempotencyRecord, IdempotencyStore};
