//! Logs and traces of a process.
//!
//! Logs go to stdout (JSON or text). Traces are exported with OpenTelemetry over OTLP/HTTP
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set;
//! the exporter reads the standard `OTEL_*` variables itself (protocol `http/protobuf` or
//! `http/json`, headers, timeout; `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, batch delays).
//! When tracing is off, no span is created on the hot paths: callers ask
//! [`traces_enabled`] first.
//!
//! The W3C `traceparent` is the link between processes: the api stores its request span's
//! context with the events it appends, the relay puts it on the NATS message, and the worker
//! continues the trace from that header ([`continue_trace`]) and stores its own span's context
//! ([`traceparent_of`]) with the events it appends in turn.
//!
//! This module must not decide what to trace; that belongs to the code doing the work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::LogFormat;

static TRACES_ENABLED: AtomicBool = AtomicBool::new(false);

const TRACEPARENT: &str = "traceparent";

/// Flushes the spans not yet exported when the process stops; keep it until then.
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is pending, waiting at most a few seconds for the collector.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(provider) = self.provider.take() {
            TRACES_ENABLED.store(false, Ordering::SeqCst);
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "could not export the last spans");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Whether spans are exported; when not, callers skip creating them.
pub fn traces_enabled() -> bool {
    TRACES_ENABLED.load(Ordering::Relaxed)
}

/// Installs the global subscriber: logs at the `RUST_LOG` level (default `info`), and span
/// export when an OTLP endpoint is configured. `service` names the process in traces unless
/// `OTEL_SERVICE_NAME` does.
pub fn init_telemetry(format: LogFormat, service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stdout)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .boxed(),
    };
    let (provider, export_error) = match tracer_provider(service) {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let traces = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service)));
    // `try_init`: tests may install their own subscriber first.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if let Some(e) = export_error {
        tracing::error!(error = %e, "trace export is configured but could not start; traces are off");
    }
    if installed && provider.is_some() {
        TRACES_ENABLED.store(true, Ordering::SeqCst);
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { provider }
}

fn tracer_provider(service: &'static str) -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service);
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// Makes `span` a child of the remote span in `traceparent`, when traces are exported and the
/// header is well formed; otherwise `span` starts a new trace.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    // Fails only when the span is disabled (filtered out): then there is nothing to link.
    let _ = span.set_parent(parent);
}

/// The W3C `traceparent` of `span`, when traces are exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !traces_enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}
