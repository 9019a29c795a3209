//! The one place where failures become responses: RFC 9457 problem+json, with a documented
//! `type` per kind of error (see docs/problems.md) and the request id.
//!
//! Internal causes are logged here, once, and never echoed to the client.

use app::{CommandError, DeviceReadError, LongPollLimitReached, StoreError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::{DeviceError, DeviceId};
use serde::Serialize;
use uuid::Uuid;

use super::current_request_id;
use super::in_flight::InFlightBound;
use crate::auth::{AuthError, Scope};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {detail}")]
    InvalidField { field: String, detail: String },
    #[error("{0}")]
    MalformedBody(String),
    #[error("the Idempotency-Key header is required on this route")]
    MissingIdempotencyKey,
    #[error("the Idempotency-Key header {0}")]
    InvalidIdempotencyKey(String),
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("the token lacks the '{}' scope", .0.as_str())]
    MissingScope(Scope),
    /// A tenant's token on a route for platform operators.
    #[error("this route is for platform operators: a tenant's token cannot use it")]
    OperatorsOnly,
    /// A platform operator's token on a tenant's route (it names no tenant to act for).
    #[error("this route acts for a tenant: a platform operator's token names none")]
    TenantsOnly,
    #[error("no such resource")]
    NotFound,
    #[error(transparent)]
    UnknownProjection(app::UnknownProjection),
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// RegisterDevice for a serial number the tenant already registered, under another key:
    /// names the device, so that the client can read it instead.
    #[error("a device with this serial number is already registered: {0}")]
    DeviceAlreadyRegistered(DeviceId),
    #[error("{0}")]
    Conflict(DeviceError),
    /// A command on a tenant's CAs that their state refuses.
    #[error("{0}")]
    CaStateConflict(domain::TenantCasError),
    #[error(
        "the device was modified concurrently; retry the request with the same Idempotency-Key"
    )]
    ConcurrencyConflict,
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    /// The event store refused a value of the command that passed validation (a bug in the
    /// validation, but the input's fault): nothing was written.
    #[error("a value of this request cannot be stored (e.g. a character the event store cannot hold); nothing was done. Fix the request; if it looks valid, report it with the request_id")]
    Unstorable,
    #[error("too many requests for this tenant; retry after the time in Retry-After")]
    RateLimited(std::time::Duration),
    #[error("{0}, the most allowed; retry after the time in Retry-After, or read without waiting")]
    TooManyLongPolls(LongPollLimitReached),
    #[error("{0}")]
    DeadLetterState(String),
    #[error("a rebuild of {0} is already running")]
    RebuildRunning(String),
    #[error("no rebuild of {0} is running")]
    RebuildNotRunning(String),
    /// A bound on what this process works on at once is reached (`COMMAND_MAX_IN_FLIGHT`,
    /// `REQUEST_MAX_IN_FLIGHT`): shed at once, before any work.
    #[error("this api process already works on {max} {} at once, the most allowed; retry after the time in Retry-After", .bound.name())]
    Overloaded { bound: InFlightBound, max: usize },
    #[error(transparent)]
    EnrollmentGroupExists(app::GroupNameTaken),
    /// Enrollment groups need `ENROLLMENT_KEY_ENCRYPTION_KEY` to seal their keys.
    #[error("enrollment groups are not configured on this server: set ENROLLMENT_KEY_ENCRYPTION_KEY (README, Enrollment groups and EST)")]
    EnrollmentNotConfigured,
    #[error("a dependency is unavailable; retry later")]
    Unavailable,
    #[error("the request did not complete in time; retry it (with the same Idempotency-Key for commands)")]
    Timeout,
    #[error("internal error")]
    Internal,
}

/// RFC 9457 body, plus `request_id` and, for 400s about one field, `field`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Problem<'a> {
    /// `/problems/<slug>`; the slugs are listed in docs/problems.md and never renamed.
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-field")]
    type_: String,
    title: &'a str,
    /// The HTTP status code.
    status: u16,
    /// What went wrong, for humans; never contains a secret.
    detail: String,
    /// The `x-request-id` of the request, to find its log line.
    request_id: String,
    /// For `invalid-field` and the Idempotency-Key problems: the field, parameter or header.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// For `device-already-registered`: the id of the device registered with that serial number.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<Uuid>,
}

