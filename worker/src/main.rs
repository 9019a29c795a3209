//! `worker`: runs the relay, the provisioner and the projectors until SIGTERM/Ctrl-C
//! (`worker` or `worker run`), writes a development CA (`worker dev-ca --out DIR`, its key
//! in a file or, with `--key pkcs11:…`, made in a PKCS#11 token; never over an existing one
//! without `--force`), issues the api's delegated OCSP signer (`worker
//! ocsp-signer --out DIR`), CMP signer (`worker cmp-signer --out DIR`) or SCEP registration
//! authority (`worker scep-ra --key pkcs11:… --out DIR`), or replays the stream for one consumer (`worker replay CONSUMER
//! --from …`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pki::dev_ca::write_dev_ca;
use pki::signer_certificate::{IssuedSigner, SignerPurpose};
use worker::config::{StreamAccess, WorkerConfig};
use worker::consumer_registry::Guarantee;

/// mimalloc instead of glibc malloc: allocation was the largest single cost in the profiles of
/// the command path and the feed (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "worker", about = "Device-provisioning worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay, provisioner and projectors (the default).
    Run,
    /// Write a self-signed development CA (ca.pem, ca.key) into a directory. Never for
    /// production: its key sits unencrypted on disk. Refuses to replace an existing CA.
    DevCa {
        #[arg(long)]
        out: PathBuf,
        /// Generate the CA's P-256 key in a PKCS#11 token instead, named by this RFC 7512 URI
        /// (pkcs11:token=…;object=…; the token reached through PKCS11_MODULE_PATH and
        /// PKCS11_PIN_FILE), and write only ca.pem; the URI is then the worker's CA_KEY_PATH.
        #[arg(long)]
        key: Option<String>,
        /// Replace the CA already in the directory (certificates it issued will no longer
        /// verify against the new one).
        #[arg(long)]
        force: bool,
    },
    /// Issue the api's OCSP responder certificate: a new P-256 key certified by the CA
    /// (CA_CERT_PATH, CA_KEY_PATH) for OCSP signing only; writes ocsp-signer.pem (the signer
    /// followed by the CA) and ocsp-signer.key (PKCS#8, mode 0600) into a directory. Re-run
    /// it and restart the api to rotate.
    OcspSigner {
        #[arg(long)]
        out: PathBuf,
        /// How long the signer is valid.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
    },
    /// Issue the api's CMP signer: a new P-256 key certified by the CA (CA_CERT_PATH,
    /// CA_KEY_PATH) as a CMP registration authority only (id-kp-cmcRA), which signs the
    /// answers to signature-protected CMP requests (kur, rr); writes cmp-signer.pem (the
    /// signer followed by the CA) and cmp-signer.key (PKCS#8, mode 0600) into a directory.
    /// Re-run it and restart the api to rotate.
    CmpSigner {
        #[arg(long)]
        out: PathBuf,
        /// How long the signer is valid.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
    },
    /// Issue the api's SCEP registration authority: an RSA-2048 key made in a PKCS#11 token
    /// (named by --key, pkcs11:token=…;object=…, reached through PKCS11_MODULE_PATH and
    /// PKCS11_PIN_FILE; an existing key of that name is certified again), certified by the CA
    /// (CA_CERT_PATH, CA_KEY_PATH) for signing and key encipherment (id-kp-cmcRA); writes
    /// scep-ra.pem (the RA followed by the CA) into a directory. Give the api SCEP_RA_CERT_PATH
    /// and SCEP_RA_KEY (the same URI) and restart it.
    ScepRa {
        #[arg(long)]
        key: String,
        #[arg(long)]
        out: PathBuf,
        /// How long the RA certificate is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Replay the stream for one consumer (e.g. projector-device_view) from a time (RFC 3339)
    /// or after a commit-order position (a feed cursor), without touching the others.
    /// Configuration as for `run`.
    Replay {
        consumer: String,
        #[arg(long, value_parser = parse_replay_start)]
        from: nats::ReplayStart,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::exit_code(match cli.command.unwrap_or(Command::Run) {
        Command::Run => run().await,
        Command::DevCa { out, key, force } => match key {
            None => dev_ca(&out, force),
            Some(uri) => dev_ca_in_token(&out, &uri, force),
        },
        Command::OcspSigner { out, days } => delegated_signer(SignerPurpose::Ocsp, &out, days),
        Command::CmpSigner { out, days } => delegated_signer(SignerPurpose::CmpRa, &out, days),
        Command::ScepRa { key, out, days } => scep_ra(&key, &out, days),
        Command::Replay { consumer, from } => replay(&consumer, from).await,
    })
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = WorkerConfig::from_env()?;
    let telemetry = bootstrap::init_telemetry(config.log_format, "worker");
    let result = worker::startup::run(config, bootstrap::shutdown_signal())
        .await
        .map_err(Into::into);
    // Blocking (it waits for the last export): off the async workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

fn parse_replay_start(raw: &str) -> Result<nats::ReplayStart, String> {
    match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(time) => Ok(nats::ReplayStart::Time(time.with_timezone(&chrono::Utc))),
        Err(_) => app::CommitPosition::from_cursor(raw)
            .map(nats::ReplayStart::After)
            .map_err(|_| "expected an RFC 3339 time or a position cursor from the feed".into()),
    }
}

async fn replay(consumer: &str, from: nats::ReplayStart) -> Result<(), Box<dyn std::error::Error>> {
    let access = StreamAccess::from_env()?;
    let actor = bootstrap::cli_operator();
    let report = worker::replay_command::replay_consumer(&access, consumer, from, &actor).await?;
    let start = match (report.first_sequence, from) {
        (Some(sequence), _) => format!("stream sequence {sequence}"),
        (None, nats::ReplayStart::Time(time)) => format!("messages published since {time}"),
        (None, nats::ReplayStart::After(position)) => format!("after {}", position.to_cursor()),
    };
    let note = match report.guarantee {
        Guarantee::Replayable => "its read model is repaired as the workers catch up",
        Guarantee::SideEffecting => {
            "it acts outside the read models: only requests still open are signed"
        }
    };
    println!("{consumer}: replaying from {start}, recorded as {actor}; {note}");
    Ok(())
}

fn dev_ca(out: &std::path::Path, force: bool) -> Result<(), Box<dyn std::error::Error>> {
    let (cert, key) = write_dev_ca(out, "device-provisioning dev CA", force)?;
    println!(
        "wrote {} and {} (development only)",
        cert.display(),
        key.display()
    );
    Ok(())
}

fn dev_ca_in_token(
    out: &std::path::Path,
    uri: &str,
    force: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut env = bootstrap::Env::from_process();
    let module_path = env.required("PKCS11_MODULE_PATH", "the PKCS#11 module of the token");
    let pin_file = env.required("PKCS11_PIN_FILE", "a file holding the token's user PIN");
    env.finish()?;
    let uri = pki::Pkcs11Uri::parse(uri)?;
    let module = pki::Pkcs11Module::load(
        std::path::Path::new(&module_path.unwrap_or_default()),
        std::path::Path::new(&pin_file.unwrap_or_default()),
    )?;
    let key = module.generate(&uri, pki::CaCurve::P256)?;
    let cert = pki::dev_ca::write_dev_ca_for_key(
        out,
        "device-provisioning dev CA",
        std::sync::Arc::new(key),
        force,
    )?;
    println!(
        "wrote {}; its key stays in the token {:?} as {:?}: give the worker that URI as \
         CA_KEY_PATH",
        cert.display(),
        uri.token,
        uri.object
    );
    Ok(())
}

/// `worker scep-ra`.
fn scep_ra(key: &str, out: &std::path::Path, days: u32) -> Result<(), Box<dyn std::error::Error>> {
    let mut env = bootstrap::Env::from_process();
    let cert_path = env.required("CA_CERT_PATH", "the CA certificate, PEM");
    let ca_key = worker::config::ca_key_reference(&mut env);
    let module_path = env.required("PKCS11_MODULE_PATH", "the PKCS#11 module of the RA's token");
    let pin_file = env.required("PKCS11_PIN_FILE", "a file holding the token's user PIN");
    env.finish()?;
    let ca = pki::IssuingCa::open(
        std::path::Path::new(&cert_path.unwrap_or_default()),
        &ca_key,
        chrono::Duration::zero(),
    )?;
    let uri = pki::Pkcs11Uri::parse(key)?;
    let module = pki::Pkcs11Module::load(
        std::path::Path::new(&module_path.unwrap_or_default()),
        std::path::Path::new(&pin_file.unwrap_or_default()),
    )?;
    let ra_key = match module.open_rsa(&uri) {
        Ok(existing) => existing,
        Err(pki::Pkcs11SetupError::NoKey { .. }) => module.generate_rsa(&uri)?,
        Err(other) => return Err(other.into()),
    };
    let (chain, not_after) = pki::signer_certificate::certify_key(
        &ca,
        SignerPurpose::ScepRa,
        std::sync::Arc::new(ra_key),
        chrono::Duration::days(days.into()),
        chrono::Utc::now(),
    )?;
    std::fs::create_dir_all(out)?;
    let path = out.join(SignerPurpose::ScepRa.files().0);
    std::fs::write(&path, chain)?;
    println!(
        "wrote {} (valid until {}); give it to the api as SCEP_RA_CERT_PATH, with SCEP_RA_KEY={key}, \
         and restart it",
        path.display(),
        not_after.to_rfc3339()
    );
    Ok(())
}

/// `worker ocsp-signer` and `worker cmp-signer`.
fn delegated_signer(
    purpose: SignerPurpose,
    out: &std::path::Path,
    days: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut env = bootstrap::Env::from_process();
    let cert_path = env.required("CA_CERT_PATH", "the CA certificate, PEM");
    let key = worker::config::ca_key_reference(&mut env);
    env.finish()?;
    // The CA's key is loaded once, through the signing-key port; it certifies the signer and
    // issues no device certificate here (hence no device validity).
    let ca = pki::IssuingCa::open(
        std::path::Path::new(&cert_path.unwrap_or_default()),
        &key,
        chrono::Duration::zero(),
    )?;
    let validity = chrono::Duration::days(days.into());
    let signer = IssuedSigner::issue(&ca, purpose, validity, chrono::Utc::now())?;
    let (chain, key) = signer.write_to(out)?;
    let prefix = match purpose {
        SignerPurpose::Ocsp => "OCSP",
        SignerPurpose::CmpRa => "CMP",
        SignerPurpose::ScepRa => "SCEP_RA",
    };
    println!(
        "wrote {} and {} (valid until {}); give them to the api as {prefix}_SIGNER_CERT_PATH \
         and {prefix}_SIGNER_KEY_PATH and restart it",
        chain.display(),
        key.display(),
        signer.not_after.to_rfc3339()
    );
    Ok(())
}
