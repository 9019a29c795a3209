//! Device commands: register, renew a certificate, decommission.
//!
//! Each handler: authorise, parse the request into domain values (400 naming the field),
//! fingerprint the canonical body, call one command-service method, answer 202.

use std::collections::BTreeMap;

use app::{Accepted, CommandMetadata, IdempotencyClaim, IdempotencyScope, RequestFingerprint};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use domain::{CertificateSigningRequest, DecommissionReason, DeviceModel, Labels, SerialNumber};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::authorized::{Authorized, DevicesWrite};
use super::device_id_path::DeviceIdPath;
use super::idempotency_key_header::IdempotencyKeyHeader;
use super::json_body::JsonBody;
use super::{current_request_id, current_traceparent, ApiError, AppState};
use crate::auth::Principal;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", post(register_device))
        .route("/v1/devices/{id}/decommission", post(decommission_device))
        // `:renew` is part of the last segment (AIP-136 custom method), not a parameter.
        .route(
            "/v1/devices/{id}/certificate:renew",
            post(renew_certificate),
        )
}

/// Request DTOs are the public contract; they are deliberately not domain types.
/// Serialising one gives the canonical body that is fingerprinted: field order is fixed and
/// labels are sorted, so formatting differences between retries do not matter.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RegisterDeviceRequest {
    serial_number: String,
    model: String,
    csr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RenewCertificateRequest {
    csr: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DecommissionDeviceRequest {
    reason: String,
}

/// The 202 body of every command.
#[derive(Debug, Serialize)]
struct CommandAccepted {
    id: Uuid,
    status: &'static str,
    version: u64,
}

async fn register_device(
    State(state): State<AppState>,
    auth: Authorized<DevicesWrite>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(body): JsonBody<RegisterDeviceRequest>,
) -> Result<Response, ApiError> {
    let serial_number = SerialNumber::parse(&body.serial_number).map_err(field("serial_number"))?;
    let model = DeviceModel::parse(&body.model).map_err(field("model"))?;
    let labels = Labels::parse(body.labels.clone()).map_err(field("labels"))?;
    let csr = CertificateSigningRequest::from_pem(&body.csr).map_err(field("csr"))?;
    let claim = claim(&auth.principal, "POST /v1/devices".to_owned(), key, &body);
    let accepted = state
        .commands
        .register(
            metadata(&auth.principal),
            claim,
            serial_number,
            model,
            labels,
            csr,
        )
        .await?;
    super::record_device(accepted.device_id);
    Ok(accepted_response(accepted))
}

async fn renew_certificate(
    State(state): State<AppState>,
    auth: Authorized<DevicesWrite>,
    DeviceIdPath(id): DeviceIdPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(body): JsonBody<RenewCertificateRequest>,
) -> Result<Response, ApiError> {
    let csr = CertificateSigningRequest::from_pem(&body.csr).map_err(field("csr"))?;
    let route = format!("POST /v1/devices/{id}/certificate:renew");
    let claim = claim(&auth.principal, route, key, &body);
    let accepted = state
        .commands
        .renew_certificate(metadata(&auth.principal), claim, id, csr)
        .await?;
    Ok(accepted_response(accepted))
}

async fn decommission_device(
    State(state): State<AppState>,
    auth: Authorized<DevicesWrite>,
    DeviceIdPath(id): DeviceIdPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(body): JsonBody<DecommissionDeviceRequest>,
) -> Result<Response, ApiError> {
    let reason = DecommissionReason::parse(&body.reason).map_err(field("reason"))?;
    let route = format!("POST /v1/devices/{id}/decommission");
    let claim = claim(&auth.principal, route, key, &body);
    let accepted = state
        .commands
        .decommission(metadata(&auth.principal), claim, id, reason)
        .await?;
    Ok(accepted_response(accepted))
}

fn field<E: std::fmt::Display>(name: &'static str) -> impl FnOnce(E) -> ApiError {
    move |err| ApiError::InvalidField {
        field: name.to_owned(),
        detail: err.to_string(),
    }
}

fn metadata(principal: &Principal) -> CommandMetadata {
    CommandMetadata {
        tenant: principal.tenant.clone(),
        actor: principal.subject.clone(),
        request_id: current_request_id().unwrap_or_default(),
        traceparent: current_traceparent(),
        idempotency: None,
    }
}

fn claim<B: Serialize>(
    principal: &Principal,
    route: String,
    key: app::IdempotencyKey,
    body: &B,
) -> IdempotencyClaim {
    let canonical = serde_json::to_vec(body).expect("request DTOs always serialise");
    IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: principal.tenant.clone(),
            route,
            key,
        },
        fingerprint: RequestFingerprint::of(&canonical),
    }
}

fn accepted_response(accepted: Accepted) -> Response {
    let id = accepted.device_id.as_uuid();
    let body = CommandAccepted {
        id,
        status: accepted.status.as_str(),
        version: accepted.version,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/devices/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    if accepted.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
