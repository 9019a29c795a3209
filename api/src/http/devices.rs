//! Device commands: register, renew a certificate, revoke it, decommission.
//!
//! Each handler: take an in-flight command slot (`AdmittedCommand`, first: a shed command costs
//! no token check and no body), authorise, parse the request into domain values (400 naming the field),
//! fingerprint the canonical body, call one command-service method, answer 202.

use std::collections::BTreeMap;

use app::{Accepted, CommandMetadata, IdempotencyClaim};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{
    CertificateSigningRequest, DecommissionReason, DeviceModel, Labels, RenewalAuthority,
    RevocationAuthority, RevocationReason, SerialNumber,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::authorized::{Authorized, DevicesWrite};
use super::device_id_path::DeviceIdPath;
use super::idempotency_key_header::{self, IdempotencyKeyHeader};
use super::in_flight::AdmittedCommand;
use super::json_body::JsonBody;
use super::{current_request_id, current_traceparent, ApiError, AppState};
use crate::auth::Principal;

pub fn router() -> OpenApiRouter<AppState> {
    // `:renew` is part of the last segment (AIP-136 custom method), not a parameter.
    OpenApiRouter::new()
        .routes(routes!(register_device))
        .routes(routes!(decommission_device))
        .routes(routes!(renew_certificate))
        .routes(routes!(revoke_certificate))
}

// Request DTOs are the public contract; they are deliberately not domain types.
// Serialising one gives the canonical body that is fingerprinted: field order is fixed and
// labels are sorted, so formatting differences between retries do not matter.
// Their schemas borrow the domain types' constraints (`value_type`), so the document and
// the parsers agree. (`///` comments here are the OpenAPI descriptions.)

/// A device to register, with the CSR for its first certificate.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterDeviceRequest {
    /// Unique within the tenant; must equal the CSR's subject CN.
    #[schema(value_type = SerialNumber)]
    serial_number: String,
    #[schema(value_type = DeviceModel)]
    model: String,
    /// PKCS#10 certificate request, PEM. Keys: ECDSA P-256/P-384, Ed25519, RSA 2048–4096.
    #[schema(value_type = CertificateSigningRequest)]
    csr: String,
    /// Up to 32 labels; keys `[a-z0-9][a-z0-9._/-]*` (≤ 63), values ≤ 128 characters.
    #[serde(default)]
    #[schema(value_type = Labels)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenewCertificateRequest {
    /// A new PKCS#10 request (PEM) whose subject CN is the device's serial number.
    #[schema(value_type = CertificateSigningRequest)]
    csr: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeCertificateRequest {
    /// RFC 5280's name for the reason: `unspecified`, `keyCompromise`, `affiliationChanged`,
    /// `superseded`, `cessationOfOperation` or `privilegeWithdrawn`.
    #[schema(value_type = RevocationReason)]
    reason: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DecommissionDeviceRequest {
    /// Why, for the audit trail (kept in the event).
    #[schema(value_type = DecommissionReason)]
    reason: String,
}

/// The 202 body of every command: poll `GET /v1/devices/{id}?min_version=<version>` to see
/// its effect.
#[derive(Debug, Serialize, ToSchema)]
struct CommandAccepted {
    id: Uuid,
    /// The device's status right after the command (provisioning happens asynchronously).
    #[schema(value_type = domain::DeviceStatus)]
    status: &'static str,
    /// The device's version after the command.
    version: u64,
}

/// Parameters every command takes besides its body.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: `IdempotencyKeyHeader` parses it
struct CommandHeaders {
    /// Makes retries safe: the same key with the same body replays the first outcome
    /// (`Idempotent-Replayed: true`); with another body it is a 422. A Structured Field
    /// string or a bare token, 1–255 printable ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[ -~]+$"
    )]
    idempotency_key: String,
}

/// Register a device and request its first certificate.
#[utoipa::path(post, path = "/v1/devices", tag = "devices",
    security(("bearer" = ["devices:write"])),
    params(CommandHeaders),
    request_body(content = RegisterDeviceRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; the certificate is issued asynchronously", body = CommandAccepted, headers(
            ("Location" = String, description = "The device's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored outcome of an earlier request with the same key"))),
        (status = 400, description = "`invalid-field`, `malformed-body`, `idempotency-key-missing` or `idempotency-key-invalid`"),
        (status = 409, description = "`device-already-registered` (its `device_id` names the registered device), or `concurrent-modification` (retry with the same key)"),
        (status = 413, description = "`payload-too-large`"),
        (status = 415, description = "`unsupported-media-type`"),
        (status = 422, description = "`idempotency-key-reused` with another body; or `unstorable-value`: the event store refused a value of the command (nothing was written)"),
        (status = 503, description = "`overloaded`: this api process already works on as many commands (`COMMAND_MAX_IN_FLIGHT`) or requests (`REQUEST_MAX_IN_FLIGHT`) as allowed; answered at once, nothing was done; or `service-unavailable`", headers(
            ("Retry-After" = u64, description = "Seconds to wait before trying again (with the same Idempotency-Key)"))),
    ))]
async fn register_device(
    _admitted: AdmittedCommand,
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
            csr.into(),
        )
        .await?;
    super::record_device(accepted.device_id);
    Ok(accepted_response(accepted))
}

