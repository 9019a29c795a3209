//! Liveness, readiness and metrics, as an orchestrator and Prometheus see them.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn ready_when_postgres_answers() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn not_ready_within_a_second_when_postgres_is_unreachable_and_says_so() {
    // The api reaches Postgres through a proxy, which then goes away, as a database server
    // that becomes unreachable after the start.
    let (url, pool) = migrated_database().await;
    let (mut postgres, via_proxy) = testkit::postgres_behind_proxy(&url).await;
    let app = spawn_app_configured(url, pool, |config| {
        config.database.url = via_proxy;
        config.database.acquire_timeout = Duration::from_millis(300);
    })
    .await;
    postgres.cut();
    let started = Instant::now();

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();

    assert!(started.elapsed() < Duration::from_secs(1), "bounded checks");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_ne!(body["checks"]["postgres"], "ok");
    // Liveness does no I/O: still alive.
    let live = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    // `api serve`'s metrics recorder, which `build` installs.
    let app = spawn_app().await;
    let id = app.registered_device().await;
    let _ = app
        .client
        .get(app.url(&format!("/v1/devices/{id}")))
        .bearer_auth(app.writer())
        .send()
        .await
        .unwrap();

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert!(
        metrics.contains(r#"http_requests_total{method="POST",route="/v1/devices",status="202"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/v1/devices/{id}""#),
        "templates, not ids"
    );
    assert!(
        !metrics.contains(&id.to_string()),
        "no device id in a label"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains("commands_total"));
}
