//! Device queries: one device (ETag, long-poll until a version), the tenant's list (filters,
//! keyset pagination) and a device's history (keyset pagination by sequence).
//!
//! Each handler: authorise (`devices:read`), parse path and query (400 naming the
//! parameter), call one query-service method, map the result. Another tenant's device is a
//! 404, exactly like a missing one.

use std::time::Duration;

use app::{
    CertificateStatus, CertificateView, DeviceFilter, DeviceView, EventEnvelope, HistoryCursor,
    ListCursor,
};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use domain::{DeviceModel, DeviceStatus, ProvisioningFailure, RevocationReason};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::authorized::{Authorized, DevicesRead};
use super::deadline::RequestDeadline;
use super::device_id_path::DeviceIdPath;
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState};

/// The longest a client may ask to wait for a version.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// A history page's size: by default, and at most.
const HISTORY_PAGE_DEFAULT: u64 = 100;
const HISTORY_PAGE_MAX: u64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(get_device))
        .routes(routes!(device_history))
}

// The public device view (SPEC §4). A response DTO, distinct from the read-model row.

/// A device as the read model sees it (it follows the events within milliseconds).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Device)]
struct DeviceBody {
    id: Uuid,
    serial_number: String,
    model: String,
    labels: std::collections::BTreeMap<String, String>,
    status: DeviceStatus,
    /// The current certificate, once one was issued.
    certificate: Option<CertificateBody>,
    /// Why the last certificate request failed, while the device is `failed`.
    failure: Option<FailureBody>,
    /// Increases with every event; the `ETag` is `"v<version>"`.
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Certificate)]
struct CertificateBody {
    /// The certificate, PEM.
    pem: String,
    /// Its serial number, lowercase hex.
    serial: String,
    /// SHA-256 of its DER encoding, lowercase hex.
    fingerprint_sha256: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    /// `live`, `revoked` (see `revocation`), or `expired` (past `not_after`), as of this
    /// response.
    status: CertificateStatus,
    /// When and why it was revoked, once it is.
    revocation: Option<RevocationBody>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CertificateRevocation)]
struct RevocationBody {
    /// RFC 5280's name for the reason.
    reason: RevocationReason,
    revoked_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ProvisioningFailure)]
struct FailureBody {
    code: domain::FailureCode,
    detail: String,
}

