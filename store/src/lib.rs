//! Postgres adapters behind the application's ports, and the schema they need.
//!
//! - [`PostgresDeviceStore`]: the event store (cqrs-es's `PersistedEventStore` over
//!   postgres-es's table and reads, appending in one statement), implementing
//!   `app::DeviceEventStore`.
//! - [`PostgresIdempotencyStore`]: reads the idempotency records that the append writes in the
//!   same statement as a command's events; purges them after the retention period.
//! - [`schema`]: the embedded migrations (`migrations/` at the workspace root), applied by
//!   `api migrate`, and the check that makes services refuse a schema that is behind.
//!
//! This crate owns SQL for these tables and nothing else: read models belong to the
//! `projections` crate. It must not know about HTTP.

mod database;
mod postgres_device_store;
mod postgres_idempotency_store;
pub mod schema;
mod single_statement_event_repository;

pub use database::{connect, DatabaseSettings};
pub use postgres_device_store::PostgresDeviceStore;
pub use postgres_idempotency_store::PostgresIdempotencyStore;
