//! The worker binary starts against real Postgres and NATS, says it is ready, and stops
//! cleanly on SIGTERM; it refuses a database that was not migrated, and a configuration
//! without a CA. `worker dev-ca` never replaces an existing CA unless told to.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::nats_url;

/// A new, empty database, migrated when `migrate` is true.
async fn database(migrate: bool) -> String {
    if migrate {
        testkit::migrated_database().await.0
    } else {
        testkit::create_database().await.1
    }
}

/// A development CA in a fresh directory, as `worker dev-ca` makes one: (cert path, key path).
fn ca_files() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("dp-ca-{}", uuid::Uuid::new_v4().simple()));
    pki::dev_ca::write_dev_ca(&dir, "test CA", false).unwrap()
}

fn unique_stream() -> String {
    format!("LIFECYCLE_{}", uuid::Uuid::new_v4().simple())
}

fn worker_command(database_url: &str, stream: &str) -> Command {
    let (cert, key) = ca_files();
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", nats_url())
        .env("NATS_SUBJECT_PREFIX", stream.to_lowercase())
        .env("NATS_STREAM", stream)
        .env("NATS_STREAM_MAX_AGE_DAYS", "1")
        .env("CA_CERT_PATH", cert)
        .env("CA_KEY_PATH", key)
        .env("WORKER_HEALTH_ADDR", "127.0.0.1:0");
    command
}

/// A process killed when the test ends, however it ends: a failed assertion must not leave a
/// worker running (it would hold the test run's output open and keep consuming).
struct KilledAtEnd(std::process::Child);

impl Drop for KilledAtEnd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn starts_reports_ready_and_stops_on_sigterm() {
    let url = database(true).await;
    let stream = unique_stream();
    let mut child = KilledAtEnd(
        worker_command(&url, &stream)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start worker"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut health_addr = None;
    loop {
        let line = lines
            .next()
            .expect("worker exited before it was ready")
            .unwrap();
        if line.contains("health and metrics endpoints listening") {
            let log: serde_json::Value = serde_json::from_str(&line).unwrap();
            health_addr = log["addr"].as_str().map(str::to_owned);
        }
        if line.contains("worker ready") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "worker never became ready"
        );
    }

    // Its own health port: ready once Postgres and NATS answer, and metrics in Prometheus text.
    let health = format!("http://{}", health_addr.expect("health address logged"));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let response = client.get(format!("{health}/readyz")).send().await.unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        if status == 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(ready.1["checks"]["postgres"], "ok");
    assert_eq!(ready.1["checks"]["nats"], "ok");
    let live = client.get(format!("{health}/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let metrics = client
        .get(format!("{health}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    // The lag gauges exist before any event has flowed (this stream and database never saw
    // one): a dashboard or an alert on them sees 0, not "no data".
    let metrics = metrics.text().await.unwrap();
    for gauge in [
        "relay_lag_seconds 0",
        "projection_lag_seconds{projection=\"device_view\"} 0",
        "projection_lag_seconds{projection=\"device_stats\"} 0",
        "projection_lag_seconds{projection=\"certificate_status\"} 0",
    ] {
        assert!(
            metrics.lines().any(|line| line == gauge),
            "{gauge} missing from:\n{metrics}"
        );
    }

    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();

    let status = child.0.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(lines.any(|l| l.unwrap().contains("worker stopped")));

    // The worker created the test's stream on the shared server: remove it.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let _ = async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await;
}

#[tokio::test]
async fn refuses_a_database_that_was_not_migrated() {
    let url = database(false).await;
    let output = worker_command(&url, &unique_stream()).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("api migrate"));
}

#[tokio::test]
async fn refuses_to_start_without_a_ca_and_names_what_is_missing() {
    let url = database(true).await;
    let output = worker_command(&url, &unique_stream())
        .env_remove("CA_CERT_PATH")
        .env("CA_KEY_PATH", "/nonexistent/ca.key")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CA_CERT_PATH"), "{stderr}");

    let output = worker_command(&url, &unique_stream())
        .env("CA_KEY_PATH", "/nonexistent/ca.key")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/ca.key"), "{stderr}");
}

#[test]
fn dev_ca_refuses_to_replace_an_existing_ca_unless_forced() {
    let dir = std::env::temp_dir().join(format!("dp-dev-ca-{}", uuid::Uuid::new_v4().simple()));
    let dev_ca = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["dev-ca", "--out"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    let first = dev_ca(&[]);
    assert!(first.status.success(), "{first:?}");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let (cert, key) = (read("ca.pem"), read("ca.key"));

    let again = dev_ca(&[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&dir.join("ca.pem").display().to_string()) && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        (read("ca.pem"), read("ca.key")),
        (cert.clone(), key.clone())
    );

    let forced = dev_ca(&["--force"]);
    assert!(forced.status.success(), "{forced:?}");
    assert_ne!(read("ca.pem"), cert);
    assert_ne!(read("ca.key"), key);
    std::fs::remove_dir_all(&dir).unwrap();
}
