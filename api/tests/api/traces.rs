//! Trace export from the real binary: off unless an OTLP endpoint is configured; when on, each
//! request is a span in the caller's trace, and the events it appends carry that span's
//! context (which the relay puts on NATS; worker/tests/pipeline/traces.rs follows it there).

use std::time::Duration;

use testkit::OtlpCollector;

use crate::helpers::*;

/// Registers a device through the real binary, sent with `traceparent`; the 202 body.
async fn register_with_traceparent(api: &ApiProcess, traceparent: &str) -> serde_json::Value {
    let token = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue(
        "client-7",
        TENANT,
        "devices:write",
        Duration::from_secs(600),
    );
    reqwest::Client::new()
        .post(format!("{}/v1/devices", api.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", new_key())
        .header("traceparent", traceparent)
        .json(&registration(&unique_serial()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The trace context stored with the device's first event.
async fn stored_traceparent(pool: &sqlx::PgPool, accepted: &serde_json::Value) -> String {
    sqlx::query_scalar(
        "SELECT metadata->>'traceparent' FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(accepted["id"].as_str().unwrap())
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_command_is_a_span_in_the_callers_trace_and_its_events_carry_it() {
    let collector = OtlpCollector::start().await;
    let (url, pool) = migrated_database().await;
    let mut api = ApiProcess::start(&url, &collector.env()).await;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = "00f067aa0ba902b7";
    let accepted =
        register_with_traceparent(&api, &format!("00-{trace_id}-{client_span}-01")).await;

    let request = collector
        .wait_for("POST /v1/devices", Duration::from_secs(10), |s| {
            s.name == "POST /v1/devices" && s.trace_id == trace_id
        })
        .await;
    assert_eq!(request.service, "api");
    assert_eq!(request.parent_span_id, client_span);

    let stored = stored_traceparent(&pool, &accepted).await;
    assert_eq!(stored, format!("00-{trace_id}-{}-01", request.span_id));
    api.stop();
}

#[tokio::test]
async fn without_an_otlp_endpoint_nothing_is_exported_and_the_callers_context_is_kept() {
    let (url, pool) = migrated_database().await;
    let api = ApiProcess::start(&url, &[]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let accepted = register_with_traceparent(&api, traceparent).await;
    assert_eq!(stored_traceparent(&pool, &accepted).await, traceparent);
    assert!(!api.log().contains("exporting traces"));
}
