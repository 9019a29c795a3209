//! `api serve` refuses a configuration that cannot work, naming the variable (never a
//! secret's value): a key-encryption key that opens none of the stored enrollment groups, an
//! address already taken.

use std::process::Command;
use std::time::Duration;

use crate::enrollment_groups::KEY_ENCRYPTION_KEY;
use crate::helpers::{migrated_database, ApiProcess, JWT_SECRET, TENANT};

/// Another valid key-encryption key (32 bytes, base64).
const OTHER_KEY_ENCRYPTION_KEY: &str = "c2Vjb25kLWtleS1lbmNyeXB0aW9uLWtleS0zMmJ5dGU=";

/// `api serve` on `database_url` with `extra` environment, until it exits (at most
/// `within`): its stdout and stderr. Fails the test if it exited successfully or still runs.
fn refused(database_url: &str, extra: &[(&str, String)], within: Duration) -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .arg("serve")
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("AUTH_JWT_SECRET", JWT_SECRET)
        .env("LOG_FORMAT", "json")
        .envs(extra.iter().map(|(k, v)| (k, v)));
    testkit::refused_start(command, "api", within)
}

#[tokio::test]
async fn a_key_encryption_key_that_opens_no_stored_group_is_refused_naming_the_variable() {
    let (url, _pool) = migrated_database().await;
    // A group sealed under the first key.
    {
        let api = ApiProcess::start(
            &url,
            &[(
                "ENROLLMENT_KEY_ENCRYPTION_KEY",
                KEY_ENCRYPTION_KEY.to_owned(),
            )],
        )
        .await;
        let operator = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue_operator(
            "ops-alice",
            "admin",
            Duration::from_secs(600),
        );
        let created = reqwest::Client::new()
            .post(format!("{}/admin/enrollment-groups", api.base))
            .bearer_auth(operator)
            .json(&serde_json::json!({"name": "line-7", "tenant": TENANT, "model": "thermostat-v2", "labels": {"site": "lyon"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    }
    // Restarted with another key: it would answer every enrollment 500; it does not start.
    let (stdout, stderr) = refused(
        &url,
        &[(
            "ENROLLMENT_KEY_ENCRYPTION_KEY",
            OTHER_KEY_ENCRYPTION_KEY.to_owned(),
        )],
        Duration::from_secs(30),
    );
    assert!(stderr.contains("ENROLLMENT_KEY_ENCRYPTION_KEY"), "{stderr}");
    for key in [KEY_ENCRYPTION_KEY, OTHER_KEY_ENCRYPTION_KEY] {
        assert!(
            !stdout.contains(key) && !stderr.contains(key),
            "a key is never printed:\n{stdout}\n{stderr}"
        );
    }
    // The right key still starts.
    let api = ApiProcess::start(
        &url,
        &[(
            "ENROLLMENT_KEY_ENCRYPTION_KEY",
            KEY_ENCRYPTION_KEY.to_owned(),
        )],
    )
    .await;
    let ready = reqwest::get(format!("{}/livez", api.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn an_address_already_taken_is_named_with_api_addr() {
    let (url, _pool) = migrated_database().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_, stderr) = refused(&url, &[("API_ADDR", addr.clone())], Duration::from_secs(30));
    assert!(
        stderr.contains("API_ADDR") && stderr.contains(&addr),
        "{stderr}"
    );
    drop(taken);
}
