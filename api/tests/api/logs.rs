//! What the real binary writes to its log: one line per request with the request id, route
//! template, status, tenant and device id, and never a secret (the bearer token, the JWT
//! secret) or a CSR body.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn request_lines_name_tenant_and_device_and_never_a_secret() {
    let (url, _) = migrated_database().await;
    let mut api = ApiProcess::start(&url, &[]).await;
    let base = api.base.clone();
    let client = reqwest::Client::new();
    let token = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue(
        "client-7",
        TENANT,
        "devices:write devices:read",
        Duration::from_secs(600),
    );
    let body = registration(&unique_serial());
    let csr = body["csr"].as_str().unwrap().to_owned();
    let accepted: Value = client
        .post(format!("{base}/v1/devices"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "\"log-test\"")
        .header("x-request-id", "req-log-test-1")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    // A refused token is logged too, and must not be echoed either.
    let _ = client
        .get(format!("{base}/v1/devices/{id}"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    api.stop();

    let text = api.log();
    let request_line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["request_id"] == "req-log-test-1")
        .expect("a line for the request, under the caller's x-request-id");
    assert_eq!(request_line["route"], "/v1/devices");
    assert_eq!(request_line["method"], "POST");
    assert_eq!(request_line["status"], 202);
    assert_eq!(request_line["tenant"], TENANT);
    assert_eq!(request_line["device_id"], id.as_str());
    assert!(request_line["latency_ms"].is_number());

    let token_signature = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(token_signature),
        "the bearer token is never logged"
    );
    assert!(!text.contains(JWT_SECRET), "the JWT secret is never logged");
    let csr_body = csr.lines().nth(1).unwrap();
    assert!(!text.contains(csr_body), "CSR bodies are never logged");
}
