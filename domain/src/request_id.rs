//! Identifies one request for a certificate (the registration's, or one renewal's).

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Chosen by the application layer when it accepts a registration or renewal, and carried
/// by the worker's outcome (`CompleteProvisioning` / `FailProvisioning`), so that an outcome
/// is applied to the request it answers, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid, description = "Identifies one certificate request (registration or renewal) and its outcome."))]
#[serde(transparent)]
pub struct CertificateRequestId(Uuid);

impl CertificateRequestId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for CertificateRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
