//! Spawns the whole pipeline for one test: a fresh migrated database, the real api in-process
//! on a random port, and real `worker` processes (so a test can SIGKILL one), on a JetStream
//! stream and subject prefix of its own, with a CA made for the test and an OCSP signer it
//! issued (as `worker ocsp-signer` does; the api answers OCSP with it, and the workers'
//! `PUBLIC_BASE_URL` is the api's address, so certificates name the test's responder). Real
//! Postgres, real NATS: the shared server on 127.0.0.1:4222, or a private `nats-server` a
//! test can stop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::auth::JwtKeys;
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
pub const TENANT: &str = "acme";
pub const OTHER_TENANT: &str = "globex";
/// The api's `ENROLLMENT_KEY_ENCRYPTION_KEY` in EST stacks.
pub const KEY_ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

pub use testkit::{csr_for, registration, unique_serial};

pub struct Stack {
    pub address: String,
    /// Where relying parties fetch status (`PUBLIC_BASE_URL`): the api's address, or, over
    /// TLS, its plain-HTTP listener of the CRLs and OCSP (`PKI_ADDR`), as deployed.
    pub pki_address: String,
    pub pool: PgPool,
    pub database_url: String,
    pub nats_url: String,
    pub stream: String,
    pub prefix: String,
    pub dir: PathBuf,
    pub ca_cert_pem: String,
    /// With EST ([`Stack::start_with_est`]): the CA that signed the api's TLS certificate,
    /// for clients to trust.
    pub tls_ca: Option<PathBuf>,
    pub client: reqwest::Client,
    keys: JwtKeys,
    workers: Vec<Child>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        self.server.abort();
    }
}

/// This test process's SoftHSM2 token for SCEP's registration authorities (each stack makes a
/// key of its own label in it): the api runs in this process, and a PKCS#11 module reads its
/// configuration (`SOFTHSM2_CONF`) once, when this process first loads it.
pub fn scep_token() -> &'static testkit::SoftHsmToken {
    static TOKEN: std::sync::OnceLock<testkit::SoftHsmToken> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dp-scep-token-{}", Uuid::new_v4().simple()));
        let token = testkit::SoftHsmToken::new(&dir, "scep-ra");
        std::env::set_var("SOFTHSM2_CONF", &token.conf);
        token
    })
}

/// SCEP's registration authority for a stack whose CA is in `dir` (`ca.pem`, `ca.key`):
/// `worker scep-ra` makes its key in [`scep_token`] and writes `scep-ra.pem`; the api's
/// variables that name them.
fn scep_ra(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let token = scep_token();
    let uri = token.uri(&format!("ra-{}", Uuid::new_v4().simple()));
    let made = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["scep-ra", "--key", &uri, "--out"])
        .arg(dir)
        .env("CA_CERT_PATH", dir.join("ca.pem"))
        .env("CA_KEY_PATH", dir.join("ca.key"))
        .envs(token.env())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "worker scep-ra: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut variables = vec![
        (
            "SCEP_RA_CERT_PATH",
            dir.join("scep-ra.pem").display().to_string(),
        ),
        ("SCEP_RA_KEY", uri),
    ];
    variables.extend(
        token
            .env()
            .into_iter()
            .filter(|(name, _)| *name != "SOFTHSM2_CONF"),
    );
    variables
}

impl Stack {
    /// The api and no worker yet, on the shared NATS server.
    pub async fn start() -> Self {
        Self::start_with_nats(testkit::nats_url()).await
    }

    pub async fn start_with_nats(nats_url: String) -> Self {
        Self::start_configured(nats_url, false, false).await
    }

    /// The api over TLS with enrollment groups and EST on (the fleet CA is the test's CA,
    /// which client certificates must chain to), and no worker yet, on the shared NATS.
    pub async fn start_with_est() -> Self {
        Self::start_configured(testkit::nats_url(), true, false).await
    }

    /// As [`Stack::start_with_est`], with SCEP on: its registration authority's RSA key made
    /// in this test process's SoftHSM2 token ([`scep_token`]) and certified by the stack's
    /// CA with `worker scep-ra`, as an operator would.
    pub async fn start_with_scep() -> Self {
        Self::start_configured(testkit::nats_url(), true, true).await
    }

