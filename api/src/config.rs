//! `api serve` configuration, read from the environment and validated before anything
//! starts. README's configuration table lists every variable; keep the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use app::{LongPollLimits, RetryPolicy};
use bootstrap::{database_settings, nats_url, ConfigError, Env, LogFormat};
use store::DatabaseSettings;

use crate::http::{ConnectionLimits, HttpLimits, InFlightBound, MAX_WAIT_SECONDS};
use crate::tls::TlsSettings;

/// HS256 needs a key at least as long as its output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// A secret value: usable, never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    /// `API_HEALTH_ADDR`: a plain-HTTP listener of its own for `/livez`, `/readyz` and
    /// `/metrics` (probes no client of `API_ADDR` can crowd out).
    pub health_addr: Option<SocketAddr>,
    /// `PKI_ADDR`: a plain-HTTP listener of its own for the CRLs and OCSP (relying parties
    /// fetch status over plain HTTP; needed when `API_ADDR` speaks TLS).
    pub pki_addr: Option<SocketAddr>,
    pub database: DatabaseSettings,
    /// A read-only replica for the query side (`DATABASE_READ_URL`; the `DB_*` pool settings
    /// apply to it too); `None`: queries read the primary.
    pub read_database: Option<DatabaseSettings>,
    /// Probed by `/readyz` only: the api never publishes (the relay runs in the worker).
    pub nats_url: String,
    /// How bearer tokens are verified.
    pub tokens: TokenSettings,
    pub limits: HttpLimits,
    pub retry: RetryPolicy,
    /// Idempotency records are kept at least this long (≥ 24 h).
    pub idempotency_retention: Duration,
    /// After SIGTERM, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    /// After SIGTERM, `/readyz` answers 503 for this long before the listener closes, so
    /// that load balancers stop routing to this process first.
    pub readiness_drain_delay: Duration,
    /// Requests per second each tenant may make (0: unlimited), and the burst it may use.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Long-polls that may wait at once, per tenant and in this process.
    pub long_polls: LongPollLimits,
    /// Commands this process works on at once; past it 503 `overloaded`.
    pub command_max_in_flight: usize,
    /// Requests (health and metrics aside) this process works on at once; past it 503
    /// `overloaded`.
    pub request_max_in_flight: usize,
    /// Client connections held at once, and how long an idle one is kept.
    pub connections: ConnectionLimits,
    pub ocsp: OcspSettings,
    /// TLS on the api's socket; `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Enrollment groups and EST.
    pub enrollment: EnrollmentSettings,
    pub log_format: LogFormat,
}

/// `ENROLLMENT_KEY_ENCRYPTION_KEY`, `CA_CERT_PATH`, `EST_RETRY_AFTER_SECONDS`,
/// `EST_LABELLESS_MAX_GROUPS`, `CMP_SIGNER_CERT_PATH`, `CMP_SIGNER_KEY_PATH`,
/// `SCEP_RA_CERT_PATH`, `SCEP_RA_KEY`, `PKCS11_MODULE_PATH`, `PKCS11_PIN_FILE`.
#[derive(Debug, Clone)]
pub struct EnrollmentSettings {
    /// Seals enrollment group keys at rest (base64 of 32 bytes, checked here); without it
    /// there are no enrollment groups, and so no EST enrollment.
    pub key_encryption_key: Option<Secret>,
    /// The fleet CA's certificate (the worker's `CA_CERT_PATH`; the api reads only the
    /// certificate, never the key): what EST's `cacerts` serves. EST is off without it.
    pub ca_cert_path: Option<PathBuf>,
    /// What a pending EST enrollment's 202 says in `Retry-After`.
    pub retry_after: Duration,
    /// A `simpleenroll` that names no group tries at most this many enabled groups; past it
    /// the device is told to name its group (what an unnamed request costs stays bounded).
    pub label_less_max_groups: usize,
    /// The CMP signer's files (`CMP_SIGNER_CERT_PATH`, `CMP_SIGNER_KEY_PATH`, as `worker
    /// cmp-signer` writes them): without them CMP answers only MAC-protected requests.
    pub cmp_signer: Option<SignerFiles>,
    /// SCEP's registration authority (`SCEP_RA_CERT_PATH`, `SCEP_RA_KEY`, its key in a
    /// PKCS#11 token reached through `PKCS11_MODULE_PATH` and `PKCS11_PIN_FILE`); SCEP is off
    /// without it.
    pub scep_ra: Option<ScepRaSettings>,
}

