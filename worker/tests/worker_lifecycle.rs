//! The worker binary starts against real Postgres and NATS, says it is ready, and stops
//! cleanly on SIGTERM; it refuses a database that was not migrated.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A new, empty database, migrated when `migrate` is true.
async fn database(migrate: bool) -> String {
    use sqlx::Connection;
    let name = format!("dp_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("Postgres must be running for integration tests (see README)");
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", server_url());
    if migrate {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        store::schema::migrate(&pool).await.unwrap();
        pool.close().await;
    }
    url
}

#[tokio::test]
async fn starts_reports_ready_and_stops_on_sigterm() {
    let url = database(true).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("DATABASE_URL", &url)
        .env("NATS_URL", nats_url())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start worker");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines
            .next()
            .expect("worker exited before it was ready")
            .unwrap();
        if line.contains("worker ready") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "worker never became ready"
        );
    }

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();

    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(lines.any(|l| l.unwrap().contains("worker stopped")));
}

#[tokio::test]
async fn refuses_a_database_that_was_not_migrated() {
    let url = database(false).await;
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("DATABASE_URL", &url)
        .env("NATS_URL", nats_url())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("api migrate"));
}