    async fn start_configured(nats_url: String, est: bool, scep: bool) -> Self {
        let (database_url, pool) = testkit::migrated_database().await;
        let dir = std::env::temp_dir().join(format!("dp-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = pki::dev_ca::generate_dev_ca("test CA").unwrap();
        std::fs::write(dir.join("ca.pem"), &cert).unwrap();
        std::fs::write(dir.join("ca.key"), &key).unwrap();
        let ca = pki::IssuingCa::from_pem(&cert, &key, chrono::Duration::days(1)).unwrap();
        let signer = |purpose| {
            pki::signer_certificate::IssuedSigner::issue(
                &ca,
                purpose,
                chrono::Duration::days(30),
                chrono::Utc::now(),
            )
            .unwrap()
            .write_to(&dir)
            .unwrap()
        };
        let (cert_path, key_path) = signer(pki::signer_certificate::SignerPurpose::Ocsp);
        let (cmp_cert_path, cmp_key_path) = signer(pki::signer_certificate::SignerPurpose::CmpRa);

        // The api as `api serve` starts it, from the environment a deployment would give.
        let path = |p: &std::path::Path| p.display().to_string();
        let mut variables = vec![
            ("API_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", database_url.clone()),
            ("NATS_URL", nats_url.clone()),
            ("AUTH_JWT_SECRET", JWT_SECRET.to_owned()),
            ("RATE_LIMIT_PER_SECOND", "0".to_owned()),
            ("SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
            ("REQUEST_TIMEOUT_MS", "40000".to_owned()),
            ("OCSP_SIGNER_CERT_PATH", path(&cert_path)),
            ("OCSP_SIGNER_KEY_PATH", path(&key_path)),
            ("OCSP_NEXT_UPDATE_SECONDS", "60".to_owned()),
            // As deployed: the tests' "revoked within a second" holds with the cache on.
            ("OCSP_STATUS_CACHE_MS", "250".to_owned()),
        ];
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(60));
        let mut tls_ca = None;
        if est {
            let ca_path = dir.join("ca.pem");
            let server_ca = testkit::TestCa::new(&dir, "tls");
            let server = server_ca.issue_server("server");
            variables.extend([
                (
                    "ENROLLMENT_KEY_ENCRYPTION_KEY",
                    KEY_ENCRYPTION_KEY.to_owned(),
                ),
                ("CA_CERT_PATH", path(&ca_path)),
                ("CMP_SIGNER_CERT_PATH", path(&cmp_cert_path)),
                ("CMP_SIGNER_KEY_PATH", path(&cmp_key_path)),
                ("EST_RETRY_AFTER_SECONDS", "1".to_owned()),
                ("TLS_CERT_PATH", path(&server.cert_path)),
                ("TLS_KEY_PATH", path(&server.key_path)),
                ("TLS_CLIENT_CA_PATH", path(&ca_path)),
                ("TLS_RELOAD_SECONDS", "3600".to_owned()),
                // Relying parties fetch status over plain HTTP.
                ("PKI_ADDR", "127.0.0.1:0".to_owned()),
            ]);
            if scep {
                variables.extend(scep_ra(&dir));
            }
            let ca = server_ca.cert_path();
            let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
            client = client.add_root_certificate(root);
            tls_ca = Some(ca);
        }
        let config = api::config::ApiConfig::from_lookup(|name| {
            variables
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.clone())
        })
        .expect("the stack's api configuration is valid");
        let app = api::startup::build(config).await.expect("the api starts");
        let scheme = if est { "https" } else { "http" };
        let address = format!("{scheme}://{}", app.local_addr().unwrap());
        let pki_address = match app.pki_addr() {
            Some(pki) => format!("http://{pki}"),
            None => address.clone(),
        };
        let server = tokio::spawn(app.serve_until(std::future::pending()));
        let unique = Uuid::new_v4().simple().to_string();
        Self {
            address,
            pki_address,
            pool,
            database_url,
            nats_url,
            stream: format!("T_{unique}"),
            prefix: format!("t{unique}"),
            dir,
            ca_cert_pem: cert,
            tls_ca,
            client: client.build().unwrap(),
            keys: JwtKeys::from_secret(JWT_SECRET.as_bytes()),
            workers: Vec::new(),
            server,
        }
    }

    /// Starts a `worker` process; returns its index for [`Self::kill_worker`].
    pub fn spawn_worker(&mut self) -> usize {
        self.spawn_worker_with_env(&[])
    }

    /// Starts a `worker` process with extra environment variables.
    pub fn spawn_worker_with_env(&mut self, extra: &[(&str, String)]) -> usize {
        let index = self.workers.len();
        let log = std::fs::File::create(self.dir.join(format!("worker-{index}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", &self.nats_url)
            .env("NATS_STREAM", &self.stream)
            .env("NATS_SUBJECT_PREFIX", &self.prefix)
            .env("NATS_STREAM_MAX_AGE_DAYS", "1")
            .env("CA_CERT_PATH", self.dir.join("ca.pem"))
            .env("CA_KEY_PATH", self.dir.join("ca.key"))
            .env("PUBLIC_BASE_URL", &self.pki_address)
            .env("CONSUMER_BACKOFF_MS", "1000,1000")
            .env("CONSUMER_MAX_DELIVER", "3")
            .env("RELAY_POLL_MS", "200")
            .env("SHUTDOWN_GRACE_SECONDS", "2")
            .env("WORKER_HEALTH_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // Last, so that a test can override the defaults above.
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start worker");
        self.workers.push(child);
        index
    }

    /// Runs `worker <args>` (e.g. `replay …`) with this stack's configuration; its output.
    pub fn worker_command(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", &self.nats_url)
            .env("NATS_STREAM", &self.stream)
            .env("NATS_SUBJECT_PREFIX", &self.prefix)
            .env("CA_CERT_PATH", self.dir.join("ca.pem"))
            .env("CA_KEY_PATH", self.dir.join("ca.key"))
            .env("CONSUMER_BACKOFF_MS", "1000,1000")
            .env("CONSUMER_MAX_DELIVER", "3")
            .output()
            .expect("run worker")
    }

    /// Runs an operator's `worker` command as an operator's shell would: with the stream side
    /// of the configuration only (no CA) and no other variable (no `$USER` either).
    pub fn worker_operator_command(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", &self.nats_url)
            .env("NATS_STREAM", &self.stream)
            .env("NATS_SUBJECT_PREFIX", &self.prefix)
            .output()
            .expect("run worker")
    }

    /// Sends SIGTERM to worker `index` and waits (up to `timeout`) for it to exit.
    pub async fn stop_worker(&mut self, index: usize, timeout: Duration) {
        let worker = &mut self.workers[index];
        let pid = worker.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + timeout;
        while worker.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "worker {index} did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn kill_worker(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
    }

    pub fn worker_log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("worker-{index}.log"))).unwrap_or_default()
    }

    /// Waits until worker `index` has logged `needle`.
    pub async fn wait_for_log(&self, index: usize, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.worker_log(index).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "worker {index} never logged {needle:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The test CA's id in the PKI URLs (`/pki/{ca}/…`).
    pub fn ocsp_ca_id(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("ca.key")).unwrap();
        pki::IssuingCa::from_pem(&self.ca_cert_pem, &key, chrono::Duration::days(1))
            .unwrap()
            .id()
            .to_string()
    }

    pub fn token(&self, tenant: &str, scope: &str) -> String {
        self.keys
            .issue("test-client", tenant, scope, Duration::from_secs(600))
    }

    /// A platform operator's token (the `admin` routes take no other).
    pub fn operator_token(&self, scope: &str) -> String {
        self.keys
            .issue_operator("test-operator", scope, Duration::from_secs(600))
    }

    pub fn reader(&self) -> String {
        self.token(TENANT, "devices:read events:read")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(self.token(TENANT, "devices:write"))
            .header("Idempotency-Key", format!("\"{}\"", Uuid::new_v4()))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a device with `body`; returns its id.
    pub async fn register(&self, body: &Value) -> Uuid {
        let response = self.post("/v1/devices", body).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The tenant's first 1,000 events, as the analysts' feed (`GET /v1/events`) has them.
    pub async fn feed(&self) -> Vec<Value> {
        let page: Value = self
            .get("/v1/events?limit=1000", &self.reader())
            .await
            .json()
            .await
            .unwrap();
        page["events"].as_array().unwrap().clone()
    }

    /// `api projections verify`'s check: every read model equals a fold of the event store.
    /// End-to-end tests call it last.
    pub async fn assert_read_model_matches_events(&self) {
        for projection in projections::registered() {
            let report = projection.verify(&self.pool).await.unwrap();
            assert!(
                report.is_clean(),
                "{} differs from the events: {:#?} {:#?}",
                projection.name(),
                report.differences,
                report.row_differences
            );
        }
    }

    /// Long-polls until the device reaches `status` (or `timeout` passes: then panics).
    pub async fn wait_for_status(&self, id: Uuid, status: &str, timeout: Duration) -> Value {
        self.wait_until(id, timeout, |d| d["status"] == status)
            .await
    }

    /// Long-polls until the device's read model reaches `version`.
    pub async fn wait_for_version(&self, id: Uuid, version: u64, timeout: Duration) -> Value {
        self.wait_until(id, timeout, |d| d["version"].as_u64() >= Some(version))
            .await
    }

    async fn wait_until(
        &self,
        id: Uuid,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut next_version = 1;
        loop {
            let path = format!("/v1/devices/{id}?min_version={next_version}&wait=2");
            let response = self.get(&path, &self.reader()).await;
            if response.status() == 200 {
                let device: Value = response.json().await.unwrap();
                if done(&device) {
                    return device;
                }
                next_version = device["version"].as_u64().unwrap() + 1;
            }
            assert!(
                Instant::now() < deadline,
                "device {id}: condition never met"
            );
        }
    }

    /// The outcome a disruption (a killed process, a lost NATS node) must leave: every one of
    /// the `devices` registered is provisioned within `patience`, registered once, with
    /// exactly one certificate; and the stream, in time, holds one message per event of the
    /// events table. The number of events.
    pub async fn assert_provisioned_once_and_streamed(
        &self,
        devices: usize,
        patience: Duration,
    ) -> u64 {
        let started = Instant::now();
        loop {
            let provisioned: i64 =
                sqlx::query_scalar("SELECT count(*) FROM device_view WHERE status = 'provisioned'")
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            if provisioned as usize == devices {
                break;
            }
            assert!(
                started.elapsed() < patience,
                "{provisioned} of {devices} provisioned"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            self.count_events("DeviceRegistered").await as usize,
            devices
        );
        let not_once: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT aggregate_id FROM events WHERE event_type = 'CertificateIssued' \
             GROUP BY aggregate_id HAVING count(*) <> 1) AS d",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(not_once, 0, "a device with no certificate or two");
        assert_eq!(
            self.count_events("CertificateIssued").await as usize,
            devices
        );
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        let started = Instant::now();
        while self.stream_messages_if_known().await != Some(events as u64) {
            assert!(
                started.elapsed() < patience,
                "the stream and the events table disagree"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        events as u64
    }

    /// The messages the stream holds; `None` while NATS cannot say (e.g. a cluster electing
    /// the stream's leader).
    pub async fn stream_messages_if_known(&self) -> Option<u64> {
        let client = nats::connect(&nats::NatsSettings {
            url: self.nats_url.clone(),
            connect_timeout: Duration::from_secs(5),
        })
        .await
        .ok()?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client);
        let mut stream = js.get_stream(&self.stream).await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    }

    /// The number of messages the test's stream holds.
    pub async fn stream_messages(&self) -> u64 {
        let client = self.nats_client().await;
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(&self.stream).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// A client of the stack's NATS server, with the credentials its URL carries.
    pub async fn nats_client(&self) -> async_nats::Client {
        nats::connect(&nats::NatsSettings {
            url: self.nats_url.clone(),
            connect_timeout: Duration::from_secs(5),
        })
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

    /// Deletes the test's stream from the shared server.
    pub async fn delete_stream(&self) {
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            // (Without credentials: only on the shared server, which has none.)
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&self.stream)
                .await;
        }
    }
}

/// A private `nats-server` with JetStream on a port and store of its own, which a test can
/// stop and start again (same port, same store).
pub struct PrivateNats {
    pub url: String,
    port: u16,
    /// The HTTP monitoring port (`/connz`, `/jsz`), for tests that look at the server's view.
    pub monitor_port: u16,
    /// The `nats-server` binary: the one installed here unless a test names another.
    binary: PathBuf,
    store: PathBuf,
    /// A configuration file (`-c`) and the environment it reads (passwords).
    config: Option<(PathBuf, Vec<(String, String)>)>,
    process: Option<Child>,
}

impl PrivateNats {
    pub async fn start() -> Self {
        Self::start_configured(installed_nats_server(), None).await
    }

    /// A private server of `binary` with the configuration file `config`, given `env`.
    pub async fn start_with_config(
        binary: PathBuf,
        config: PathBuf,
        env: Vec<(String, String)>,
    ) -> Self {
        Self::start_configured(binary, Some((config, env))).await
    }

    /// `nats://user:password@127.0.0.1:port`
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("nats://{user}:{password}@127.0.0.1:{}", self.port)
    }

    async fn start_configured(
        binary: PathBuf,
        config: Option<(PathBuf, Vec<(String, String)>)>,
    ) -> Self {
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, monitor_port) = (free_port(), free_port());
        let store = std::env::temp_dir().join(format!("dp-nats-{}", Uuid::new_v4().simple()));
        let mut nats = Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            monitor_port,
            binary,
            store,
            config,
            process: None,
        };
        nats.resume().await;
        nats
    }

    pub async fn resume(&mut self) {
        let mut command = Command::new(&self.binary);
        if let Some((config, env)) = &self.config {
            command.arg("-c").arg(config).envs(env.iter().cloned());
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-m",
                &self.monitor_port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            // The server logs to stderr: into a file, which a failure to start is shown from.
            .stderr(Stdio::from(
                std::fs::File::create(self.log_path()).expect("create the nats-server log"),
            ))
            .spawn()
            .expect("nats-server must be installed (scripts/services installs it)");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self
                .process
                .as_mut()
                .and_then(|p| p.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nats-server did not start ({exited:?}): {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log, beside its store.
    fn log_path(&self) -> PathBuf {
        self.store.with_extension("log")
    }

    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// The `nats-server` installed on this machine (Debian's, by `scripts/services`).
pub fn installed_nats_server() -> PathBuf {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("nats-server")
    .into()
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
        let _ = std::fs::remove_file(self.log_path());
    }
}
