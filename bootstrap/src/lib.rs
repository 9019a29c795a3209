//! Process plumbing shared by the `api` and `worker` binaries.
//!
//! - [`Env`]: reads and validates configuration from environment variables, collecting every
//!   problem so that a misconfigured process says everything that is wrong at once.
//! - [`init_telemetry`]: JSON (or human) logs on stdout, and OTLP trace export when
//!   configured, with the W3C trace-context helpers the binaries use across NATS.
//! - [`FeatureFlags`]: risky behaviour switched on by configuration (`FEATURE_FLAGS`).
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C.
//! - [`exit_code`]: reports a fatal error and its causes on stderr; [`describe`]: an error and
//!   its causes on one line.
//! - [`Health`]: `/livez`, `/readyz` (dependency checks given by the binary) and `/metrics`.
//! - [`cli_operator`]: the audit trail's name for whoever runs an operator's command line.
//!
//! Nothing here knows about devices, resource routes or SQL tables.

mod env;
mod error_causes;
mod exit;
mod feature_flags;
mod health;
mod logging;
mod operator_identity;
mod shutdown;
mod telemetry;

pub use env::{database_settings, nats_url, ConfigError, Env};
pub use error_causes::describe;
pub use exit::exit_code;
pub use feature_flags::{FeatureFlag, FeatureFlags};
pub use health::{
    drain_histograms, install_metrics_recorder, Health, HealthApi, Liveness, MetricsRecorderError,
    Readiness, ReadinessStatus,
};
pub use logging::LogFormat;
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use operator_identity::cli_operator;
pub use shutdown::shutdown_signal;
pub use telemetry::{continue_trace, init_telemetry, traceparent_of, traces_enabled, Telemetry};
