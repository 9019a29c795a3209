//! SCEP (RFC 8894) for devices, at `/scep/{label}` (and `/scep/{label}/pkiclient.exe`, the
//! path some clients append), the label naming an enrollment group: `GET ?operation=
//! GetCACaps`, `GET ?operation=GetCACert`, and `PKIOperation` as `POST` (the DER message as
//! the body) or `GET` with `message=` (base64, standard or URL-safe, percent-encoded).
//! Answers are SCEP's own: `text/plain` capabilities, `application/x-x509-ca-ra-cert`,
//! `application/x-pki-message` (a `CertRep`, whose failures are SCEP's `failInfo`); only a
//! message without a transaction to answer gets a plain HTTP error. Outside the OpenAPI
//! document and the bearer tokens (`crate::scep`).
//!
//! The body is read before the device is known (its credential is inside, encrypted),
//! bounded by `REQUEST_BODY_LIMIT_BYTES` and the request deadline; a command slot is taken
//! only once it has authenticated.

use std::collections::HashMap;
use std::sync::Arc;

use app::Correlation;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use domain::EnrollmentGroupName;

use super::{current_request_id, current_traceparent, AppState};
use crate::scep::{ScepReply, ScepServer, CA_CAPS};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/scep/{label}", get(scep_get).post(scep_post))
        .route("/scep/{label}/pkiclient.exe", get(scep_get).post(scep_post))
}

async fn scep_get(
    State(state): State<AppState>,
    Path(label): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    operation(state, &label, &query, None, Method::GET).await
}

async fn scep_post(
    State(state): State<AppState>,
    Path(label): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    operation(state, &label, &query, Some(body), Method::POST).await
}

async fn operation(
    state: AppState,
    label: &str,
    query: &HashMap<String, String>,
    body: Option<Bytes>,
    method: Method,
) -> Response {
    let Some(server) = state.scep.clone() else {
        return plain(
            StatusCode::NOT_FOUND,
            "SCEP is not enabled on this server (it needs SCEP_RA_CERT_PATH and SCEP_RA_KEY)",
        );
    };
    let Ok(label) = EnrollmentGroupName::parse(label) else {
        return plain(StatusCode::NOT_FOUND, "not an enrollment group's path");
    };
    let operation = query.get("operation").map(String::as_str).unwrap_or("");
    match (operation, method) {
        ("GetCACaps", Method::GET) => {
            counted("GetCACaps", "answered");
            typed(StatusCode::OK, "text/plain", CA_CAPS.as_bytes().to_vec())
        }
        ("GetCACert", Method::GET) => {
            counted("GetCACert", "answered");
            typed(
                StatusCode::OK,
                "application/x-x509-ca-ra-cert",
                server.ca_ra_certs(),
            )
        }
        ("PKIOperation", Method::POST) => match body {
            Some(body) => pki_operation(&state, &server, &label, &body).await,
            None => plain(StatusCode::BAD_REQUEST, "PKIOperation needs the message"),
        },
        ("PKIOperation", Method::GET) => match query.get("message").and_then(|m| decoded(m)) {
            Some(message) => pki_operation(&state, &server, &label, &message).await,
            None => plain(
                StatusCode::BAD_REQUEST,
                "PKIOperation needs message=, the message in base64",
            ),
        },
        _ => plain(
            StatusCode::BAD_REQUEST,
            "operation must be GetCACaps, GetCACert or PKIOperation",
        ),
    }
}

/// A `message=` parameter: standard base64 (a `+` that arrived unencoded reads as a space)
/// or URL-safe.
fn decoded(message: &str) -> Option<Vec<u8>> {
    let compact: String = message
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .or_else(|_| URL_SAFE_NO_PAD.decode(&compact))
        .ok()
}

async fn pki_operation(
    state: &AppState,
    server: &Arc<ScepServer>,
    label: &EnrollmentGroupName,
    message: &[u8],
) -> Response {
    let correlation = Correlation {
        request_id: current_request_id().unwrap_or_default(),
        traceparent: current_traceparent(),
    };
    let commands = state.in_flight_commands.clone();
    match server
        .answer(label, message, correlation, || commands.try_enter().ok())
        .await
    {
        ScepReply::CertRep {
            message,
            operation,
            outcome,
        } => {
            counted(operation, outcome);
            typed(StatusCode::OK, "application/x-pki-message", message)
        }
        ScepReply::Unreadable(problem) => {
            counted("unreadable", "refused");
            let mut response = plain(StatusCode::BAD_REQUEST, "");
            *response.body_mut() = format!("{problem}\n").into();
            response
        }
        ScepReply::Unavailable => {
            counted("PKIOperation", "unavailable");
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is unavailable; send the message again later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            response
        }
    }
}

/// Counts the request in `scep_requests_total{operation, outcome}`.
fn counted(operation: &'static str, outcome: &'static str) {
    metrics::counter!("scep_requests_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
}

fn typed(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    typed(
        status,
        "text/plain; charset=utf-8",
        format!("{text}\n").into_bytes(),
    )
}
