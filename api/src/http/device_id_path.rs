//! `DeviceIdPath`: the `{id}` path segment as a `DeviceId`. Any failure, including a segment
//! that is not valid percent-encoded UTF-8, is a 400 naming `id`, in problem+json (axum's own
//! path rejection would answer in plain text).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use domain::DeviceId;
use uuid::Uuid;

use super::ApiError;

pub struct DeviceIdPath(pub DeviceId);

impl<S: Send + Sync> FromRequestParts<S> for DeviceIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid = || ApiError::InvalidField {
            field: "id".into(),
            detail: "must be a UUID".into(),
        };
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        let id = Uuid::parse_str(&raw).map_err(|_| invalid())?;
        super::record_device(id);
        Ok(Self(DeviceId::from_uuid(id)))
    }
}