impl ApiError {
    /// (status, type slug, title). The slugs are a public contract: documented in
    /// docs/problems.md, never renamed.
    fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::InvalidField { .. } => (S::BAD_REQUEST, "invalid-field", "Invalid field"),
            Self::MalformedBody(_) => (S::BAD_REQUEST, "malformed-body", "Malformed request body"),
            Self::MissingIdempotencyKey => (
                S::BAD_REQUEST,
                "idempotency-key-missing",
                "Idempotency-Key required",
            ),
            Self::InvalidIdempotencyKey(_) => (
                S::BAD_REQUEST,
                "idempotency-key-invalid",
                "Invalid Idempotency-Key",
            ),
            Self::Unauthenticated(_) => (
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            Self::MissingScope(_) => (S::FORBIDDEN, "forbidden", "Insufficient scope"),
            Self::OperatorsOnly => (S::FORBIDDEN, "operators-only", "Platform operators only"),
            Self::TenantsOnly => (S::FORBIDDEN, "tenants-only", "Tenants only"),
            Self::NotFound | Self::UnknownProjection(_) => (S::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            // `Conflict(AlreadyRegistered)` is not produced: `From<CommandError>` names the
            // device.
            Self::DeviceAlreadyRegistered(_) | Self::Conflict(DeviceError::AlreadyRegistered) => (
                S::CONFLICT,
                "device-already-registered",
                "Device already registered",
            ),
            Self::Conflict(DeviceError::Decommissioned) => (
                S::CONFLICT,
                "device-decommissioned",
                "Device decommissioned",
            ),
            Self::Conflict(DeviceError::ProvisioningInProgress) => (
                S::CONFLICT,
                "provisioning-in-progress",
                "Provisioning in progress",
            ),
            Self::Conflict(DeviceError::NoCertificate) => {
                (S::CONFLICT, "no-certificate", "No certificate to revoke")
            }
            Self::Conflict(DeviceError::CertificateAlreadyRevoked) => (
                S::CONFLICT,
                "certificate-already-revoked",
                "Certificate already revoked",
            ),
            // Not produced: the HTTP API's renewals are authorized by a token, never by a
            // device's certificate (EST re-enrollment answers with EST's own errors).
            Self::Conflict(DeviceError::CertificateNotCurrent) => (
                S::CONFLICT,
                "certificate-not-current",
                "Certificate not current",
            ),
            // Not produced on HTTP routes (only EST enrollment asks with a group's credential),
            // but answered as what it is.
            Self::Conflict(DeviceError::StillCertified) => (
                S::CONFLICT,
                "certificate-not-current",
                "Certificate not current",
            ),
            // Not produced: `From<CommandError>` maps NotFound to `Self::NotFound`.
            Self::Conflict(DeviceError::NotFound) => (S::NOT_FOUND, "not-found", "Not found"),
            Self::CaStateConflict(_) => (
                S::CONFLICT,
                "ca-state-conflict",
                "The certificate authorities' state forbids it",
            ),
            Self::ConcurrencyConflict => (
                S::CONFLICT,
                "concurrent-modification",
                "Concurrent modification",
            ),
            Self::PayloadTooLarge(_) => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            ),
            Self::Unstorable => (
                S::UNPROCESSABLE_ENTITY,
                "unstorable-value",
                "Value cannot be stored",
            ),
            Self::RateLimited(_) => (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
            Self::TooManyLongPolls(_) => (
                S::TOO_MANY_REQUESTS,
                "too-many-long-polls",
                "Too many waiting long-polls",
            ),
            Self::DeadLetterState(_) => (
                S::CONFLICT,
                "dead-letter-state",
                "Dead letter not in that state",
            ),
            Self::RebuildRunning(_) => (S::CONFLICT, "rebuild-running", "Rebuild already running"),
            Self::EnrollmentGroupExists(_) => (
                S::CONFLICT,
                "enrollment-group-exists",
                "Enrollment group already exists",
            ),
            Self::EnrollmentNotConfigured => (
                S::NOT_IMPLEMENTED,
                "enrollment-not-configured",
                "Enrollment groups not configured",
            ),
            Self::RebuildNotRunning(_) => {
                (S::CONFLICT, "rebuild-not-running", "No rebuild running")
            }
            Self::Overloaded { .. } => (S::SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
            Self::Unavailable => (
                S::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
            ),
            Self::Timeout => (S::GATEWAY_TIMEOUT, "timeout", "Request timed out"),
            Self::Internal => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> Self {
        match err {
            CommandError::Rejected {
                rejection: DeviceError::NotFound,
                ..
            } => Self::NotFound,
            CommandError::Rejected {
                rejection: DeviceError::AlreadyRegistered,
                device_id,
            } => Self::DeviceAlreadyRegistered(device_id),
            CommandError::Rejected { rejection, .. } => Self::Conflict(rejection),
            CommandError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            CommandError::ConcurrencyConflict => Self::ConcurrencyConflict,
            CommandError::Unstorable => Self::Unstorable,
            CommandError::Unavailable(cause) => {
                tracing::warn!(error = %cause, error.sources = ?cause, "dependency unavailable");
                Self::Unavailable
            }
            CommandError::Corrupt(cause) => {
                tracing::error!(error = %cause, error.sources = ?cause, "event store corrupt");
                Self::Internal
            }
        }
    }
}

impl From<app::DeadLetterActionError> for ApiError {
    fn from(err: app::DeadLetterActionError) -> Self {
        use app::DeadLetterActionError as E;
        match err {
            E::NotFound(_) => Self::NotFound,
            wrong @ E::WrongState { .. } => Self::DeadLetterState(wrong.to_string()),
            E::Store(e) => e.into(),
        }
    }
}

impl From<app::RebuildRequestError> for ApiError {
    fn from(err: app::RebuildRequestError) -> Self {
        use app::RebuildRequestError as E;
        match err {
            E::UnknownProjection(unknown) => Self::UnknownProjection(unknown),
            E::AlreadyRunning(name) => Self::RebuildRunning(name),
            E::NotRunning(name) => Self::RebuildNotRunning(name),
            E::Store(e) => e.into(),
        }
    }
}

impl From<app::EnrollmentGroupError> for ApiError {
    fn from(error: app::EnrollmentGroupError) -> Self {
        use app::EnrollmentGroupError as E;
        match error {
            E::NameTaken(taken) => Self::EnrollmentGroupExists(taken),
            E::NotFound => Self::NotFound,
            E::Store(e) => e.into(),
        }
    }
}

impl From<DeviceReadError> for ApiError {
    fn from(err: DeviceReadError) -> Self {
        match err {
            DeviceReadError::Store(e) => e.into(),
            DeviceReadError::TooManyWaiting(limit) => Self::TooManyLongPolls(limit),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, error.sources = ?err, "dependency unavailable");
                Self::Unavailable
            }
            StoreError::Corrupt(cause) => {
                tracing::error!(error = %cause, error.sources = ?cause, "store holds unreadable data");
                Self::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.kind();
        let field = match &self {
            Self::InvalidField { field, .. } => Some(field.as_str()),
            Self::MissingIdempotencyKey | Self::InvalidIdempotencyKey(_) => Some("Idempotency-Key"),
            _ => None,
        };
        let device_id = match &self {
            Self::DeviceAlreadyRegistered(id) => Some(id.as_uuid()),
            _ => None,
        };
        let problem = Problem {
            type_: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            request_id: current_request_id().unwrap_or_default(),
            field,
            device_id,
        };
        let body = serde_json::to_vec(&problem).expect("a problem always serialises");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Unauthenticated(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // A waiting long-poll ends within its wait (≤ 30 s), most much sooner; a request in
            // flight within milliseconds, or at the latest at its deadline.
            Self::Unavailable
            | Self::ConcurrencyConflict
            | Self::TooManyLongPolls(_)
            | Self::Overloaded { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited(wait) => {
                // Whole seconds, rounded up: never tell a client to come back too early.
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}
