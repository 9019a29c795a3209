//! The one place enrollment outcomes become CMP's reasons: each refusal of the enrollment
//! service as a `PKIFailureInfo` bit and a text for the device's operator (RFC 4210 §5.2.3),
//! and outages as `systemUnavail`. Never a secret, never a stack trace: the cause of an
//! outage is logged, not sent.

use app::{CommandError, EnrollmentError, EnrollmentRefusal, StoreError};
use domain::FailureCode;
use pki::cmp::PkiFailure;

/// Why a CMP request was refused: the reason and the text of its `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmpFailure {
    pub failure: PkiFailure,
    pub text: String,
}

impl CmpFailure {
    pub fn new(failure: PkiFailure, text: impl Into<String>) -> Self {
        Self {
            failure,
            text: text.into(),
        }
    }

    /// The service could not answer now; the device may send its request again.
    pub fn unavailable() -> Self {
        Self::new(
            PkiFailure::SystemUnavail,
            "the service is unavailable; send the request again later",
        )
    }

    /// The `error` message's body.
    pub fn into_body(self) -> pki::cmp::CmpAnswerBody {
        pki::cmp::CmpAnswerBody::Error {
            failure: self.failure,
            text: self.text,
        }
    }

    /// Counted in `cmp_requests_total{outcome}`.
    pub fn outcome(&self) -> &'static str {
        match self.failure {
            PkiFailure::BadMessageCheck | PkiFailure::NotAuthorized | PkiFailure::CertRevoked => {
                "unauthorized"
            }
            PkiFailure::SystemUnavail => "unavailable",
            PkiFailure::SystemFailure => "internal",
            _ => "refused",
        }
    }
}

impl From<EnrollmentError> for CmpFailure {
    fn from(error: EnrollmentError) -> Self {
        use EnrollmentRefusal as R;
        use PkiFailure as F;
        let refusal = match error {
            EnrollmentError::Refused(refusal) => refusal,
            EnrollmentError::Command(CommandError::ConcurrencyConflict) => {
                return Self::unavailable()
            }
            EnrollmentError::Command(CommandError::Unstorable) => {
                return Self::new(
                    F::BadDataFormat,
                    "a value of this request cannot be stored; nothing was done",
                )
            }
            EnrollmentError::Command(CommandError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, error.sources = ?cause, "dependency unavailable");
                return Self::unavailable();
            }
            EnrollmentError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(error = %cause, error.sources = ?cause, "dependency unavailable");
                return Self::unavailable();
            }
            other => {
                tracing::error!(error = %other, error.sources = ?other, "CMP enrollment failed");
                return Self::new(F::SystemFailure, "internal error");
            }
        };
        let failure = match &refusal {
            // Never which of the serial, the secret or the group was wrong.
            R::InvalidCredential => F::BadMessageCheck,
            R::GroupNotNamed | R::NoRequest | R::RequestInProgress => F::BadRequest,
            R::GroupDisabled | R::AlreadyEnrolled | R::Decommissioned | R::UnknownCertificate => {
                F::NotAuthorized
            }
            R::CertificateRevoked => F::CertRevoked,
            R::Subject(_) => F::BadCertTemplate,
            R::Refused(failure) => match failure.code {
                FailureCode::InvalidSignature => F::BadPop,
                FailureCode::KeyPolicyViolation | FailureCode::SubjectMismatch => {
                    F::BadCertTemplate
                }
                FailureCode::MalformedCsr => F::BadDataFormat,
            },
        };
        Self::new(failure, refusal.to_string())
    }
}