/// Request a new certificate for a provisioned (or failed) device.
#[utoipa::path(post, path = "/v1/devices/{id}/certificate:renew", tag = "devices",
    security(("bearer" = ["devices:write"])),
    params(("id" = Uuid, Path, description = "The device id"), CommandHeaders),
    request_body(content = RenewCertificateRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; the certificate is issued asynchronously", body = CommandAccepted, headers(
            ("Location" = String, description = "The device's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored outcome of an earlier request with the same key"))),
        (status = 400, description = "`invalid-field`, `malformed-body`, `idempotency-key-missing` or `idempotency-key-invalid`"),
        (status = 404, description = "`not-found`: no such device in this tenant"),
        (status = 409, description = "`device-decommissioned`, `provisioning-in-progress`, or `concurrent-modification` (retry with the same key)"),
        (status = 413, description = "`payload-too-large`"),
        (status = 415, description = "`unsupported-media-type`"),
        (status = 422, description = "`idempotency-key-reused` with another body; or `unstorable-value`: the event store refused a value of the command (nothing was written)"),
        (status = 503, description = "`overloaded`: this api process already works on as many commands (`COMMAND_MAX_IN_FLIGHT`) or requests (`REQUEST_MAX_IN_FLIGHT`) as allowed; answered at once, nothing was done; or `service-unavailable`", headers(
            ("Retry-After" = u64, description = "Seconds to wait before trying again (with the same Idempotency-Key)"))),
    ))]
async fn renew_certificate(
    _admitted: AdmittedCommand,
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
        .renew_certificate(
            metadata(&auth.principal),
            claim,
            id,
            csr.into(),
            RenewalAuthority::Tenant,
            Vec::new(),
        )
        .await?;
    Ok(accepted_response(accepted))
}

/// Revoke the device's live certificate: relying parties are no longer to trust it. The
/// device stays as it is and may renew with a new CSR.
#[utoipa::path(post, path = "/v1/devices/{id}/certificate:revoke", tag = "devices",
    security(("bearer" = ["devices:write"])),
    params(("id" = Uuid, Path, description = "The device id"), CommandHeaders),
    request_body(content = RevokeCertificateRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted; the device view shows the revocation once its version is reached", body = CommandAccepted, headers(
            ("Location" = String, description = "The device's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored outcome of an earlier request with the same key"))),
        (status = 400, description = "`invalid-field` (e.g. an unknown `reason`), `malformed-body`, `idempotency-key-missing` or `idempotency-key-invalid`"),
        (status = 404, description = "`not-found`: no such device in this tenant"),
        (status = 409, description = "`no-certificate`, `certificate-already-revoked`, `device-decommissioned`, or `concurrent-modification` (retry with the same key)"),
        (status = 413, description = "`payload-too-large`"),
        (status = 415, description = "`unsupported-media-type`"),
        (status = 422, description = "`idempotency-key-reused` with another body; or `unstorable-value`: the event store refused a value of the command (nothing was written)"),
        (status = 503, description = "`overloaded`: this api process already works on as many commands (`COMMAND_MAX_IN_FLIGHT`) or requests (`REQUEST_MAX_IN_FLIGHT`) as allowed; answered at once, nothing was done; or `service-unavailable`", headers(
            ("Retry-After" = u64, description = "Seconds to wait before trying again (with the same Idempotency-Key)"))),
    ))]
async fn revoke_certificate(
    _admitted: AdmittedCommand,
    State(state): State<AppState>,
    auth: Authorized<DevicesWrite>,
    DeviceIdPath(id): DeviceIdPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(body): JsonBody<RevokeCertificateRequest>,
) -> Result<Response, ApiError> {
    let reason = RevocationReason::parse(&body.reason).map_err(field("reason"))?;
    let route = format!("POST /v1/devices/{id}/certificate:revoke");
    let claim = claim(&auth.principal, route, key, &body);
    let accepted = state
        .commands
        .revoke_certificate(
            metadata(&auth.principal),
            claim,
            id,
            reason,
            RevocationAuthority::Tenant,
        )
        .await?;
    Ok(accepted_response(accepted))
}

/// Decommission a device for good; its live certificate is revoked (`cessationOfOperation`).
#[utoipa::path(post, path = "/v1/devices/{id}/decommission", tag = "devices",
    security(("bearer" = ["devices:write"])),
    params(("id" = Uuid, Path, description = "The device id"), CommandHeaders),
    request_body(content = DecommissionDeviceRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted", body = CommandAccepted, headers(
            ("Location" = String, description = "The device's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored outcome of an earlier request with the same key"))),
        (status = 400, description = "`invalid-field`, `malformed-body`, `idempotency-key-missing` or `idempotency-key-invalid`"),
        (status = 404, description = "`not-found`: no such device in this tenant"),
        (status = 409, description = "`device-decommissioned` (already), or `concurrent-modification` (retry with the same key)"),
        (status = 413, description = "`payload-too-large`"),
        (status = 415, description = "`unsupported-media-type`"),
        (status = 422, description = "`idempotency-key-reused` with another body; or `unstorable-value`: the event store refused a value of the command (nothing was written)"),
        (status = 503, description = "`overloaded`: this api process already works on as many commands (`COMMAND_MAX_IN_FLIGHT`) or requests (`REQUEST_MAX_IN_FLIGHT`) as allowed; answered at once, nothing was done; or `service-unavailable`", headers(
            ("Retry-After" = u64, description = "Seconds to wait before trying again (with the same Idempotency-Key)"))),
    ))]
async fn decommission_device(
    _admitted: AdmittedCommand,
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
    }
}

fn claim<B: Serialize>(
    principal: &Principal,
    route: String,
    key: app::IdempotencyKey,
    body: &B,
) -> IdempotencyClaim {
    idempotency_key_header::claim(&principal.tenant, route, key, body)
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
