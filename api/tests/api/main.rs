//! Integration tests of the command API against a real Postgres: each test spawns the app
//! on its own fresh database (see `helpers`).

mod admin_projections;
mod authentication;
mod commands_on_one_device;
mod connection_limits;
mod crash_recovery;
mod decommission_device;
mod dependency_failures;
mod device_history;
mod enrollment_groups;
mod est_enrollment;
mod event_stream;
mod expiring_tokens;
mod health;
mod helpers;
mod idempotency;
mod jwks_tokens;
mod logs;
mod long_polls;
mod malformed_requests;
mod overload;
mod postgres_outage;
mod projections_cli;
mod rate_limits;
mod read_replica;
mod register_device;
mod renew_certificate;
mod request_deadline;
mod revoke_certificate;
mod schema_version;
mod slow_clients;
mod startup_refusals;
mod tenant_cas;
mod tls;
mod traces;
