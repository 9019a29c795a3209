//! Operators' enrollment-group routes (platform operators only): create a group for a tenant
//! (its key is in this one answer, never again), list, read, disable and enable. Every change
//! is recorded with the operator's identity (`operator_actions`), logged and counted.

use std::collections::BTreeMap;
use std::sync::Arc;

use app::{EnrollmentGroup, EnrollmentGroupService, NewEnrollmentGroup};
use axum::extract::{FromRequestParts, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::{DeviceModel, EnrollmentGroupName, Labels, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::AuthorizedOperator;
use super::json_body::JsonBody;
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_enrollment_group, list_enrollment_groups))
        .routes(routes!(get_enrollment_group))
        .routes(routes!(disable_enrollment_group))
        .routes(routes!(enable_enrollment_group))
}

/// A group to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateEnrollmentGroupRequest {
    /// Unique across tenants: the label of the group's EST URLs.
    #[schema(value_type = EnrollmentGroupName)]
    name: String,
    /// The tenant the group's devices belong to.
    #[schema(value_type = TenantId)]
    tenant: String,
    /// The model every device enrolled through the group gets.
    #[schema(value_type = DeviceModel)]
    model: String,
    /// The labels every device enrolled through the group gets.
    #[serde(default)]
    #[schema(value_type = Labels)]
    labels: BTreeMap<String, String>,
}

/// An enrollment group (never with its key).
#[derive(Debug, Serialize, ToSchema)]
struct EnrollmentGroupBody {
    #[schema(value_type = EnrollmentGroupName)]
    name: String,
    #[schema(value_type = TenantId)]
    tenant: String,
    #[schema(value_type = DeviceModel)]
    model: String,
    #[schema(value_type = Labels)]
    labels: BTreeMap<String, String>,
    /// A disabled group enrolls nothing; the devices it enrolled are not affected.
    enabled: bool,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EnrollmentGroup> for EnrollmentGroupBody {
    fn from(group: EnrollmentGroup) -> Self {
        Self {
            name: group.name.into(),
            tenant: group.tenant.as_str().to_owned(),
            model: group.model.as_str().to_owned(),
            labels: group.labels.into(),
            enabled: group.enabled,
            created_by: group.created_by,
            created_at: group.created_at,
            updated_at: group.updated_at,
        }
    }
}

/// A group just created, with its key: shown this once, never stored in the clear.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedEnrollmentGroupBody {
    #[serde(flatten)]
    group: EnrollmentGroupBody,
    /// The group key (base64 of 32 random bytes). A device's EST password is
    /// `base64(HMAC-SHA256(group_key, serial_number))`; keep it where the factory derives
    /// device keys. It cannot be read again.
    group_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EnrollmentGroupList)]
struct EnrollmentGroupsBody {
    enrollment_groups: Vec<EnrollmentGroupBody>,
}

fn groups(state: &AppState) -> Result<&Arc<EnrollmentGroupService>, ApiError> {
    state
        .enrollment_groups
        .as_ref()
        .ok_or(ApiError::EnrollmentNotConfigured)
}

fn field<E: std::fmt::Display>(name: &'static str) -> impl FnOnce(E) -> ApiError {
    move |err| invalid(name, &err.to_string())
}

/// Create an enrollment group for a tenant; the answer holds its key, once.
#[utoipa::path(post, path = "/admin/enrollment-groups", tag = "operations",
    security(("bearer" = ["admin"])),
    request_body(content = CreateEnrollmentGroupRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `group_key` is shown this once", body = CreatedEnrollmentGroupBody, headers(
            ("Location" = String, description = "The group's URL"))),
        (status = 400, description = "`invalid-field` or `malformed-body`"),
        (status = 409, description = "`enrollment-group-exists`: a group has that name"),
        (status = 413, description = "`payload-too-large`"),
        (status = 415, description = "`unsupported-media-type`"),
        (status = 501, description = "`enrollment-not-configured`: ENROLLMENT_KEY_ENCRYPTION_KEY is not set"),
    ))]