/// Where SCEP's registration authority is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepRaSettings {
    pub cert_path: PathBuf,
    /// `pkcs11:token=…;object=…`.
    pub key_uri: String,
    pub pkcs11: pki::Pkcs11Access,
}

/// The OCSP responder's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspSettings {
    /// The delegated signer's files (`OCSP_SIGNER_CERT_PATH`, `OCSP_SIGNER_KEY_PATH`, as
    /// `worker ocsp-signer` writes them); without them the responder is off.
    pub signer: Option<SignerFiles>,
    /// nextUpdate − thisUpdate of every answer (`OCSP_NEXT_UPDATE_SECONDS`): how long a
    /// relying party or a cache may rely on it.
    pub next_update: Duration,
    /// How long an answer read from `certificate_status` is reused (`OCSP_STATUS_CACHE_MS`;
    /// zero: every answer is read).
    pub status_cache: Duration,
}

/// `AUTH_JWT_SECRET`, `AUTH_JWKS_PATH`, `AUTH_JWT_ISSUER`, `AUTH_JWT_AUDIENCE`.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// HS256 (local use); required unless a JWKS is given.
    pub jwt_secret: Option<Secret>,
    /// An identity provider's public keys (ES256, RS256), as a JWKS file…
    pub jwks_path: Option<PathBuf>,
    /// …or at a URL, fetched at start and every `jwks_refresh`.
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
    /// The `iss` tokens must carry, when set.
    pub issuer: Option<String>,
    /// The audience tokens must name in `aud`, when set.
    pub audience: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let addr = env.parse_or("API_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)));
        let health_addr = optional_address(&mut env, "API_HEALTH_ADDR");
        let pki_addr = optional_address(&mut env, "PKI_ADDR");
        let database = database_settings(&mut env, "provisioning-api");
        let read_database = env.optional("DATABASE_READ_URL").map(|url| {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                env.problem(
                    "DATABASE_READ_URL must start with postgres:// or postgresql://".into(),
                );
            }
            DatabaseSettings {
                url,
                application_name: "provisioning-api-reads".to_owned(),
                ..database.clone()
            }
        });
        let nats_url = nats_url(&mut env);
        let tokens = token_settings(&mut env);
        let limits = HttpLimits {
            body_limit_bytes: env.number_or(
                "REQUEST_BODY_LIMIT_BYTES",
                64 * 1024,
                1024..=16 * 1024 * 1024,
            ) as usize,
            request_timeout: env.millis_or("REQUEST_TIMEOUT_MS", 10_000, 100..=600_000),
        };
        let retry = RetryPolicy {
            max_attempts: env.number_or("COMMAND_MAX_ATTEMPTS", 10, 1..=100) as usize,
            ..RetryPolicy::default()
        };
        let idempotency_retention = Duration::from_secs(
            3600 * env.number_or("IDEMPOTENCY_RETENTION_HOURS", 24, 24..=24 * 365),
        );
        let shutdown_grace =
            Duration::from_secs(env.number_or("SHUTDOWN_GRACE_SECONDS", 20, 0..=3600));
        let readiness_drain_delay = env.millis_or("READINESS_DRAIN_DELAY_MS", 0, 0..=60_000);
        let rate_limit_per_second =
            env.number_or("RATE_LIMIT_PER_SECOND", 1_000, 0..=1_000_000) as u32;
        let rate_limit_burst = env.number_or("RATE_LIMIT_BURST", 2_000, 0..=10_000_000) as u32;
        let defaults = LongPollLimits::default();
        let long_polls = LongPollLimits {
            per_tenant: env.number_or(
                "LONG_POLL_MAX_PER_TENANT",
                defaults.per_tenant as u64,
                1..=100_000,
            ) as usize,
            total: env.number_or("LONG_POLL_MAX", defaults.total as u64, 1..=1_000_000) as usize,
        };
        if long_polls.per_tenant > long_polls.total {
            env.problem(format!(
                "LONG_POLL_MAX_PER_TENANT ({}) must not exceed LONG_POLL_MAX ({})",
                long_polls.per_tenant, long_polls.total
            ));
        }
        let command_max_in_flight = env.number_or(
            "COMMAND_MAX_IN_FLIGHT",
            InFlightBound::Commands.default_max() as u64,
            1..=100_000,
        ) as usize;
        let request_max_in_flight = env.number_or(
            "REQUEST_MAX_IN_FLIGHT",
            InFlightBound::Requests.default_max() as u64,
            1..=1_000_000,
        ) as usize;
        if command_max_in_flight > request_max_in_flight {
            env.problem(format!(
                "COMMAND_MAX_IN_FLIGHT ({command_max_in_flight}) must not exceed \
                 REQUEST_MAX_IN_FLIGHT ({request_max_in_flight})"
            ));
        }
        // Waiting long-polls are requests in flight too: if they could take every slot,
        // nothing else would be served.
        if long_polls.total >= request_max_in_flight {
            env.problem(format!(
                "LONG_POLL_MAX ({}) must be below REQUEST_MAX_IN_FLIGHT ({request_max_in_flight})",
                long_polls.total
            ));
        }
        let connection_defaults = ConnectionLimits::default();
        let connections = ConnectionLimits {
            max_connections: env.number_or(
                "HTTP_MAX_CONNECTIONS",
                connection_defaults.max_connections as u64,
                1..=1_000_000,
            ) as usize,
            max_pending_per_address: env.number_or(
                "HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS",
                connection_defaults.max_pending_per_address as u64,
                1..=1_000_000,
            ) as usize,
            idle_timeout: Duration::from_secs(env.number_or(
                "HTTP_IDLE_TIMEOUT_SECONDS",
                connection_defaults.idle_timeout.as_secs(),
                MAX_WAIT_SECONDS + 1..=86_400,
            )),
            header_read_timeout: Duration::from_secs(env.number_or(
                "HTTP_HEADER_READ_TIMEOUT_SECONDS",
                connection_defaults.header_read_timeout.as_secs(),
                1..=3_600,
            )),
        };
        // A waiting long-poll holds its connection (HTTP/1.1): if they could hold every
        // connection, no other request would get in.
        if long_polls.total >= connections.max_connections {
            env.problem(format!(
                "LONG_POLL_MAX ({}) must be below HTTP_MAX_CONNECTIONS ({})",
                long_polls.total, connections.max_connections
            ));
        }
        let ocsp = ocsp_settings(&mut env);
        let tls = tls_settings(&mut env);
        let enrollment = enrollment_settings(&mut env);
        let log_format = env.parse_or("LOG_FORMAT", LogFormat::Json);
        env.finish()?;
        Ok(Self {
            addr,
            health_addr,
            pki_addr,
            database,
            read_database,
            nats_url,
            tokens,
            limits,
            retry,
            idempotency_retention,
            shutdown_grace,
            readiness_drain_delay,
            rate_limit_per_second,
            rate_limit_burst,
            long_polls,
            command_max_in_flight,
            request_max_in_flight,
            connections,
            ocsp,
            tls,
            enrollment,
            log_format,
        })
    }
}

