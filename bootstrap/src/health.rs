//! Health and metrics endpoints, the same for both binaries: `/livez` (no I/O), `/readyz`
//! (every dependency checked concurrently, each within a bounded time; 503 naming what
//! failed, and 503 as soon as the process starts draining) and `/metrics` (Prometheus text).
//!
//! The checks are given by the binary (a Postgres round trip, a NATS ping); this module knows
//! only how to run and report them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Map, Value};

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

#[derive(Clone)]
pub struct Health {
    checks: Vec<(&'static str, Check)>,
    timeout: Duration,
    draining: Arc<AtomicBool>,
    metrics: Option<PrometheusHandle>,
}

impl Health {
    /// `timeout` bounds each check (they run concurrently, so it bounds `/readyz` too).
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            timeout,
            draining: Arc::new(AtomicBool::new(false)),
            metrics: None,
        }
    }

    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// From now on `/readyz` answers 503: load balancers stop sending new work before the
    /// process stops accepting it.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether every check passed, and each one's result by name.
    pub async fn readiness(&self) -> (bool, Value) {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let result = match tokio::time::timeout(self.timeout, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
            };
            (*name, result)
        });
        let results = futures::future::join_all(runs).await;
        let draining = self.draining.load(Ordering::SeqCst);
        let mut checks = Map::new();
        let mut ready = !draining;
        for (name, result) in results {
            let value = match result {
                Ok(()) => json!("ok"),
                Err(e) => {
                    ready = false;
                    metrics::counter!("readiness_failures_total", "dependency" => name)
                        .increment(1);
                    json!(e)
                }
            };
            checks.insert(name.to_owned(), value);
        }
        let status = match (ready, draining) {
            (true, _) => "ready",
            (false, true) => "draining",
            (false, false) => "unavailable",
        };
        (ready, json!({"status": status, "checks": checks}))
    }

    /// `/livez`, `/readyz` and, when a recorder is installed, `/metrics`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let ready = self.clone();
        let metrics = self.metrics.clone();
        Router::new()
            .route("/livez", get(|| async { Json(json!({"status": "ok"})) }))
            .route(
                "/readyz",
                get(move || {
                    let health = ready.clone();
                    async move {
                        let (ok, body) = health.readiness().await;
                        let status = if ok {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        (status, Json(body)).into_response()
                    }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let handle = metrics.clone();
                    async move { render(handle) }
                }),
            )
    }
}

fn render(handle: Option<PrometheusHandle>) -> Response {
    match handle {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Installs the process-wide Prometheus recorder behind the `metrics` facade, with latency
/// buckets for the histograms that measure seconds. Call once per process.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, String> {
    let buckets = [
        0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_names_the_failing_dependency_and_bounds_each_check() {
        let health = Health::new(Duration::from_millis(50))
            .with_check("postgres", || async { Ok(()) })
            .with_check("nats", || async { Err("connection refused".to_owned()) })
            .with_check("slow", || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            });
        let started = std::time::Instant::now();
        let (ready, body) = health.readiness().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "checks run concurrently, bounded"
        );
        assert!(!ready);
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["checks"]["postgres"], "ok");
        assert_eq!(body["checks"]["nats"], "connection refused");
        assert_eq!(body["checks"]["slow"], "no answer within 50 ms");
    }

    #[tokio::test]
    async fn draining_makes_a_healthy_process_unready() {
        let health =
            Health::new(Duration::from_millis(50)).with_check("postgres", || async { Ok(()) });
        assert!(health.readiness().await.0);
        health.start_draining();
        let (ready, body) = health.readiness().await;
        assert!(!ready);
        assert_eq!(body["status"], "draining");
    }
}
