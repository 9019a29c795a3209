//! `worker` configuration, read from the environment and validated before anything starts.
//! README's configuration table lists every variable; keep the two in step.

use std::path::PathBuf;
use std::time::Duration;

use bootstrap::{
    database_settings, nats_url, ConfigError, Env, FeatureFlag, FeatureFlags, LogFormat,
};
use nats::{ConsumerSettings, NatsSettings, RelaySettings, StreamSettings};
use store::DatabaseSettings;

use crate::crl_publisher::CrlSchedule;
use app::pki::PublicBaseUrl;
use pki::{CertificateProfile, KeyReference, KeyStore, Pkcs11Access};

/// Adds a subjectAltName URI `urn:uuid:<device id>` to issued certificates.
pub const CERT_PROFILE_DEVICE_URI: &str = "cert-profile-device-uri";

/// The flags the worker understands (`FEATURE_FLAGS`); README's feature-flag table lists them.
pub const FEATURE_FLAGS: &[FeatureFlag] = &[FeatureFlag {
    name: CERT_PROFILE_DEVICE_URI,
    description: "issued certificates also carry a subjectAltName URI urn:uuid:<device id>",
}];

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub stream: StreamSettings,
    pub consumers: ConsumerSettings,
    /// Whether this process competes to be the relay (exactly one process is active).
    pub relay_enabled: bool,
    pub relay: RelaySettings,
    pub ca_cert_path: PathBuf,
    /// Where the CA's key is held (`CA_KEY_PATH`).
    pub ca_key: KeyReference,
    /// Where tenants' CA keys are made (`CA_KEY_STORE`).
    pub ca_key_store: Option<KeyStore>,
    /// A tenant's issuing CA is rotated once less than this is left of it
    /// (`CA_ROTATION_LEAD_DAYS`; by default the certificates' validity, so that none is cut
    /// short).
    pub ca_rotation_lead: chrono::Duration,
    /// How often tenants' CAs are looked at (`CA_STEWARD_INTERVAL_MS`).
    pub ca_steward_interval: Duration,
    /// How long a tenant CA's certificate of the api's OCSP responder key is valid
    /// (`OCSP_SIGNER_VALIDITY_DAYS`); renewed once a third of it is left.
    pub ocsp_signer_validity: chrono::Duration,
    /// Where relying parties reach the api's CRL and OCSP routes (`PUBLIC_BASE_URL`); written
    /// into every certificate.
    pub public_base_url: PublicBaseUrl,
    pub certificate_validity: chrono::Duration,
    /// How the CRL is re-issued.
    pub crl: CrlSchedule,
    pub certificate_profile: CertificateProfile,
    pub features: FeatureFlags,
    /// Certificate requests checked and signed at once (threads of the blocking pool).
    pub provisioner_concurrency: usize,
    pub provisioner_in_flight: usize,
    /// Events the projector applies per transaction, at most.
    pub projector_batch: usize,
    pub projector_linger: Duration,
    /// After SIGTERM, in-flight work gets this long to finish before the process exits.
    pub shutdown_grace: Duration,
    /// How long a worker holds its claim on a dead letter's retry before another may take it.
    pub dead_letter_retry_lease: Duration,
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub health_addr: std::net::SocketAddr,
    pub log_format: LogFormat,
}

/// `CA_KEY_PATH`: the CA key's file, or its `pkcs11:` URI, then reached through
/// `PKCS11_MODULE_PATH` and `PKCS11_PIN_FILE`. A problem is recorded in `env`, naming the
/// variable (the placeholder returned then is never used: `env.finish()` fails).
pub fn ca_key_reference<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> KeyReference {
    let value = env
        .required(
            "CA_KEY_PATH",
            "the CA private key: a PEM (PKCS#8) file, or a pkcs11: URI",
        )
        .unwrap_or_default();
    let pkcs11 = pkcs11_access(env);
    KeyReference::parse("CA_KEY_PATH", &value, pkcs11.as_ref()).unwrap_or_else(|problem| {
        env.problem(problem.to_string());
        KeyReference::File {
            variable: "CA_KEY_PATH",
            path: PathBuf::new(),
        }
    })
}

/// `PKCS11_MODULE_PATH` and `PKCS11_PIN_FILE`, when both are set.
fn pkcs11_access<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Option<Pkcs11Access> {
    match (
        env.optional("PKCS11_MODULE_PATH"),
        env.optional("PKCS11_PIN_FILE"),
    ) {
        (Some(module_path), Some(pin_file)) => Some(Pkcs11Access {
            module_path: module_path.into(),
            pin_file: pin_file.into(),
        }),
        _ => None,
    }
}

