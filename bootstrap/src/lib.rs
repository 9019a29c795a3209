//! Process plumbing shared by the `api` and `worker` binaries.
//!
//! - [`Env`]: reads and validates configuration from environment variables, collecting every
//!   problem so that a misconfigured process says everything that is wrong at once.
//! - [`init_logging`]: JSON (or human) logs on stdout.
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C.
//! - [`exit_code`]: reports a fatal error and its causes on stderr.
//! - [`Health`]: `/livez`, `/readyz` (dependency checks given by the binary) and `/metrics`.
//!
//! Nothing here knows about devices, resource routes or SQL tables.

mod env;
mod exit;
mod health;
mod logging;
mod shutdown;

pub use env::{database_settings, nats_url, ConfigError, Env};
pub use exit::exit_code;
pub use health::{
    install_metrics_recorder, Health, HealthApi, Liveness, Readiness, ReadinessStatus,
};
pub use logging::{init_logging, LogFormat};
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use shutdown::shutdown_signal;