fn token_settings<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> TokenSettings {
    let jwks_path = env.optional("AUTH_JWKS_PATH").map(PathBuf::from);
    let jwks_url = env.optional("AUTH_JWKS_URL");
    if jwks_path.is_some() && jwks_url.is_some() {
        env.problem("AUTH_JWKS_PATH and AUTH_JWKS_URL: set one of them, not both".into());
    }
    if let Some(url) = &jwks_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            env.problem(format!("AUTH_JWKS_URL={url:?} must be an http(s) URL"));
        }
    }
    let jwks_refresh =
        Duration::from_secs(env.number_or("AUTH_JWKS_REFRESH_SECONDS", 300, 10..=86_400));
    let has_jwks = jwks_path.is_some() || jwks_url.is_some();
    // Without a JWKS the shared secret is the only way to verify tokens: required then.
    let jwt_secret = if !has_jwks || env.optional("AUTH_JWT_SECRET").is_some() {
        env.secret("AUTH_JWT_SECRET", MIN_JWT_SECRET_BYTES)
            .map(Secret)
    } else {
        None
    };
    TokenSettings {
        jwt_secret,
        jwks_path,
        jwks_url,
        jwks_refresh,
        issuer: env.optional("AUTH_JWT_ISSUER"),
        audience: env.optional("AUTH_JWT_AUDIENCE"),
    }
}