/// `CA_KEY_STORE`: where tenants' CA keys are made (a directory, or `pkcs11:token=<label>`);
/// `None` when unset (tenants' CAs then wait, and say so in the log).
fn ca_key_store<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Option<KeyStore> {
    let value = env.optional("CA_KEY_STORE")?;
    let pkcs11 = pkcs11_access(env);
    KeyStore::parse(&value, pkcs11.as_ref())
        .map_err(|problem| env.problem(problem.to_string()))
        .ok()
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let StreamAccess {
            database,
            nats,
            stream,
            consumers,
        } = StreamAccess::read(&mut env);
        let relay = RelaySettings {
            batch_size: env.number_or("RELAY_BATCH_SIZE", 500, 1..=10_000) as usize,
            poll_interval: env.millis_or("RELAY_POLL_MS", 500, 10..=60_000),
            ..RelaySettings::default()
        };
        let relay_enabled = env.parse_or("RELAY_ENABLED", true);
        let ca_cert_path = env
            .required("CA_CERT_PATH", "the CA certificate, PEM")
            .unwrap_or_default()
            .into();
        let ca_key = ca_key_reference(&mut env);
        let ca_key_store = ca_key_store(&mut env);
        let public_base_url = env.parse_or(
            "PUBLIC_BASE_URL",
            PublicBaseUrl::parse("http://127.0.0.1:8080").expect("a valid default"),
        );
        let crl = CrlSchedule {
            validity: Duration::from_secs(env.number_or(
                "CRL_VALIDITY_SECONDS",
                86_400,
                10..=30 * 86_400,
            )),
            min_interval: env.millis_or("CRL_MIN_INTERVAL_MS", 1_000, 100..=3_600_000),
        };
        let validity_days = env.number_or("CERT_VALIDITY_DAYS", 365, 1..=3650);
        let certificate_validity = chrono::Duration::days(validity_days as i64);
        let ca_rotation_lead =
            chrono::Duration::days(
                env.number_or("CA_ROTATION_LEAD_DAYS", validity_days, 1..=36_500) as i64,
            );
        let ca_steward_interval = env.millis_or("CA_STEWARD_INTERVAL_MS", 1_000, 100..=3_600_000);
        let ocsp_signer_validity =
            chrono::Duration::days(env.number_or("OCSP_SIGNER_VALIDITY_DAYS", 30, 1..=366) as i64);
        let features = env.feature_flags(FEATURE_FLAGS);
        let certificate_profile = if features.is_enabled(CERT_PROFILE_DEVICE_URI) {
            CertificateProfile::DeviceUri
        } else {
            CertificateProfile::Standard
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let provisioner_concurrency =
            env.number_or("PROVISIONER_CONCURRENCY", cores, 1..=256) as usize;
        let provisioner_in_flight = env.number_or("PROVISIONER_IN_FLIGHT", 64, 1..=1_000) as usize;
        let projector_batch = env.number_or("PROJECTOR_BATCH_SIZE", 256, 1..=5_000) as usize;
        let projector_linger =
            Duration::from_millis(env.number_or("PROJECTOR_BATCH_WAIT_MS", 10, 0..=1_000));
        let shutdown_grace =
            Duration::from_secs(env.number_or("SHUTDOWN_GRACE_SECONDS", 20, 0..=3600));
        let dead_letter_retry_lease =
            Duration::from_secs(env.number_or("DEAD_LETTER_RETRY_LEASE_SECONDS", 300, 1..=86_400));
        let health_addr = env.parse_or(
            "WORKER_HEALTH_ADDR",
            std::net::SocketAddr::from(([0, 0, 0, 0], 9090)),
        );
        let log_format = env.parse_or("LOG_FORMAT", LogFormat::Json);
        env.finish()?;
        Ok(Self {
            database,
            nats,
            stream,
            consumers,
            relay_enabled,
            relay,
            ca_cert_path,
            ca_key,
            ca_key_store,
            ca_rotation_lead,
            ca_steward_interval,
            ocsp_signer_validity,
            public_base_url,
            certificate_validity,
            crl,
            certificate_profile,
            features,
            provisioner_concurrency,
            provisioner_in_flight,
            projector_batch,
            projector_linger,
            shutdown_grace,
            dead_letter_retry_lease,
            health_addr,
            log_format,
        })
    }
}

/// What `worker replay` needs (and `run` too): the database, NATS, the stream and the
/// consumers' settings; no CA.
#[derive(Debug, Clone)]
pub struct StreamAccess {
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub stream: StreamSettings,
    pub consumers: ConsumerSettings,
}

