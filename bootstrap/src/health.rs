//! Health and metrics endpoints, the same for both binaries: `/livez` (no I/O), `/readyz`
//! (every dependency checked concurrently, each within a bounded time; 503 naming what
//! failed, and 503 as soon as the process starts draining) and `/metrics` (Prometheus text).
//!
//! The checks are given by the binary (a Postgres round trip, a NATS ping); this module knows
//! only how to run and report them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

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

    /// Every check's result by name, and whether the process is ready.
    pub async fn readiness(&self) -> Readiness {
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
        let mut checks = BTreeMap::new();
        let mut all_ok = true;
        for (name, result) in results {
            let value = match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => {
                    all_ok = false;
                    metrics::counter!("readiness_failures_total", "dependency" => name)
                        .increment(1);
                    e
                }
            };
            checks.insert(name.to_owned(), value);
        }
        let status = match (all_ok, draining) {
            (_, true) => ReadinessStatus::Draining,
            (true, false) => ReadinessStatus::Ready,
            (false, false) => ReadinessStatus::Unavailable,
        };
        Readiness { status, checks }
    }

    /// `/livez`, `/readyz` and, when a recorder is installed, `/metrics`. Described by
    /// [`openapi`].
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/metrics", get(prometheus_metrics))
            .with_state(self.clone())
    }
}

/// The `/readyz` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadinessStatus,
    /// Each dependency's check: `ok`, or why it failed.
    #[schema(example = json!({"postgres": "ok", "nats": "no answer within 500 ms"}))]
    pub checks: BTreeMap<String, String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == ReadinessStatus::Ready
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    Ready,
    /// A dependency failed its check.
    Unavailable,
    /// The process is shutting down: it finishes what it has and takes nothing new.
    Draining,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`: answering at all is the signal.
    #[schema(value_type = String, example = "ok")]
    pub status: &'static str,
}

/// The health endpoints' OpenAPI description, merged into the api's document.
#[derive(OpenApi)]
#[openapi(
    paths(livez, readyz, prometheus_metrics),
    tags((name = "operations", description = "Health and metrics, for orchestrators and scrapers"))
)]
pub struct HealthApi;

/// Liveness: the process is up and serving HTTP. No I/O, so a slow dependency never gets a
/// healthy process restarted.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Liveness)))]
async fn livez() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// Readiness: every dependency answered within the check timeout and the process is not
/// draining.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready to take traffic", body = Readiness),
    (status = 503, description = "A dependency failed its check, or the process is draining", body = Readiness),
))]
async fn readyz(State(health): State<Health>) -> Response {
    let readiness = health.readiness().await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// Prometheus metrics in the text exposition format (README lists them).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Metrics in Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
    (status = 404, description = "This process records no metrics"),
))]
async fn prometheus_metrics(State(health): State<Health>) -> Response {
    match health.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The process-wide metrics recorder could not be installed (a second one, or bad buckets).
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder")]
pub struct MetricsRecorderError(#[source] metrics_exporter_prometheus::BuildError);

/// The process-wide Prometheus recorder behind the `metrics` facade, with latency buckets for
/// the histograms that measure seconds: installed by the first call, the same one after (a
/// process that starts several servers, as tests do, has one recorder). Run
/// [`drain_histograms`] beside it.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, MetricsRecorderError> {
    static INSTALLED: std::sync::Mutex<Option<PrometheusHandle>> = std::sync::Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let buckets = [
        0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
        .map_err(MetricsRecorderError)?
        .install_recorder()
        .map_err(MetricsRecorderError)?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// How often histogram samples are folded into their buckets.
const HISTOGRAM_DRAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the samples recorded into histograms into their buckets every few seconds, until
/// `stop` resolves. The recorder keeps every sample (value and time, ~20 bytes) until it is
/// drained, which otherwise happens only when `/metrics` is scraped: unscraped (a benchmark,
/// a scraper down), a process grows by every request and message it handles (measured: 18 MiB
/// more after 960,000 requests, hundreds of MiB over a benchmark run), and keeps that memory.
pub async fn drain_histograms(metrics: PrometheusHandle, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(HISTOGRAM_DRAIN_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every.tick() => metrics.run_upkeep(),
        }
    }
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
        let readiness = health.readiness().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "checks run concurrently, bounded"
        );
        assert!(!readiness.is_ready());
        assert_eq!(readiness.status, ReadinessStatus::Unavailable);
        assert_eq!(readiness.checks["postgres"], "ok");
        assert_eq!(readiness.checks["nats"], "connection refused");
        assert_eq!(readiness.checks["slow"], "no answer within 50 ms");
    }

    #[tokio::test]
    async fn draining_makes_a_healthy_process_unready() {
        let health =
            Health::new(Duration::from_millis(50)).with_check("postgres", || async { Ok(()) });
        assert!(health.readiness().await.is_ready());
        health.start_draining();
        let readiness = health.readiness().await;
        assert!(!readiness.is_ready());
        assert_eq!(readiness.status, ReadinessStatus::Draining);
    }
}
