//! Starts the real application through `api::startup::build`, as `api serve` does, on a
//! random port against a fresh database created for the test, and talks to it over HTTP.
//! What a test changes, it changes in the `ApiConfig` (the configuration a deployment would
//! give), never in the wired services.

use std::sync::Arc;
use std::time::Duration;

use api::auth::JwtKeys;
use api::config::ApiConfig;
use api::http::HttpLimits;
use api::startup::{build, build_with_event_store, Application};
use app::{CommandMetadata, DeviceCommandService, EventStore, RetryPolicy};
use domain::{CertificateRequestId, Device, DeviceId, IssuedCertificate, TenantId};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::{PostgresEventStore, PostgresIdempotencyStore};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
pub const TENANT: &str = "acme";
pub const OTHER_TENANT: &str = "globex";

pub use testkit::{create_database, csr_for, migrated_database, registration, unique_serial};

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub database_url: String,
    pub client: reqwest::Client,
    keys: JwtKeys,
    server: JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn limits() -> HttpLimits {
    HttpLimits {
        body_limit_bytes: 64 * 1024,
        request_timeout: Duration::from_secs(10),
    }
}

/// The api's configuration as these tests deploy it, read like `api serve` reads the
/// environment: `database_url`, the tests' NATS, a free port, HS256 tokens, [`limits`], and no
/// rate limit (tests send bursts on one tenant).
pub fn test_config(database_url: &str) -> ApiConfig {
    let limits = limits();
    let variables = [
        ("API_ADDR", "127.0.0.1:0".to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("NATS_URL", testkit::nats_url()),
        ("AUTH_JWT_SECRET", JWT_SECRET.to_owned()),
        ("RATE_LIMIT_PER_SECOND", "0".to_owned()),
        ("SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
        (
            "REQUEST_BODY_LIMIT_BYTES",
            limits.body_limit_bytes.to_string(),
        ),
        (
            "REQUEST_TIMEOUT_MS",
            limits.request_timeout.as_millis().to_string(),
        ),
    ];
    ApiConfig::from_lookup(|name| {
        variables
            .iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| value.clone())
    })
    .expect("the tests' configuration is valid")
}

pub async fn spawn_app() -> TestApp {
    let (url, pool) = migrated_database().await;
    spawn_app_on(url, pool).await
}

/// The app configured by `adjust` (other limits, bounds, token verification).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let (url, pool) = migrated_database().await;
    spawn_app_configured(url, pool, adjust).await
}

/// The app on a fresh database, configured by `adjust` (connection limits, TLS), bound but not
/// yet serving: for tests that look at it before (e.g. to reload its TLS by hand).
pub async fn build_app(adjust: impl FnOnce(&mut ApiConfig)) -> Application {
    let (url, _) = migrated_database().await;
    build_app_on(&url, adjust).await
}

/// [`build_app`] on the database at `database_url`.
pub async fn build_app_on(database_url: &str, adjust: impl FnOnce(&mut ApiConfig)) -> Application {
    let mut config = test_config(database_url);
    adjust(&mut config);
    build(config).await.expect("the api starts")
}

/// [`build_app`], serving: its address. For tests that talk to the socket themselves.
pub async fn serve_application(adjust: impl FnOnce(&mut ApiConfig)) -> std::net::SocketAddr {
    serve_built(build_app(adjust).await)
}

/// Serves `app` until the test ends: its address.
pub fn serve_built(app: Application) -> std::net::SocketAddr {
    let addr = app.local_addr().unwrap();
    tokio::spawn(app.serve_until(std::future::pending()));
    addr
}

/// A token of `tenant` with `scope`, as [`TestApp::token`] makes them: for an app started by
/// [`serve_application`].
pub fn token_for(tenant: &str, scope: &str) -> String {
    JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue(
        "test-client",
        tenant,
        scope,
        Duration::from_secs(600),
    )
}

/// The app with another command retry policy, as `COMMAND_MAX_ATTEMPTS` sets it.
pub async fn spawn_app_with_retry(retry: RetryPolicy) -> TestApp {
    spawn_app_with(|config| config.retry = retry).await
}

/// The app with other HTTP limits (e.g. a short request timeout).
pub async fn spawn_app_with_limits(limits: HttpLimits) -> TestApp {
    spawn_app_with(|config| config.limits = limits).await
}

/// The app on an existing database (`pool` is the test's own connection to it), configured
/// by `adjust`.
pub async fn spawn_app_configured(
    database_url: String,
    pool: PgPool,
    adjust: impl FnOnce(&mut ApiConfig),
) -> TestApp {
    let mut config = test_config(&database_url);
    adjust(&mut config);
    serve(
        database_url,
        pool,
        build(config).await.expect("the api starts"),
    )
    .await
}

/// Another app instance on an existing database, as after a restart.
pub async fn spawn_app_on(database_url: String, pool: PgPool) -> TestApp {
    let config = test_config(&database_url);
    serve(
        database_url,
        pool,
        build(config).await.expect("the api starts"),
    )
    .await
}

/// The app with its event store replaced, e.g. by a fault-injecting wrapper.
pub async fn spawn_app_with_store(
    database_url: String,
    pool: PgPool,
    store: impl EventStore<Device>,
    limits: HttpLimits,
) -> TestApp {
    let mut config = test_config(&database_url);
    config.limits = limits;
    let app = build_with_event_store(config, move |_| Arc::new(store))
        .await
        .expect("the api starts");
    serve(database_url, pool, app).await
}

