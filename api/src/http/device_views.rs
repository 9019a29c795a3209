//! Device queries: one device (ETag, long-poll until a version), the tenant's list (filters,
//! keyset pagination) and a device's history.
//!
//! Each handler: authorise (`devices:read`), parse path and query (400 naming the
//! parameter), call one query-service method, map the result. Another tenant's device is a
//! 404, exactly like a missing one.

use std::time::Duration;

use app::{DeviceFilter, DeviceView, EventEnvelope, ListCursor};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::{DeviceModel, DeviceStatus, IssuedCertificate, ProvisioningFailure};
use serde::Serialize;
use uuid::Uuid;

use super::authorized::{Authorized, DevicesRead};
use super::device_id_path::DeviceIdPath;
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState};

/// The longest a client may ask to wait for a version.
pub const MAX_WAIT_SECONDS: u64 = 30;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{id}", get(get_device))
        .route("/v1/devices/{id}/history", get(device_history))
}

/// The public device view (SPEC §4). A response DTO, distinct from the read-model row.
#[derive(Debug, Serialize)]
struct DeviceBody {
    id: Uuid,
    serial_number: String,
    model: String,
    labels: std::collections::BTreeMap<String, String>,
    status: DeviceStatus,
    certificate: Option<CertificateBody>,
    failure: Option<FailureBody>,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct CertificateBody {
    pem: String,
    serial: String,
    fingerprint_sha256: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct FailureBody {
    code: domain::FailureCode,
    detail: String,
}

impl From<DeviceView> for DeviceBody {
    fn from(d: DeviceView) -> Self {
        Self {
            id: d.id.as_uuid(),
            serial_number: d.serial_number.as_str().to_owned(),
            model: d.model.as_str().to_owned(),
            labels: d.labels.as_map().clone(),
            status: d.status,
            certificate: d.certificate.map(|c: IssuedCertificate| CertificateBody {
                pem: c.pem,
                serial: c.serial,
                fingerprint_sha256: c.fingerprint_sha256,
                not_before: c.not_before,
                not_after: c.not_after,
            }),
            failure: d.failure.map(|f: ProvisioningFailure| FailureBody {
                code: f.code,
                detail: f.detail,
            }),
            version: d.version,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct DevicePageBody {
    devices: Vec<DeviceBody>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct HistoryBody {
    events: Vec<EventEnvelope>,
}

async fn get_device(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    DeviceIdPath(id): DeviceIdPath,
    params: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    params.allow_only(&["min_version", "wait"])?;
    let min_version = params.number("min_version", 1..=i64::MAX as u64)?;
    let wait = params.number("wait", 0..=MAX_WAIT_SECONDS)?;
    let wait = match (min_version, wait) {
        (Some(version), Some(seconds)) => Some((version, Duration::from_secs(seconds))),
        (Some(_), None) | (None, None) => None,
        (None, Some(_)) => return Err(invalid("wait", "requires min_version")),
    };
    let device = state
        .queries
        .device(&auth.principal.tenant, id, wait)
        .await?
        .ok_or(ApiError::NotFound)?;
    let etag = format!("\"v{}\"", device.version);
    let etag_value = HeaderValue::from_str(&etag).expect("ASCII");
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(DeviceBody::from(device)).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag_value);
    // Clients may keep it, but must revalidate: the device changes under them.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

async fn list_devices(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    params: QueryParams,
) -> Result<Json<DevicePageBody>, ApiError> {
    params.allow_only(&["status", "model", "label", "limit", "cursor"])?;
    let status = params
        .one("status")?
        .map(|s| {
            [
                DeviceStatus::Pending,
                DeviceStatus::Provisioned,
                DeviceStatus::Failed,
                DeviceStatus::Decommissioned,
            ]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                invalid(
                    "status",
                    "must be one of pending, provisioned, failed, decommissioned",
                )
            })
        })
        .transpose()?;
    let model = params
        .one("model")?
        .map(|m| DeviceModel::parse(m).map_err(|e| invalid("model", &e.to_string())))
        .transpose()?;
    let labels = params
        .all("label")
        .map(|l| match l.split_once(':') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(invalid("label", "must be key:value")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = params.number("limit", 1..=500)?.unwrap_or(50) as usize;
    let cursor = params
        .one("cursor")?
        .map(|c| {
            ListCursor::from_cursor(c)
                .map_err(|_| invalid("cursor", "not a cursor returned by this endpoint"))
        })
        .transpose()?;
    let filter = DeviceFilter {
        status,
        model,
        labels,
    };
    let page = state
        .queries
        .devices(&auth.principal.tenant, &filter, cursor, limit)
        .await?;
    Ok(Json(DevicePageBody {
        devices: page.devices.into_iter().map(DeviceBody::from).collect(),
        next_cursor: page.next.map(ListCursor::to_cursor),
    }))
}

async fn device_history(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    DeviceIdPath(id): DeviceIdPath,
    params: QueryParams,
) -> Result<Json<HistoryBody>, ApiError> {
    params.allow_only(&[])?;
    let events = state
        .queries
        .history(&auth.principal.tenant, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(HistoryBody { events }))
}