async fn create_enrollment_group(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    JsonBody(body): JsonBody<CreateEnrollmentGroupRequest>,
) -> Result<Response, ApiError> {
    let group = NewEnrollmentGroup {
        name: EnrollmentGroupName::parse(&body.name).map_err(field("name"))?,
        tenant: TenantId::parse(&body.tenant).map_err(field("tenant"))?,
        model: DeviceModel::parse(&body.model).map_err(field("model"))?,
        labels: Labels::parse(body.labels).map_err(field("labels"))?,
    };
    let created = groups(&state)?
        .create(group, &auth.operator.subject)
        .await?;
    let location = format!("/admin/enrollment-groups/{}", created.group.name);
    let body = CreatedEnrollmentGroupBody {
        group: created.group.into(),
        group_key: created.key.to_base64(),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    // The key is in this body: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Enrollment groups, by name.
#[utoipa::path(get, path = "/admin/enrollment-groups", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("tenant" = Option<TenantId>, Query, description = "Only this tenant's groups")),
    responses(
        (status = 200, description = "The groups", body = EnrollmentGroupsBody),
        (status = 400, description = "`invalid-field`: a bad or unknown query parameter"),
        (status = 501, description = "`enrollment-not-configured`"),
    ))]
async fn list_enrollment_groups(
    State(state): State<AppState>,
    _auth: AuthorizedOperator,
    params: QueryParams,
) -> Result<Json<EnrollmentGroupsBody>, ApiError> {
    params.allow_only(&["tenant"])?;
    let tenant = params
        .one("tenant")?
        .map(TenantId::parse)
        .transpose()
        .map_err(field("tenant"))?;
    let groups = groups(&state)?.list(tenant.as_ref()).await?;
    Ok(Json(EnrollmentGroupsBody {
        enrollment_groups: groups.into_iter().map(Into::into).collect(),
    }))
}

/// One enrollment group.
#[utoipa::path(get, path = "/admin/enrollment-groups/{name}", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 200, description = "The group", body = EnrollmentGroupBody),
        (status = 400, description = "`invalid-field`: not a group name"),
        (status = 404, description = "`not-found`: no such group"),
        (status = 501, description = "`enrollment-not-configured`"),
    ))]
async fn get_enrollment_group(
    State(state): State<AppState>,
    _auth: AuthorizedOperator,
    GroupNamePath(name): GroupNamePath,
) -> Result<Json<EnrollmentGroupBody>, ApiError> {
    Ok(Json(groups(&state)?.get(&name).await?.into()))
}

/// Disable a group: it enrolls nothing until enabled again.
#[utoipa::path(post, path = "/admin/enrollment-groups/{name}/disable", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 200, description = "Disabled", body = EnrollmentGroupBody),
        (status = 400, description = "`invalid-field`: not a group name"),
        (status = 404, description = "`not-found`: no such group"),
        (status = 501, description = "`enrollment-not-configured`"),
    ))]
async fn disable_enrollment_group(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    GroupNamePath(name): GroupNamePath,
) -> Result<Json<EnrollmentGroupBody>, ApiError> {
    set_enabled(&state, &auth, &name, false).await
}

/// Enable a disabled group again.
#[utoipa::path(post, path = "/admin/enrollment-groups/{name}/enable", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 200, description = "Enabled", body = EnrollmentGroupBody),
        (status = 400, description = "`invalid-field`: not a group name"),
        (status = 404, description = "`not-found`: no such group"),
        (status = 501, description = "`enrollment-not-configured`"),
    ))]
async fn enable_enrollment_group(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    GroupNamePath(name): GroupNamePath,
) -> Result<Json<EnrollmentGroupBody>, ApiError> {
    set_enabled(&state, &auth, &name, true).await
}

async fn set_enabled(
    state: &AppState,
    auth: &AuthorizedOperator,
    name: &EnrollmentGroupName,
    enabled: bool,
) -> Result<Json<EnrollmentGroupBody>, ApiError> {
    let group = groups(state)?
        .set_enabled(name, enabled, &auth.operator.subject)
        .await?;
    Ok(Json(group.into()))
}

/// The `{name}` segment as a group name; anything else is a 400 naming `name`.
struct GroupNamePath(EnrollmentGroupName);

impl<S: Send + Sync> FromRequestParts<S> for GroupNamePath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| invalid("name", "must be a group name"))?;
        EnrollmentGroupName::parse(&raw)
            .map(Self)
            .map_err(field("name"))
    }
}
