//! What integration tests of several crates need alike: a fresh database on the real Postgres
//! (never a mock), real CSRs, request bodies, a receiver for exported traces, a TCP proxy to
//! cut a real server off, a slow index to catch a rebuild mid-way, a CA for TLS tests, a SoftHSM2
//! token, a service binary run until it refuses to start. Used only as a dev-dependency.

mod otlp_collector;
mod refused_start;
mod slow_index;
mod softhsm_token;
mod streaming_replica;
mod tcp_proxy;
mod test_pki;

pub use otlp_collector::{CollectedSpan, OtlpCollector};
pub use refused_start::refused_start;
pub use slow_index::{slow_device_view_index, slow_index_build_running};
pub use softhsm_token::SoftHsmToken;
pub use streaming_replica::StreamingReplica;
pub use tcp_proxy::{postgres_behind_proxy, TcpProxy};
pub use test_pki::{IssuedFiles, TestCa};

use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The Postgres server tests run against; each test gets its own database on it.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The NATS server tests share (each test uses a stream and subject prefix of its own).
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Creates an empty database named `dp_test_<run>_<uuid>` and returns (name, URL). `<run>`
/// is `TEST_RUN_ID` (scripts/test sets it, and drops its run's databases when it ends, never
/// another run's), or `adhoc` for a plain `cargo test`.
pub async fn create_database() -> (String, String) {
    let name = format!("dp_test_{}_{}", test_run_id(), Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("Postgres must be running for integration tests (see README)");
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
        .expect("create test database");
    (name.clone(), format!("{}/{name}", server_url()))
}

/// The run this process's test databases belong to: `TEST_RUN_ID`, kept to lower-case
/// letters, digits and `_` so that it is a plain identifier.
fn test_run_id() -> String {
    let raw = std::env::var("TEST_RUN_ID").unwrap_or_default();
    let id: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        // Postgres names are at most 63 bytes: prefix, run, `_` and 32 hex digits fit.
        .take(16)
        .collect();
    if id.is_empty() {
        "adhoc".to_owned()
    } else {
        id
    }
}

/// A fresh, migrated database and a small pool on it: (URL, pool).
pub async fn migrated_database() -> (String, PgPool) {
    let (_, url) = create_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await
        .expect("connect to test database");
    store::schema::migrate(&pool).await.expect("migrate");
    (url, pool)
}

/// A PEM CSR for a fresh P-256 key with subject CN `common_name`.
pub fn csr_for(common_name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// A valid RegisterDevice body for `serial`, with a CSR whose CN is the serial.
pub fn registration(serial: &str) -> Value {
    json!({
        "serial_number": serial,
        "model": "Gateway X1",
        "csr": csr_for(serial),
        "labels": {"site": "lyon-3"}
    })
}

pub fn unique_serial() -> String {
    format!("SN-{}", Uuid::new_v4().simple())
}
