//! `worker`: will host the provisioner (CSR checks, certificate issuance) and the projectors.
//!
//! PLACEHOLDER until the async path (issue 3): it validates its configuration, refuses a
//! database schema that is behind, connects to Postgres and NATS, reports that it is ready
//! and waits for SIGTERM/Ctrl-C, then closes its connections. It consumes nothing yet.

use std::process::ExitCode;
use std::time::Duration;

use bootstrap::{database_settings, Env, LogFormat};
use nats::NatsSettings;

#[tokio::main]
async fn main() -> ExitCode {
    bootstrap::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut env = Env::from_process();
    let database = database_settings(&mut env, "provisioning-worker");
    let nats_settings = NatsSettings {
        url: env.parse_or("NATS_URL", "nats://127.0.0.1:4222".to_owned()),
        connect_timeout: env.millis_or("NATS_CONNECT_TIMEOUT_MS", 5_000, 100..=120_000),
    };
    let log_format = env.parse_or("LOG_FORMAT", LogFormat::Json);
    env.finish()?;
    bootstrap::init_logging(log_format);

    let pool = store::connect(&database)?;
    store::schema::ensure_current(&pool).await?;
    let nats = nats::connect(&nats_settings).await?;
    tracing::info!("worker ready (no consumers yet: the async path is not built)");

    bootstrap::shutdown_signal().await;
    if let Err(e) = tokio::time::timeout(Duration::from_secs(5), nats.drain()).await {
        tracing::warn!(error = %e, "NATS drain did not finish in time");
    }
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
