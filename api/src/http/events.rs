//! The analysts' feed: the tenant's events in commit order, paged with an opaque cursor.
//! A page never skips an event that commits late; an empty page returns the same cursor, so
//! clients simply poll with the last `next_cursor`.

use app::{CommitPosition, EventEnvelope, PublicEvent};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::{Authorized, EventsRead};
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventPage)]
struct EventPageBody {
    events: Vec<EventEnvelope>,
    /// Pass as `after` to continue; the same cursor when the page is empty.
    next_cursor: String,
}

/// The tenant's events in commit order (docs/events.md). A page never skips an event that
/// commits late; poll with the last `next_cursor`.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    security(("bearer" = ["events:read"])),
    params(
        ("after" = Option<String>, Query, description = "`next_cursor` (or an event's `position`) to resume after; from the start when absent"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("type" = Option<String>, Query, description = "Only events of this type", example = "CertificateIssued"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPageBody),
        (status = 400, description = "`invalid-field`: a bad or unknown query parameter"),
    ))]
async fn events(
    State(state): State<AppState>,
    auth: Authorized<EventsRead>,
    params: QueryParams,
) -> Result<Json<EventPageBody>, ApiError> {
    params.allow_only(&["after", "limit", "type"])?;
    let after = params
        .one("after")?
        .map(|c| {
            CommitPosition::from_cursor(c)
                .map_err(|_| invalid("after", "not a cursor returned by this service"))
        })
        .transpose()?
        .unwrap_or(CommitPosition::START);
    let limit = params.number("limit", 1..=1000)?.unwrap_or(100) as usize;
    let event_type = params
        .one("type")?
        .map(|t| {
            PublicEvent::TYPES
                .into_iter()
                .find(|known| *known == t)
                .ok_or_else(|| {
                    invalid(
                        "type",
                        &format!("must be one of: {}", PublicEvent::TYPES.join(", ")),
                    )
                })
        })
        .transpose()?;
    let page = state
        .queries
        .feed(&auth.principal.tenant, after, limit, event_type)
        .await?;
    Ok(Json(EventPageBody {
        events: page.events,
        next_cursor: page.next.to_cursor(),
    }))
}
