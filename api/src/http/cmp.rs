//! CMP over HTTP (RFC 6712) for devices, at `/.well-known/cmp/p/{label}`, the label naming an
//! enrollment group (RFC 9483 §5.1.2's path): `POST` of a DER `PKIMessage` as
//! `application/pkixcmp`, answered with one, always `200` (CMP's errors are `error`
//! messages, which clients read only from a 200). Outside the OpenAPI document and the bearer
//! tokens: CMP is a protocol of its own (`crate::cmp`).
//!
//! The body is read first, since the device's credential is inside it: bounded by
//! `REQUEST_BODY_LIMIT_BYTES` and the request deadline, and only once the content type is
//! CMP's. A command slot is taken only after the message's MAC has authenticated the device
//! (`CmpServer::answer`'s `admit`).

use std::sync::Arc;

use app::Correlation;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use domain::EnrollmentGroupName;

use super::{current_request_id, current_traceparent, AppState};
use crate::cmp::CmpServer;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/cmp/p/{label}", post(cmp_message))
}

const PKIXCMP: &str = "application/pkixcmp";

/// A device's CMP message, answered.
async fn cmp_message(
    State(state): State<AppState>,
    Path(label): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let Some(server) = state.cmp.clone() else {
        return plain(StatusCode::NOT_FOUND, "CMP is not enabled on this server (it needs CA_CERT_PATH and ENROLLMENT_KEY_ENCRYPTION_KEY)");
    };
    let Ok(label) = EnrollmentGroupName::parse(&label) else {
        return plain(StatusCode::NOT_FOUND, "not an enrollment group's path");
    };
    let is_cmp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(PKIXCMP));
    if !is_cmp {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be a CMP message: Content-Type: application/pkixcmp",
        );
    }
    let Ok(body) = Bytes::from_request(request, &state).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than this server accepts",
        );
    };
    answered(&state, &server, &label, &body).await
}

async fn answered(
    state: &AppState,
    server: &Arc<CmpServer>,
    label: &EnrollmentGroupName,
    body: &[u8],
) -> Response {
    let correlation = Correlation {
        request_id: current_request_id().unwrap_or_default(),
        traceparent: current_traceparent(),
    };
    let commands = state.in_flight_commands.clone();
    let reply = server
        .answer(label, body, correlation, || commands.try_enter().ok())
        .await;
    metrics::counter!(
        "cmp_requests_total",
        "operation" => reply.operation,
        "outcome" => reply.outcome
    )
    .increment(1);
    if reply.message.is_empty() {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let mut response = (StatusCode::OK, reply.message).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PKIXCMP));
    response
}

/// An HTTP-level refusal, before there is a CMP message to answer.
fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, format!("{text}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