impl StreamAccess {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = Env::new(|name| std::env::var(name).ok());
        let access = Self::read(&mut env);
        env.finish()?;
        Ok(access)
    }

    fn read<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Self {
        let database = DatabaseSettings {
            // The worker's statements are batches (projectors, the relay, group commit).
            plan_per_execution: true,
            ..database_settings(env, "provisioning-worker")
        };
        let nats = NatsSettings {
            url: nats_url(env),
            connect_timeout: env.millis_or("NATS_CONNECT_TIMEOUT_MS", 5_000, 100..=120_000),
        };
        let stream = StreamSettings {
            name: env.parse_or("NATS_STREAM", "DEVICE_EVENTS".to_owned()),
            subject_prefix: env.parse_or("NATS_SUBJECT_PREFIX", "events".to_owned()),
            duplicate_window: Duration::from_secs(env.number_or(
                "NATS_DUPLICATE_WINDOW_SECONDS",
                300,
                120..=86_400,
            )),
            max_age: Duration::from_secs(
                86_400 * env.number_or("NATS_STREAM_MAX_AGE_DAYS", 30, 1..=3650),
            ),
            replicas: env.number_or("NATS_STREAM_REPLICAS", 1, 1..=5) as usize,
        };
        check_token(env, "NATS_STREAM", &stream.name);
        check_token(env, "NATS_SUBJECT_PREFIX", &stream.subject_prefix);
        let consumers = ConsumerSettings {
            max_ack_pending: env.number_or("CONSUMER_MAX_ACK_PENDING", 1_000, 1..=100_000) as i64,
            max_deliver: env.number_or("CONSUMER_MAX_DELIVER", 5, 2..=100) as i64,
            backoff: millis_list(env, "CONSUMER_BACKOFF_MS", "5000,15000,60000,300000"),
        };
        Self {
            database,
            nats,
            stream,
            consumers,
        }
    }
}

/// Stream names and subject tokens may not contain separators or wildcards.
fn check_token<F: Fn(&str) -> Option<String>>(env: &mut Env<F>, name: &str, value: &str) {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        env.problem(format!(
            "{name} may contain only ASCII letters, digits, '-' and '_'"
        ));
    }
}

fn millis_list<F: Fn(&str) -> Option<String>>(
    env: &mut Env<F>,
    name: &str,
    default: &str,
) -> Vec<Duration> {
    let raw = env.parse_or(name, default.to_owned());
    let parsed: Result<Vec<u64>, _> = raw.split(',').map(|p| p.trim().parse::<u64>()).collect();
    match parsed {
        Ok(values)
            if !values.is_empty() && values.iter().all(|v| (100..=3_600_000).contains(v)) =>
        {
            values.into_iter().map(Duration::from_millis).collect()
        }
        _ => {
            env.problem(format!(
                "{name}={raw:?} must be a comma-separated list of milliseconds, each 100..=3600000"
            ));
            vec![Duration::from_secs(5)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(name: &str) -> Option<String> {
        match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            "CA_CERT_PATH" => Some("/ca.pem".into()),
            "CA_KEY_PATH" => Some("/ca.key".into()),
            _ => None,
        }
    }

    #[test]
    fn a_minimal_environment_gets_the_documented_defaults() {
        let config = WorkerConfig::from_lookup(minimal).unwrap();
        assert_eq!(config.stream.name, "DEVICE_EVENTS");
        assert_eq!(config.stream.subject_prefix, "events");
        assert!(config.stream.duplicate_window >= Duration::from_secs(120));
        assert_eq!(config.consumers.max_deliver, 5);
        assert_eq!(config.consumers.backoff[0], Duration::from_secs(5));
        assert!(config.relay_enabled);
    }

    #[test]
    fn certificate_profile_comes_from_a_feature_flag() {
        let standard = WorkerConfig::from_lookup(minimal).unwrap();
        assert_eq!(standard.certificate_profile, CertificateProfile::Standard);
        let flagged = WorkerConfig::from_lookup(|name| match name {
            "FEATURE_FLAGS" => Some("cert-profile-device-uri".into()),
            other => minimal(other),
        })
        .unwrap();
        assert_eq!(flagged.certificate_profile, CertificateProfile::DeviceUri);
        let typo = WorkerConfig::from_lookup(|name| match name {
            "FEATURE_FLAGS" => Some("cert-profile-device-url".into()),
            other => minimal(other),
        })
        .unwrap_err();
        assert!(typo.to_string().contains("unknown feature flag"), "{typo}");
    }

    #[test]
    fn a_replay_needs_no_ca() {
        let mut env = Env::new(|name| match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            _ => None,
        });
        let access = StreamAccess::read(&mut env);
        env.finish().unwrap();
        assert_eq!(access.stream.name, "DEVICE_EVENTS");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = WorkerConfig::from_lookup(|name| match name {
            "NATS_SUBJECT_PREFIX" => Some("events.>".into()),
            "CONSUMER_BACKOFF_MS" => Some("5s".into()),
            "NATS_DUPLICATE_WINDOW_SECONDS" => Some("10".into()),
            other => minimal(other).filter(|_| other != "CA_KEY_PATH"),
        })
        .unwrap_err()
        .to_string();
        for name in [
            "NATS_SUBJECT_PREFIX",
            "CONSUMER_BACKOFF_MS",
            "NATS_DUPLICATE_WINDOW_SECONDS",
            "CA_KEY_PATH",
        ] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }
    }
}
