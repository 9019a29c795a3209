//! The worker binary refuses a configuration that cannot work, in its own words, naming the
//! variables (never a secret's value): a CA key that is not the CA certificate's or that its
//! token does not hold, a health
//! address already taken, NATS credentials the server refuses.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::nats_url;

/// A development CA in a fresh directory, as `worker dev-ca` makes one: (cert path, key path).
fn ca_files() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("dp-ca-{}", uuid::Uuid::new_v4().simple()));
    pki::dev_ca::write_dev_ca(&dir, "test CA", false).unwrap()
}

fn unique_stream() -> String {
    format!("REFUSALS_{}", uuid::Uuid::new_v4().simple())
}

/// The worker on a migrated database with a CA of its own, as `worker_lifecycle` starts it;
/// `adjust` changes its environment.
async fn worker(adjust: impl FnOnce(&mut Command)) -> Command {
    let (database_url, _) = testkit::migrated_database().await;
    let (cert, key) = ca_files();
    let stream = unique_stream();
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", nats_url())
        .env("NATS_SUBJECT_PREFIX", stream.to_lowercase())
        .env("NATS_STREAM", &stream)
        .env("NATS_STREAM_MAX_AGE_DAYS", "1")
        .env("CA_CERT_PATH", cert)
        .env("CA_KEY_PATH", key)
        .env("WORKER_HEALTH_ADDR", "127.0.0.1:0");
    adjust(&mut command);
    command
}

/// Runs `command` until it exits, at most `within`: its exit success and what it printed
/// (stdout, stderr). A worker still running then started when it should not have: killed,
/// and the test fails with what it said.
fn refused(command: Command, within: Duration) -> (String, String) {
    let (stdout, stderr) = testkit::refused_start(command, "worker", within);
    assert!(
        !stdout.contains("worker ready"),
        "said it was ready:\n{stdout}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn a_ca_key_that_is_not_the_ca_certificates_is_refused_naming_both_variables() {
    let (other_cert, _) = ca_files();
    let command = worker(|c| {
        c.env("CA_CERT_PATH", &other_cert);
    })
    .await;
    let (_, stderr) = refused(command, Duration::from_secs(30));
    assert!(
        stderr.contains("CA_KEY_PATH") && stderr.contains("CA_CERT_PATH"),
        "{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "no key material: {stderr}");
}

#[tokio::test]
async fn a_key_in_a_token_needs_the_module_and_a_missing_key_is_named_never_the_pin() {
    // A pkcs11: URI without the module to reach it.
    let command = worker(|c| {
        c.env("CA_KEY_PATH", "pkcs11:token=fleet;object=platform-ca");
    })
    .await;
    let (_, stderr) = refused(command, Duration::from_secs(30));
    assert!(
        stderr.contains("CA_KEY_PATH") && stderr.contains("PKCS11_MODULE_PATH"),
        "{stderr}"
    );

    // A real token that holds no such key.
    let dir = std::env::temp_dir().join(format!("dp-hsm-{}", uuid::Uuid::new_v4().simple()));
    let token = testkit::SoftHsmToken::new(&dir, "fleet");
    let command = worker(|c| {
        c.envs(token.env())
            .env("CA_KEY_PATH", token.uri("no-such-key"));
    })
    .await;
    let (_, stderr) = refused(command, Duration::from_secs(30));
    assert!(
        stderr.contains("CA_KEY_PATH") && stderr.contains("no-such-key"),
        "{stderr}"
    );
    let pin = std::fs::read_to_string(&token.pin_file).unwrap();
    assert!(!stderr.contains(pin.trim_end()), "never the PIN: {stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_health_address_already_taken_is_named_with_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let command = worker(|c| {
        c.env("WORKER_HEALTH_ADDR", &addr);
    })
    .await;
    let (_, stderr) = refused(command, Duration::from_secs(30));
    assert!(
        stderr.contains("WORKER_HEALTH_ADDR") && stderr.contains(&addr),
        "{stderr}"
    );
    drop(taken);
}

/// A private `nats-server` (JetStream on) that accepts only `user` with `password`.
struct NatsWithPassword {
    port: u16,
    store: PathBuf,
    process: Child,
}

impl NatsWithPassword {
    async fn start(user: &str, password: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = std::env::temp_dir().join(format!("dp-nats-{}", uuid::Uuid::new_v4().simple()));
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let process = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["--user", user, "--pass", password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            port,
            store,
            process,
        }
    }
}

impl Drop for NatsWithPassword {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[tokio::test]
async fn nats_refusing_the_credentials_is_said_naming_nats_url() {
    let nats = NatsWithPassword::start("worker", "pRightPassword").await;
    let wrong = "pWrongPassword7f3a";
    let command = worker(|c| {
        c.env(
            "NATS_URL",
            format!("nats://worker:{wrong}@127.0.0.1:{}", nats.port),
        );
    })
    .await;
    let (stdout, stderr) = refused(command, Duration::from_secs(30));
    assert!(
        stderr.contains("NATS_URL") && stderr.contains("authorization violation"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stdout.contains(wrong),
        "the password is never printed:\n{stdout}\n{stderr}"
    );
}
