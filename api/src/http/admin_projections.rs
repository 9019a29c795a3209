//! Operators' read-model routes (scope `admin`): each projection's state, and starting or
//! cancelling a rebuild (which runs in the background of this process; see
//! `projections::ProjectionRebuild`). `api projections …` does the same from a shell.

use app::{ProjectionStatus, RebuildStatus};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::AuthorizedOperator;
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(projections))
        .routes(routes!(start_rebuild))
        .routes(routes!(cancel_rebuild))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ProjectionList)]
struct ProjectionsBody {
    projections: Vec<ProjectionStatus>,
}

/// Every read model: live, rebuilding or stalled; checkpoint, lag, rebuild progress and ETA.
#[utoipa::path(get, path = "/admin/projections", tag = "operations",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "The read models", body = ProjectionsBody)))]
async fn projections(
    State(state): State<AppState>,
    _auth: AuthorizedOperator,
) -> Result<Json<ProjectionsBody>, ApiError> {
    let projections = state.projections.status().await?;
    Ok(Json(ProjectionsBody { projections }))
}

/// Rebuild a read model from the event store into a shadow table, then swap it in; the live
/// one keeps serving meanwhile. Resumes an unfinished rebuild from its checkpoint.
#[utoipa::path(post, path = "/admin/projections/{name}/rebuild", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The projection, e.g. `device_view`")),
    responses(
        (status = 202, description = "Started; follow it with `GET /admin/projections`", body = RebuildStatus),
        (status = 404, description = "`not-found`: no such projection"),
        (status = 409, description = "`rebuild-running`: a rebuild of it is already running"),
    ))]
async fn start_rebuild(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<RebuildStatus>), ApiError> {
    let status = state
        .projections
        .start_rebuild(&name, &auth.operator.subject)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// Stop a running rebuild after its current batch; starting it again resumes it.
#[utoipa::path(post, path = "/admin/projections/{name}/rebuild:cancel", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("name" = String, Path, description = "The projection, e.g. `device_view`")),
    responses(
        (status = 202, description = "Cancelling", body = RebuildStatus),
        (status = 404, description = "`not-found`: no such projection"),
        (status = 409, description = "`rebuild-not-running`: no rebuild of it is running"),
    ))]
async fn cancel_rebuild(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<RebuildStatus>), ApiError> {
    let status = state
        .projections
        .cancel_rebuild(&name, &auth.operator.subject)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}
