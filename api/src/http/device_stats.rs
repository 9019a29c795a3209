//! `GET /v1/stats`: the tenant's device counts per model and status (the `device_stats` read
//! model, which follows the events a little behind the commands).

use app::DeviceCount;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::{Authorized, DevicesRead};
use super::query_params::QueryParams;
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(device_stats))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeviceStats)]
struct StatsBody {
    /// All of the tenant's devices.
    total: u64,
    /// By model, then status; combinations without devices are absent.
    counts: Vec<DeviceCount>,
}

/// How many devices the tenant has, per model and status.
#[utoipa::path(get, path = "/v1/stats", tag = "devices",
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The counts", body = StatsBody),
        (status = 400, description = "`invalid-field`: a query parameter (none are taken)"),
    ))]
async fn device_stats(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
    params: QueryParams,
) -> Result<Json<StatsBody>, ApiError> {
    params.allow_only(&[])?;
    let counts = state.stats.counts(&auth.principal.tenant).await?;
    Ok(Json(StatsBody {
        total: counts.iter().map(|c| c.devices).sum(),
        counts,
    }))
}