impl DeviceBody {
    /// The body of `d`, its certificate's status as of `now`.
    fn at(d: DeviceView, now: DateTime<Utc>) -> Self {
        Self {
            id: d.id.as_uuid(),
            serial_number: d.serial_number.as_str().to_owned(),
            model: d.model.as_str().to_owned(),
            labels: d.labels.as_map().clone(),
            status: d.status,
            certificate: d.certificate.map(|c: CertificateView| CertificateBody {
                status: c.status_at(now),
                revocation: c.revocation.map(|r| RevocationBody {
                    reason: r.reason,
                    revoked_at: r.revoked_at,
                }),
                pem: c.issued.pem,
                serial: c.issued.serial,
                fingerprint_sha256: c.issued.fingerprint_sha256,
                not_before: c.issued.not_before,
                not_after: c.issued.not_after,
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

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DevicePage)]
struct DevicePageBody {
    devices: Vec<DeviceBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// A page of one device's events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeviceHistory)]
struct HistoryBody {
    events: Vec<EventEnvelope>,
    /// Pass as `cursor` for the next page; absent (null) on the last page.
    next_cursor: Option<String>,
}

/// One device, as the read model sees it. With `min_version` and `wait`, waits (long-poll)
/// until the device reaches that version or the wait ends, then answers with what it has.
/// A long-poll that would wait while its tenant, or the process, has as many waiting as
/// allowed is refused at once with 429 and `Retry-After` (it never waits in a queue).
#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices",
    security(("bearer" = ["devices:read"])),
    params(
        ("id" = Uuid, Path, description = "The device id"),
        ("min_version" = Option<u64>, Query, minimum = 1, maximum = 9223372036854775807_u64, description = "Wait for at least this version (with `wait`)"),
        ("wait" = Option<u64>, Query, minimum = 0, maximum = 30, description = "Seconds to wait for `min_version`; requires `min_version`. Never longer than the token is accepted"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier response: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "The device (possibly older than `min_version` when the wait ended)", body = DeviceBody, headers(
            ("ETag" = String, description = "`\"v<version>\"`"),
            ("Cache-Control" = String, description = "`private, no-cache`"))),
        (status = 304, description = "Not modified since the `If-None-Match` ETag", headers(
            ("ETag" = String, description = "`\"v<version>\"`"))),
        (status = 400, description = "`invalid-field`: a bad or unknown query parameter, or an id that is not a UUID"),
        (status = 404, description = "`not-found`: no such device in this tenant"),
        (status = 429, description = "`rate-limited`: the tenant's request rate is over its limit; or `too-many-long-polls`: the request would wait, and the tenant (`LONG_POLL_MAX_PER_TENANT`) or this process (`LONG_POLL_MAX`) already has as many long-polls waiting as allowed", headers(
            ("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
async fn get_device(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    DeviceIdPath(id): DeviceIdPath,
    params: QueryParams,
    headers: HeaderMap,
    Extension(deadline): Extension<RequestDeadline>,
) -> Result<Response, ApiError> {
    params.allow_only(&["min_version", "wait"])?;
    let min_version = params.number("min_version", 1..=i64::MAX as u64)?;
    let wait = params.number("wait", 0..=MAX_WAIT_SECONDS)?;
    let wait = match (min_version, wait) {
        // Never past the token: a new request with it would be refused by then.
        (Some(version), Some(seconds)) => Some((
            version,
            Duration::from_secs(seconds).min(auth.principal.token_remaining()),
        )),
        (Some(_), None) | (None, None) => None,
        (None, Some(_)) => return Err(invalid("wait", "requires min_version")),
    };
    if let Some((_, wait)) = wait {
        deadline.extend(wait);
    }
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
        Json(DeviceBody::at(device, Utc::now())).into_response()
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

/// The tenant's devices, in id order, filtered and paged.
#[utoipa::path(get, path = "/v1/devices", tag = "devices",
    security(("bearer" = ["devices:read"])),
    params(
        ("status" = Option<DeviceStatus>, Query, description = "Only devices in this status"),
        ("model" = Option<String>, Query, min_length = 1, max_length = 64, description = "Only devices of this model"),
        ("label" = Option<Vec<String>>, Query, style = Form, explode, description = "`key:value`; repeat to require several labels"),
        ("expiring_before" = Option<DateTime<Utc>>, Query, description = "RFC 3339: only devices whose certificate is not revoked and ends before this time (expired ones included)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of devices", body = DevicePageBody),
        (status = 400, description = "`invalid-field`: a bad or unknown query parameter"),
    ))]
async fn list_devices(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    params: QueryParams,
) -> Result<Json<DevicePageBody>, ApiError> {
    params.allow_only(&[
        "status",
        "model",
        "label",
        "expiring_before",
        "limit",
        "cursor",
    ])?;
    let status = params
        .one("status")?
        .map(|s| DeviceStatus::parse(s).map_err(|e| invalid("status", &e.to_string())))
        .transpose()?;
    let expiring_before = params
        .one("expiring_before")?
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| invalid("expiring_before", "must be an RFC 3339 time"))
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
        expiring_before,
    };
    let page = state
        .queries
        .devices(&auth.principal.tenant, &filter, cursor, limit)
        .await?;
    Ok(Json(DevicePageBody {
        devices: {
            let now = Utc::now();
            page.devices
                .into_iter()
                .map(|d| DeviceBody::at(d, now))
                .collect()
        },
        next_cursor: page.next.map(ListCursor::to_cursor),
    }))
}

/// One device's events, oldest first, in the public envelope (docs/events.md), in pages:
/// follow `next_cursor` until it is null to read them all, in order, each once.
#[utoipa::path(get, path = "/v1/devices/{id}/history", tag = "devices",
    security(("bearer" = ["devices:read"])),
    params(
        ("id" = Uuid, Path, description = "The device id"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page of this device's history"),
    ),
    responses(
        (status = 200, description = "A page of the device's events", body = HistoryBody),
        (status = 400, description = "`invalid-field`: an id that is not a UUID, or a query parameter"),
        (status = 404, description = "`not-found`: no such device in this tenant"),
    ))]
async fn device_history(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    DeviceIdPath(id): DeviceIdPath,
    params: QueryParams,
) -> Result<Json<HistoryBody>, ApiError> {
    params.allow_only(&["limit", "cursor"])?;
    let limit = params
        .number("limit", 1..=HISTORY_PAGE_MAX)?
        .unwrap_or(HISTORY_PAGE_DEFAULT) as usize;
    let cursor = params
        .one("cursor")?
        .map(|c| {
            HistoryCursor::from_cursor(c, id).map_err(|_| {
                invalid(
                    "cursor",
                    "not a cursor returned by this endpoint for this device",
                )
            })
        })
        .transpose()?;
    let page = state
        .queries
        .history(&auth.principal.tenant, id, cursor, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(HistoryBody {
        events: page.events,
        next_cursor: page.next.map(HistoryCursor::to_cursor),
    }))
}
