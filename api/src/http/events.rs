//! The analysts' feed: the tenant's events in commit order, paged with an opaque cursor.
//! A page never skips an event that commits late; an empty page returns the same cursor, so
//! clients simply poll with the last `next_cursor`.

use app::{CommitPosition, EventEnvelope, PublicEvent};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::authorized::{Authorized, EventsRead};
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", get(events))
}

#[derive(Debug, Serialize)]
struct EventPageBody {
    events: Vec<EventEnvelope>,
    next_cursor: String,
}

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
