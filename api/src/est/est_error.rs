//! The one place EST failures become responses: EST's own error form (RFC 7030 §4.2.3: a
//! status and a human-readable `text/plain` reason), never a stack trace, never a secret.
//! Outages are 503 with `Retry-After`, which EST clients honour; a bug is a 500 whose cause
//! is logged, not sent.

use std::time::Duration;

use app::{CommandError, EnrollmentError, EnrollmentRefusal, StoreError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::CsrError;

#[derive(Debug, thiserror::Error)]
pub enum EstError {
    #[error("EST is not enabled on this server (it needs CA_CERT_PATH and ENROLLMENT_KEY_ENCRYPTION_KEY)")]
    NotEnabled,
    #[error("not an EST label: {0}")]
    InvalidLabel(String),
    #[error("simpleenroll needs the device's serial number and its key (HTTP Basic)")]
    Unauthenticated,
    #[error("simplereenroll needs the device's current certificate (TLS client authentication)")]
    NoClientCertificate,
    #[error("the body must be a certificate request: Content-Type: application/pkcs10")]
    UnsupportedMediaType,
    #[error("the body must be base64 (RFC 7030 §4.2.1)")]
    NotBase64,
    #[error("the body is not a certificate request: {0}")]
    NotPkcs10(CsrError),
    #[error("the body is larger than this server accepts")]
    TooLarge,
    #[error("{0}")]
    Refused(EnrollmentRefusal),
    /// A request of this device is still being processed; the same request may be repeated.
    #[error("{0}")]
    Busy(EnrollmentRefusal),
    /// The event store refused a value of the request (which passed validation): nothing was
    /// done, and repeating the request cannot help.
    #[error("a value of this request cannot be stored; nothing was done")]
    Unstorable,
    #[error("the service is unavailable; retry later")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl From<EnrollmentError> for EstError {
    fn from(error: EnrollmentError) -> Self {
        match error {
            EnrollmentError::Refused(refusal @ EnrollmentRefusal::RequestInProgress) => {
                Self::Busy(refusal)
            }
            EnrollmentError::Refused(refusal) => Self::Refused(refusal),
            EnrollmentError::Command(CommandError::ConcurrencyConflict) => Self::Unavailable,
            EnrollmentError::Command(CommandError::Unstorable) => Self::Unstorable,
            EnrollmentError::Command(CommandError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, error.sources = ?cause, "dependency unavailable");
                Self::Unavailable
            }
            EnrollmentError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, error.sources = ?cause, "dependency unavailable");
                Self::Unavailable
            }
            // A rejection the enrollment service does not expect, a corrupt store, a key that
            // does not open: ours to fix, not the device's.
            other => {
                tracing::error!(error = %other, error.sources = ?other, "EST enrollment failed");
                Self::Internal
            }
        }
    }
}

impl EstError {
    fn status(&self) -> StatusCode {
        use EnrollmentRefusal as R;
        use StatusCode as S;
        match self {
            Self::NotEnabled | Self::InvalidLabel(_) => S::NOT_FOUND,
            Self::Unauthenticated => S::UNAUTHORIZED,
            Self::NoClientCertificate => S::FORBIDDEN,
            Self::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            Self::NotBase64 | Self::NotPkcs10(_) | Self::Unstorable => S::BAD_REQUEST,
            Self::TooLarge => S::PAYLOAD_TOO_LARGE,
            Self::Refused(refusal) => match refusal {
                R::GroupNotNamed => S::BAD_REQUEST,
                R::InvalidCredential => S::UNAUTHORIZED,
                R::GroupDisabled | R::UnknownCertificate | R::CertificateRevoked => S::FORBIDDEN,
                R::Subject(_) | R::Refused(_) => S::BAD_REQUEST,
                R::AlreadyEnrolled | R::Decommissioned | R::RequestInProgress => S::CONFLICT,
                R::NoRequest => S::NOT_FOUND,
            },
            Self::Busy(_) => S::CONFLICT,
            Self::Unavailable => S::SERVICE_UNAVAILABLE,
            Self::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Counted in `est_requests_total{outcome}`.
    pub fn outcome(&self) -> &'static str {
        match self.status().as_u16() {
            401 | 403 => "unauthorized",
            500 => "internal",
            503 => "unavailable",
            _ => "refused",
        }
    }
}

/// How long a device should wait before repeating a request that met an outage or a
/// request in progress.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl IntoResponse for EstError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"EST\", charset=\"UTF-8\""),
            );
        }
        if matches!(self, Self::Unavailable | Self::Busy(_)) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        response
    }
}
