//! `api`: `serve` the HTTP API, `migrate` the database (a release step), print a `token` or
//! the `openapi` document, operate read models (`projections`), `dead-letters` and tenants'
//! certificate authorities (`cas`).

use std::process::ExitCode;
use std::time::Duration;

use api::auth::JwtKeys;
use api::config::{ApiConfig, MIN_JWT_SECRET_BYTES};
use bootstrap::{database_settings, Env, LogFormat};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: allocation was the largest single cost in the profiles of
/// the command path and the feed (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "api", version, about = "Device provisioning API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (configuration from the environment; see README).
    Serve,
    /// Apply pending database migrations (needs DATABASE_URL), then exit.
    Migrate,
    /// Print a JWT signed with AUTH_JWT_SECRET, e.g. for curl.
    Token {
        /// The tenant the token acts for.
        #[arg(
            long,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        tenant: Option<String>,
        /// A platform operator's token instead (no tenant; needed for the `admin` routes).
        #[arg(long)]
        operator: bool,
        /// Space-separated scopes: devices:write devices:read events:read admin.
        #[arg(long, default_value = "devices:write devices:read")]
        scope: String,
        #[arg(long, default_value = "cli")]
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print the OpenAPI 3.1 document that `/openapi.json` serves (docs/openapi.json is it).
    Openapi,
    /// Tenants' certificate authorities: show, create, rotate, revoke (needs DATABASE_URL).
    Cas {
        #[command(subcommand)]
        command: api::cas_cli::CasCommand,
    },
    /// Dead letters: list, retry, discard (needs DATABASE_URL).
    DeadLetters {
        #[command(subcommand)]
        command: api::dead_letters_cli::DeadLettersCommand,
    },
    /// Read-model operations: status, rebuild, cancel, verify (needs DATABASE_URL).
    Projections {
        #[command(subcommand)]
        command: api::projections_cli::ProjectionsCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Token {
            tenant,
            operator: _,
            scope,
            subject,
            ttl,
        } => token(tenant.as_deref(), &scope, &subject, ttl),
        Command::Projections { command } => {
            api::projections_cli::run(command).await.map_err(Into::into)
        }
        Command::DeadLetters { command } => api::dead_letters_cli::run(command).await,
        Command::Cas { command } => api::cas_cli::run(command).await,
        Command::Openapi => api::http::openapi()
            .to_pretty_json()
            .map(|doc| println!("{doc}"))
            .map_err(Into::into),
    };
    bootstrap::exit_code(result)
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = ApiConfig::from_env()?;
    let telemetry = bootstrap::init_telemetry(config.log_format, "api");
    let result = api::startup::serve(config).await;
    // Blocking (it waits for the last export): off the async workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

async fn migrate() -> Result<(), Box<dyn std::error::Error>> {
    let mut env = Env::from_process();
    let settings = database_settings(&mut env, "provisioning-migrate");
    let log_format = env.parse_or("LOG_FORMAT", LogFormat::Json);
    env.finish()?;
    let _telemetry = bootstrap::init_telemetry(log_format, "api-migrate");
    let pool = store::connect(&settings)?;
    let report = store::schema::migrate(&pool).await?;
    store::schema::ensure_current(&pool).await?;
    for (version, description) in &report.applied {
        tracing::info!(version, description = %description, "migration applied");
    }
    tracing::info!(
        applied = report.applied.len(),
        schema_version = report.schema_version.unwrap_or_default(),
        "database schema is up to date"
    );
    pool.close().await;
    Ok(())
}

/// A tenant's token, or with no tenant a platform operator's.
fn token(
    tenant: Option<&str>,
    scope: &str,
    subject: &str,
    ttl: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(tenant) = tenant {
        domain::TenantId::parse(tenant).map_err(|e| format!("--tenant: {e}"))?;
    }
    let mut env = Env::from_process();
    let secret = env.secret("AUTH_JWT_SECRET", MIN_JWT_SECRET_BYTES);
    env.finish()?;
    let keys = JwtKeys::from_secret(secret.unwrap_or_default().as_bytes());
    let ttl = Duration::from_secs(ttl);
    let token = match tenant {
        Some(tenant) => keys.issue(subject, tenant, scope, ttl),
        None => keys.issue_operator(subject, scope, ttl),
    };
    println!("{token}");
    Ok(())
}