async fn serve(database_url: String, pool: PgPool, app: Application) -> TestApp {
    let address = format!("http://{}", app.local_addr().unwrap());
    let server = tokio::spawn(app.serve_until(std::future::pending()));
    TestApp {
        address,
        pool,
        database_url,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        keys: JwtKeys::from_secret(JWT_SECRET.as_bytes()),
        server,
    }
}

pub fn new_key() -> String {
    Uuid::new_v4().to_string()
}

impl TestApp {
    pub fn token(&self, tenant: &str, scope: &str) -> String {
        self.keys
            .issue("test-client", tenant, scope, Duration::from_secs(600))
    }

    /// A platform operator's token (the `admin` routes take no other).
    pub fn operator_token(&self, scope: &str) -> String {
        self.keys
            .issue_operator("test-operator", scope, Duration::from_secs(600))
    }

    pub fn writer(&self) -> String {
        self.token(TENANT, "devices:write devices:read")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POST `body` as JSON with a bearer token and an idempotency key.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", format!("\"{key}\""));
        }
        request.send().await.expect("request reaches the server")
    }

    pub async fn register(&self, key: &str, body: &Value) -> reqwest::Response {
        self.post("/v1/devices", &self.writer(), Some(key), body)
            .await
    }

    /// Registers a new device and returns its id.
    pub async fn registered_device(&self) -> Uuid {
        let response = self
            .register(&new_key(), &registration(&unique_serial()))
            .await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn decommission(&self, id: Uuid, token: &str, key: &str) -> reqwest::Response {
        self.post(
            &format!("/v1/devices/{id}/decommission"),
            token,
            Some(key),
            &json!({"reason": "returned to vendor"}),
        )
        .await
    }

    pub async fn renew(&self, id: Uuid, key: &str) -> reqwest::Response {
        self.post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &self.writer(),
            Some(key),
            &json!({"csr": csr_for("renewed")}),
        )
        .await
    }

    /// The event types stored for a device, in order.
    pub async fn event_types(&self, id: Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    pub async fn count_events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Plays the provisioner: completes the device's open certificate request through the
    /// internal command, as the worker will.
    pub async fn provision(&self, id: Uuid) {
        let payload: Value = sqlx::query_scalar(
            "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'DeviceRegistered'",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .unwrap();
        let request_id: Uuid = payload["request_id"].as_str().unwrap().parse().unwrap();
        let service = DeviceCommandService::new(
            Arc::new(PostgresEventStore::<Device>::new(self.pool.clone())),
            Arc::new(PostgresIdempotencyStore::new(self.pool.clone())),
            RetryPolicy::default(),
        );
        let now = chrono::Utc::now();
        service
            .complete_provisioning(
                CommandMetadata {
                    tenant: TenantId::parse(TENANT).unwrap(),
                    actor: "test-provisioner".into(),
                    request_id: "test".into(),
                    traceparent: None,
                },
                DeviceId::from_uuid(id),
                CertificateRequestId::from_uuid(request_id),
                IssuedCertificate {
                    pem: "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----".into(),
                    serial: "01".into(),
                    fingerprint_sha256: "00".repeat(32),
                    not_before: now,
                    not_after: now,
                    issuer: None,
                },
                None,
            )
            .await
            .expect("complete provisioning");
    }
}

/// Asserts a problem+json response with `status` and `type` `/problems/<slug>`; returns it.
/// `api <args…>` against `database_url`, as the operator `tester` runs it from a shell.
pub fn operator_command(database_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("DB_MAX_CONNECTIONS", "2")
        .env("USER", "tester")
        .output()
        .unwrap()
}

pub async fn assert_problem(response: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    body
}

/// The real `api` binary, serving on a free port with its log in a file; SIGTERM on drop.
pub struct ApiProcess {
    pub base: String,
    pub log_path: std::path::PathBuf,
    child: std::process::Child,
}

impl ApiProcess {
    /// Starts `api serve` on `database_url` with `extra` environment, once it answers.
    pub async fn start(database_url: &str, extra: &[(&str, String)]) -> Self {
        use std::process::{Command, Stdio};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path = std::env::temp_dir().join(format!("dp-api-log-{}.jsonl", new_key()));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_api"))
            .arg("serve")
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("AUTH_JWT_SECRET", JWT_SECRET)
            .env("LOG_FORMAT", "json")
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        // No connection kept after the probe: an idle one would hold one of the api's
        // connections and free it at some later moment, which tests that fill the api's
        // connection bound would see as room appearing.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        for _ in 0..200 {
            if client.get(format!("{base}/livez")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        drop(client);
        // Let the server see the probe's connection close before the test starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Self {
            base,
            log_path,
            child,
        }
    }

    /// SIGTERM, then waits for the process to exit (it flushes logs and traces first).
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL: the process dies at once, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process's id: to read what it costs (`/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// Brings the device's read-model row up to date, as the worker's projector would.
pub async fn project_device(pool: &PgPool, id: Uuid) {
    use app::EventLog as _;
    let events: Vec<_> = store::PostgresEventLog::new(pool.clone())
        .device_history(DeviceId::from_uuid(id))
        .await
        .unwrap()
        .into_iter()
        .map(app::RecordedEvent::into_envelope)
        .collect();
    projections::registered_named(projections::DEVICE_VIEW)
        .unwrap()
        .projector(pool.clone())
        .apply(&events)
        .await
        .unwrap();
}