/// An optional listening address (`host:port`), a problem named after `name` if it is not one.
fn optional_address<F: Fn(&str) -> Option<String>>(
    env: &mut Env<F>,
    name: &str,
) -> Option<SocketAddr> {
    let raw = env.optional(name)?;
    match raw.trim().parse() {
        Ok(addr) => Some(addr),
        Err(e) => {
            env.problem(format!(
                "{name}={raw:?} is not valid: {e} (expected host:port)"
            ));
            None
        }
    }
}

fn enrollment_settings<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> EnrollmentSettings {
    let key_encryption_key = env.optional("ENROLLMENT_KEY_ENCRYPTION_KEY");
    if let Some(raw) = &key_encryption_key {
        // The problem names the variable and the rule, never the value.
        if let Err(rule) = store::GroupKeySealer::from_base64(raw) {
            env.problem(format!("ENROLLMENT_KEY_ENCRYPTION_KEY {}", rule.0));
        }
    }
    EnrollmentSettings {
        key_encryption_key: key_encryption_key.map(Secret),
        ca_cert_path: env.optional("CA_CERT_PATH").map(PathBuf::from),
        retry_after: Duration::from_secs(env.number_or("EST_RETRY_AFTER_SECONDS", 2, 1..=3600)),
        // At most 256: about 0.6 ms of CPU a request (a key opened and an HMAC per group).
        label_less_max_groups: env.number_or(
            "EST_LABELLESS_MAX_GROUPS",
            app::GroupCredentialVerifier::DEFAULT_LABEL_LESS_MAX_GROUPS as u64,
            0..=256,
        ) as usize,
        cmp_signer: signer_files(
            env,
            ("CMP_SIGNER_CERT_PATH", "CMP_SIGNER_KEY_PATH"),
            (
                "the CMP signer, for kur and rr",
                "CMP takes MAC-protected requests only",
            ),
        ),
        scep_ra: scep_ra_settings(env),
    }
}

fn scep_ra_settings<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Option<ScepRaSettings> {
    let (cert_path, key_uri) = match (
        env.optional("SCEP_RA_CERT_PATH"),
        env.optional("SCEP_RA_KEY"),
    ) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => return None,
        _ => {
            env.problem(
                "SCEP_RA_CERT_PATH and SCEP_RA_KEY go together: set both (SCEP, with the RA \
                 `worker scep-ra` made) or neither (no SCEP)"
                    .into(),
            );
            return None;
        }
    };
    if pki::Pkcs11Uri::parse(&key_uri).is_err() {
        env.problem(
            "SCEP_RA_KEY must name a key in a PKCS#11 token: pkcs11:token=<token>;object=<label>"
                .into(),
        );
        return None;
    }
    match (
        env.optional("PKCS11_MODULE_PATH"),
        env.optional("PKCS11_PIN_FILE"),
    ) {
        (Some(module_path), Some(pin_file)) => Some(ScepRaSettings {
            cert_path: cert_path.into(),
            key_uri,
            pkcs11: pki::Pkcs11Access {
                module_path: module_path.into(),
                pin_file: pin_file.into(),
            },
        }),
        _ => {
            env.problem(
                "SCEP_RA_KEY names a key in a PKCS#11 token: set PKCS11_MODULE_PATH (the \
                 token's module) and PKCS11_PIN_FILE (a file holding the user PIN)"
                    .into(),
            );
            None
        }
    }
}

fn tls_settings<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Option<TlsSettings> {
    let client_ca_path = env.optional("TLS_CLIENT_CA_PATH").map(PathBuf::from);
    let reload_interval = Duration::from_secs(env.number_or("TLS_RELOAD_SECONDS", 60, 1..=86_400));
    match (env.optional("TLS_CERT_PATH"), env.optional("TLS_KEY_PATH")) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert_path: cert.into(),
            key_path: key.into(),
            client_ca_path,
            reload_interval,
        }),
        (None, None) => {
            if client_ca_path.is_some() {
                env.problem(
                    "TLS_CLIENT_CA_PATH needs TLS: set TLS_CERT_PATH and TLS_KEY_PATH too".into(),
                );
            }
            None
        }
        _ => {
            env.problem(
                "TLS_CERT_PATH and TLS_KEY_PATH go together: set both (TLS) or neither (plain \
                 HTTP)"
                    .into(),
            );
            None
        }
    }
}

