//! Liveness, readiness and metrics, as an orchestrator and Prometheus see them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::postgres::PgPoolOptions;

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
    let (url, _) = migrated_database().await;
    let unreachable = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
        .unwrap();
    let app = spawn_app_on(url, unreachable).await;
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
    static RECORDER: OnceLock<bootstrap::PrometheusHandle> = OnceLock::new();
    let handle = RECORDER
        .get_or_init(|| bootstrap::install_metrics_recorder().expect("one recorder per process"))
        .clone();
    let app =
        spawn_app_with(|state| state.health = state.health.clone().with_metrics(handle)).await;
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
