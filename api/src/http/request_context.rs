//! Request ids, trace context and the access log.
//!
//! Each request gets an id: the caller's `x-request-id` when it is sane, else a fresh
//! UUIDv7. It is returned in `x-request-id`, put in problem bodies, stored in the metadata of
//! the events the request appends, and logged with one line per request.
//!
//! Each request also gets a W3C trace context, stored with the events the request appends so
//! that the relay can put it on the NATS message and the worker can continue the trace. When
//! traces are exported, it is the context of the request's own span (a child of the caller's
//! `traceparent`, if any); otherwise the caller's `traceparent` when it is well formed, else
//! a new trace.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

const REQUEST_ID_HEADER: &str = "x-request-id";

const TRACEPARENT_HEADER: &str = "traceparent";

struct RequestContext {
    request_id: String,
    traceparent: String,
    /// Learned while handling: logged on the request's line.
    tenant: OnceLock<String>,
    device_id: OnceLock<String>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The id of the request being handled by the current task, if any.
pub fn current_request_id() -> Option<String> {
    CONTEXT.try_with(|c| c.request_id.clone()).ok()
}

/// Records the authenticated tenant for the request's log line.
pub fn record_tenant(tenant: &str) {
    let _ = CONTEXT.try_with(|c| c.tenant.set(tenant.to_owned()));
}

/// Records the device the request is about for the request's log line.
pub fn record_device(id: impl std::fmt::Display) {
    let _ = CONTEXT.try_with(|c| c.device_id.set(id.to_string()));
}

/// The W3C `traceparent` of the request being handled by the current task, if any.
pub fn current_traceparent() -> Option<String> {
    CONTEXT.try_with(|c| c.traceparent.clone()).ok()
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase, ids not all zero.
fn accepted_traceparent(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    valid.then(|| value.to_owned())
}

fn new_traceparent() -> String {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace_id}-{span_id}-01")
}

/// Accept a caller's id only if it is short, visible ASCII: it ends up in logs and events.
fn accepted_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let sane =
        !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| value.to_owned())
}

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = accepted_request_id(request.headers().get(REQUEST_ID_HEADER))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let incoming = accepted_traceparent(request.headers().get(TRACEPARENT_HEADER));
    let span = if bootstrap::traces_enabled() {
        let span = tracing::info_span!(
            "request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            request_id = %request_id,
        );
        bootstrap::continue_trace(&span, incoming.as_deref());
        span
    } else {
        // Every line logged while handling the request carries its id.
        tracing::info_span!("request", request_id = %request_id)
    };
    let traceparent = bootstrap::traceparent_of(&span)
        .or(incoming)
        .unwrap_or_else(new_traceparent);
    let context = RequestContext {
        request_id: request_id.clone(),
        traceparent,
        tenant: OnceLock::new(),
        device_id: OnceLock::new(),
    };
    let (mut response, context) = CONTEXT
        .scope(context, async move {
            let response = next.run(request).await;
            let context = CONTEXT.with(|c| (c.tenant.get().cloned(), c.device_id.get().cloned()));
            (response, context)
        })
        .instrument(span.clone())
        .await;
    let (tenant, device_id) = context;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let elapsed = started.elapsed();
    // Milliseconds to three decimals (a microsecond): `8001.650593999999` says nothing more.
    let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
    // Labelled by route template, never by raw path: ids would make the series unbounded.
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms,
        tenant = tenant.as_deref().unwrap_or(""),
        device_id = device_id.as_deref().unwrap_or(""),
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_well_formed_traceparents() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            accepted_traceparent(Some(&header(good))).as_deref(),
            Some(good)
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(accepted_traceparent(Some(&header(bad))), None, "{bad}");
        }
        assert!(accepted_traceparent(Some(&header(&new_traceparent()))).is_some());
    }
}
