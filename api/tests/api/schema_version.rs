//! Migrations are a release step: `api serve` refuses a schema that is behind.

use std::process::Command;

use crate::helpers::*;

fn api(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_api"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("AUTH_JWT_SECRET", JWT_SECRET)
        .env("API_ADDR", "127.0.0.1:0")
        .output()
        .expect("run api")
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_and_says_what_to_run() {
    let (_, url) = create_database().await;

    let output = api(&["serve"], &url);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run `api migrate`"), "{stderr}");
}

#[tokio::test]
async fn migrate_brings_the_schema_up_to_date_and_can_run_again() {
    let (_, url) = create_database().await;

    assert!(api(&["migrate"], &url).status.success());
    assert!(
        api(&["migrate"], &url).status.success(),
        "re-running is harmless"
    );

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    store::schema::ensure_current(&pool)
        .await
        .expect("schema current");
}

#[tokio::test]
async fn a_bad_configuration_is_reported_whole_and_without_secrets() {
    let output = Command::new(env!("CARGO_BIN_EXE_api"))
        .arg("serve")
        .env_clear()
        .env("AUTH_JWT_SECRET", "short-secret")
        .env("API_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "DATABASE_URL is required",
        "API_ADDR",
        "AUTH_JWT_SECRET must be at least 32 bytes",
    ] {
        assert!(stderr.contains(expected), "{stderr}");
    }
    assert!(!stderr.contains("short-secret"));
}
