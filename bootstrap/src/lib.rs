//! Process plumbing shared by the `api` and `worker` binaries.
//!
//! - [`Env`]: reads and validates configuration from environment variables, collecting every
//!   problem so that a misconfigured process says everything that is wrong at once.
//! - [`init_logging`]: JSON (or human) logs on stdout.
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C.
//! - [`exit_code`]: reports a fatal error and its causes on stderr.
//!
//! Nothing here knows about devices, HTTP routes or SQL tables.

mod env;
mod exit;
mod logging;
mod shutdown;

pub use env::{database_settings, nats_url, ConfigError, Env};
pub use exit::exit_code;
pub use logging::{init_logging, LogFormat};
pub use shutdown::shutdown_signal;