/// A delegated signer's two files, which go together: `(cert, key)` name their variables,
/// `(both, neither)` say what setting both, or neither, means.
fn signer_files<F: Fn(&str) -> Option<String>>(
    env: &mut Env<F>,
    (cert, key): (&str, &str),
    (both, neither): (&str, &str),
) -> Option<SignerFiles> {
    match (env.optional(cert), env.optional(key)) {
        (Some(cert), Some(key)) => Some(SignerFiles {
            cert_path: cert.into(),
            key_path: key.into(),
        }),
        (None, None) => None,
        _ => {
            env.problem(format!(
                "{cert} and {key} go together: set both ({both}) or neither ({neither})"
            ));
            None
        }
    }
}

fn ocsp_settings<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> OcspSettings {
    let signer = signer_files(
        env,
        ("OCSP_SIGNER_CERT_PATH", "OCSP_SIGNER_KEY_PATH"),
        ("the OCSP responder's signer", "no OCSP"),
    );
    let next_update =
        Duration::from_secs(env.number_or("OCSP_NEXT_UPDATE_SECONDS", 60, 1..=7 * 86_400));
    // At most 900 ms: a revocation must show over OCSP within a second.
    let status_cache = env.millis_or("OCSP_STATUS_CACHE_MS", 250, 0..=900);
    OcspSettings {
        signer,
        next_update,
        status_cache,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_environment_gets_the_documented_defaults() {
        let config = ApiConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            "AUTH_JWT_SECRET" => Some("s".repeat(32)),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(config.limits.body_limit_bytes, 65536);
        assert_eq!(config.idempotency_retention, Duration::from_secs(86400));
        assert_eq!(
            config.long_polls,
            LongPollLimits {
                per_tenant: 100,
                total: 500
            }
        );
        assert_eq!(config.command_max_in_flight, 256);
        assert_eq!(config.request_max_in_flight, 2048);
        assert!(!format!("{config:?}").contains(&"s".repeat(32)));
        assert_eq!(
            config.ocsp,
            OcspSettings {
                signer: None,
                next_update: Duration::from_secs(60),
                status_cache: Duration::from_millis(250),
            }
        );
    }

    #[test]
    fn the_ocsp_signer_takes_both_files_or_neither() {
        let lookup = |cert: Option<&str>, key: Option<&str>| {
            let (cert, key) = (cert.map(str::to_owned), key.map(str::to_owned));
            ApiConfig::from_lookup(move |name| match name {
                "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
                "AUTH_JWT_SECRET" => Some("s".repeat(32)),
                "OCSP_SIGNER_CERT_PATH" => cert.clone(),
                "OCSP_SIGNER_KEY_PATH" => key.clone(),
                "OCSP_NEXT_UPDATE_SECONDS" => Some("300".into()),
                _ => None,
            })
        };
        let config = lookup(Some("/s/ocsp-signer.pem"), Some("/s/ocsp-signer.key")).unwrap();
        assert_eq!(
            config.ocsp,
            OcspSettings {
                signer: Some(SignerFiles {
                    cert_path: "/s/ocsp-signer.pem".into(),
                    key_path: "/s/ocsp-signer.key".into(),
                }),
                next_update: Duration::from_secs(300),
                status_cache: Duration::from_millis(250),
            }
        );
        let err = lookup(Some("/s/ocsp-signer.pem"), None).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        assert!(lookup(None, Some("/s/ocsp-signer.key")).is_err());
    }

    #[test]
    fn retention_below_a_day_is_refused() {
        let err = ApiConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            "AUTH_JWT_SECRET" => Some("s".repeat(32)),
            "IDEMPOTENCY_RETENTION_HOURS" => Some("1".into()),
            "API_ADDR" => Some("nonsense".into()),
            _ => None,
        })
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("IDEMPOTENCY_RETENTION_HOURS"), "{message}");
        assert!(message.contains("API_ADDR"), "{message}");
    }

    #[test]
    fn long_poll_limits_are_bounded_and_the_tenant_limit_fits_in_the_total() {
        let err = ApiConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            "AUTH_JWT_SECRET" => Some("s".repeat(32)),
            "LONG_POLL_MAX_PER_TENANT" => Some("50".into()),
            "LONG_POLL_MAX" => Some("10".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("LONG_POLL_MAX_PER_TENANT (50) must not exceed LONG_POLL_MAX (10)"),
            "{err}"
        );
        let err = ApiConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            "AUTH_JWT_SECRET" => Some("s".repeat(32)),
            "LONG_POLL_MAX_PER_TENANT" => Some("0".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("LONG_POLL_MAX_PER_TENANT"),
            "{err}"
        );
    }

    /// The configuration from the required variables and `vars`.
    fn config(vars: &'static [(&'static str, &'static str)]) -> Result<ApiConfig, ConfigError> {
        ApiConfig::from_lookup(move |name| match name {
            "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
            "AUTH_JWT_SECRET" => Some("s".repeat(32)),
            _ => vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned()),
        })
    }

    #[test]
    fn a_jwks_makes_the_shared_secret_optional_and_issuer_and_audience_are_read() {
        let with_jwks = |vars: &'static [(&'static str, &'static str)]| {
            ApiConfig::from_lookup(move |name| match name {
                "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/x".into()),
                _ => vars
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned()),
            })
        };
        let tokens = with_jwks(&[
            ("AUTH_JWKS_PATH", "/etc/api/idp.jwks.json"),
            ("AUTH_JWT_ISSUER", "https://idp.example/"),
            ("AUTH_JWT_AUDIENCE", "device-provisioning"),
        ])
        .unwrap()
        .tokens;
        assert!(tokens.jwt_secret.is_none());
        assert_eq!(tokens.jwks_path, Some("/etc/api/idp.jwks.json".into()));
        assert_eq!(tokens.issuer.as_deref(), Some("https://idp.example/"));
        assert_eq!(tokens.audience.as_deref(), Some("device-provisioning"));
        let err = with_jwks(&[]).unwrap_err().to_string();
        assert!(err.contains("AUTH_JWT_SECRET is required"), "{err}");
        // Set beside a JWKS, the secret is still checked.
        let err = with_jwks(&[("AUTH_JWKS_PATH", "/j"), ("AUTH_JWT_SECRET", "short")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key_together_and_a_client_ca_only_with_them() {
        assert_eq!(config(&[]).unwrap().tls, None, "plain HTTP by default");
        let tls = config(&[
            ("TLS_CERT_PATH", "/etc/api/server.pem"),
            ("TLS_KEY_PATH", "/etc/api/server.key"),
            ("TLS_CLIENT_CA_PATH", "/etc/api/fleet-ca.pem"),
        ])
        .unwrap()
        .tls;
        assert_eq!(
            tls,
            Some(TlsSettings {
                cert_path: "/etc/api/server.pem".into(),
                key_path: "/etc/api/server.key".into(),
                client_ca_path: Some("/etc/api/fleet-ca.pem".into()),
                reload_interval: Duration::from_secs(60),
            })
        );
        let err = config(&[("TLS_CERT_PATH", "/etc/api/server.pem")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TLS_CERT_PATH and TLS_KEY_PATH go together"),
            "{err}"
        );
        let err = config(&[("TLS_CLIENT_CA_PATH", "/etc/api/fleet-ca.pem")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS_CLIENT_CA_PATH needs TLS"), "{err}");
        assert!(config(&[
            ("TLS_CERT_PATH", "/c"),
            ("TLS_KEY_PATH", "/k"),
            ("TLS_RELOAD_SECONDS", "0"),
        ])
        .is_err());
    }

    #[test]
    fn a_read_replica_is_optional_and_takes_the_pool_settings() {
        assert!(config(&[]).unwrap().read_database.is_none());
        let with = config(&[
            (
                "DATABASE_READ_URL",
                "postgres://reader@replica:5432/provisioning",
            ),
            ("DB_MAX_CONNECTIONS", "7"),
        ])
        .unwrap();
        let reads = with.read_database.unwrap();
        assert_eq!(reads.url, "postgres://reader@replica:5432/provisioning");
        assert_eq!(reads.max_connections, 7);
        let err = config(&[("DATABASE_READ_URL", "mysql://x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DATABASE_READ_URL must start with postgres://"),
            "{err}"
        );
    }

    #[test]
    fn the_key_encryption_key_is_checked_and_never_echoed() {
        let off = config(&[]).unwrap().enrollment;
        assert!(off.key_encryption_key.is_none() && off.ca_cert_path.is_none());
        assert_eq!(off.retry_after, Duration::from_secs(2));
        assert_eq!(off.label_less_max_groups, 16);
        const KEK: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        const SHORT: &str = "c2hvcnQtYnV0LXNlY3JldA==";
        let on = config(&[
            ("ENROLLMENT_KEY_ENCRYPTION_KEY", KEK),
            ("CA_CERT_PATH", "/etc/ca.pem"),
        ])
        .unwrap()
        .enrollment;
        assert_eq!(on.key_encryption_key.unwrap().expose(), KEK);
        let err = config(&[("ENROLLMENT_KEY_ENCRYPTION_KEY", SHORT)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ENROLLMENT_KEY_ENCRYPTION_KEY must be 32 bytes"),
            "{err}"
        );
        assert!(!err.contains(SHORT), "{err}");
    }

    #[test]
    fn label_less_enrollment_tries_a_bounded_number_of_groups() {
        let none = config(&[("EST_LABELLESS_MAX_GROUPS", "0")]).unwrap();
        assert_eq!(none.enrollment.label_less_max_groups, 0);
        let err = config(&[("EST_LABELLESS_MAX_GROUPS", "257")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("EST_LABELLESS_MAX_GROUPS=257 is out of range"),
            "{err}"
        );
    }

    #[test]
    fn in_flight_bounds_nest_commands_and_long_polls_within_requests() {
        let ok = config(&[
            ("COMMAND_MAX_IN_FLIGHT", "8"),
            ("REQUEST_MAX_IN_FLIGHT", "1001"),
        ])
        .unwrap();
        assert_eq!(
            (ok.command_max_in_flight, ok.request_max_in_flight),
            (8, 1001)
        );
        let err = config(&[
            ("COMMAND_MAX_IN_FLIGHT", "300"),
            ("REQUEST_MAX_IN_FLIGHT", "200"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("COMMAND_MAX_IN_FLIGHT (300) must not exceed REQUEST_MAX_IN_FLIGHT (200)"),
            "{err}"
        );
        assert!(
            err.contains("LONG_POLL_MAX (500) must be below REQUEST_MAX_IN_FLIGHT (200)"),
            "{err}"
        );
        assert!(config(&[("COMMAND_MAX_IN_FLIGHT", "0")]).is_err());
    }

    #[test]
    fn connections_outnumber_long_polls_and_idle_outlasts_the_longest_wait() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.connections, ConnectionLimits::default());
        let ok = config(&[
            ("HTTP_MAX_CONNECTIONS", "64"),
            ("LONG_POLL_MAX", "32"),
            ("LONG_POLL_MAX_PER_TENANT", "8"),
            ("HTTP_IDLE_TIMEOUT_SECONDS", "31"),
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "5"),
            ("HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS", "8"),
        ])
        .unwrap();
        assert_eq!(
            ok.connections,
            ConnectionLimits {
                max_connections: 64,
                max_pending_per_address: 8,
                idle_timeout: Duration::from_secs(31),
                header_read_timeout: Duration::from_secs(5),
            }
        );
        let err = config(&[("HTTP_HEADER_READ_TIMEOUT_SECONDS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP_HEADER_READ_TIMEOUT_SECONDS"), "{err}");
        let err = config(&[("HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HTTP_MAX_PENDING_CONNECTIONS_PER_ADDRESS"),
            "{err}"
        );
        let err = config(&[("HTTP_MAX_CONNECTIONS", "400")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LONG_POLL_MAX (500) must be below HTTP_MAX_CONNECTIONS (400)"),
            "{err}"
        );
        let err = config(&[("HTTP_IDLE_TIMEOUT_SECONDS", "30")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP_IDLE_TIMEOUT_SECONDS"), "{err}");
    }
}
