//! The analysts' feed: the tenant's events in commit order, paged with an opaque cursor.
//! A page never skips an event that commits late; an empty page returns the same cursor, so
//! clients simply poll with the last `next_cursor`, or wait for events (`wait=S`, a
//! long-poll), or tail them live (`Accept: text/event-stream`, resuming with
//! `Last-Event-ID`). Waiting reads and live tails are bounded like device long-polls, and
//! by the token: a wait ends, and a live stream closes, when the token stops being accepted
//! (`exp` plus the clock-skew leeway), as any new request with it would be refused.

use std::convert::Infallible;
use std::time::Duration;

use app::{CommitPosition, EventEnvelope, PublicEvent};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use domain::TenantId;
use futures::stream::{self, Stream, StreamExt};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::{Authorized, EventsRead};
use super::deadline::RequestDeadline;
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState, MAX_WAIT_SECONDS};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Events sent per read of a live tail.
const TAIL_PAGE: usize = 100;
/// A live tail reads again at least this often (a comment keeps the connection alive).
const TAIL_KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventPage)]
struct EventPageBody {
    events: Vec<EventEnvelope>,
    /// Pass as `after` to continue: past every event the read considered (with `type`, those
    /// of other types too, so it may move on an empty page); the same cursor when nothing new
    /// committed.
    next_cursor: String,
}

/// The tenant's events in commit order (docs/events.md). A page never skips an event that
/// commits late; poll with the last `next_cursor`, or wait for new events with `wait`. With
/// `Accept: text/event-stream`, a live stream: one SSE event per event (`id`: its position,
/// `event`: its type, `data`: its envelope), resuming after `Last-Event-ID` (or `after`).
/// A wait, or a live stream, lasts at most as long as the token is accepted: then the wait
/// answers what it has, and the stream sends the comment `: token expired` and ends (resume
/// with a new token and `Last-Event-ID`).
#[utoipa::path(get, path = "/v1/events", tag = "events",
    security(("bearer" = ["events:read"])),
    params(
        ("after" = Option<String>, Query, description = "`next_cursor` (or an event's `position`) to resume after; from the start when absent"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("type" = Option<String>, Query, description = "Only events of this type", example = "CertificateIssued"),
        ("wait" = Option<u64>, Query, minimum = 0, maximum = 30, description = "Seconds to wait for events when there are none after `after` yet (a long-poll: answered as soon as one commits; never longer than the token is accepted)"),
    ),
    responses(
        (status = 200, description = "A page of events; or, with `Accept: text/event-stream`, the live stream, which ends when the token stops being accepted (`exp` plus 30 s of clock-skew leeway), after the comment `: token expired`", content(
            (EventPageBody = "application/json"),
            (String = "text/event-stream"))),
        (status = 400, description = "`invalid-field`: a bad or unknown query parameter, or a `Last-Event-ID` that is not a position"),
        (status = 429, description = "`rate-limited`; or `too-many-long-polls`: the request would wait (or stream), and the tenant or this process already has as many long-polls waiting as allowed", headers(
            ("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
async fn events(
    State(state): State<AppState>,
    auth: Authorized<EventsRead>,
    headers: HeaderMap,
    params: QueryParams,
    Extension(deadline): Extension<RequestDeadline>,
) -> Result<Response, ApiError> {
    params.allow_only(&["after", "limit", "type", "wait"])?;
    let after = params
        .one("after")?
        .map(|c| position(c, "after"))
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
    // Nothing the token holds open outlives it.
    let token_remaining = auth.principal.token_remaining();
    let wait = Duration::from_secs(params.number("wait", 0..=MAX_WAIT_SECONDS)?.unwrap_or(0))
        .min(token_remaining);
    let token_expires = tokio::time::Instant::now() + token_remaining;
    let tenant = auth.principal.tenant;
    if wants_event_stream(&headers) {
        let resume = headers
            .get("last-event-id")
            .map(|v| {
                v.to_str()
                    .map_err(|_| invalid("Last-Event-ID", "not a position"))
                    .and_then(|raw| position(raw, "Last-Event-ID"))
            })
            .transpose()?;
        let slot = state
            .queries
            .open_tail(&tenant)
            .map_err(ApiError::TooManyLongPolls)?;
        let events = tail(
            state,
            tenant,
            resume.unwrap_or(after),
            event_type,
            slot,
            token_expires,
        );
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(TAIL_KEEP_ALIVE))
            .into_response());
    }
    // The request timeout does not cut short a wait the client asked for (as device
    // long-polls); the work after it stays bounded.
    deadline.extend(wait);
    let page = state
        .queries
        .feed_waiting(&tenant, after, limit, event_type, wait)
        .await?;
    Ok(Json(EventPageBody {
        events: page.events,
        next_cursor: page.next.to_cursor(),
    })
    .into_response())
}

fn position(raw: &str, field: &str) -> Result<CommitPosition, ApiError> {
    CommitPosition::from_cursor(raw)
        .map_err(|_| invalid(field, "not a cursor returned by this service"))
}

/// Whether the client asked for the live stream (`Accept` names `text/event-stream`).
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The tenant's events after `after`, as they commit, until the client goes, the server
/// shuts down, the database fails or `token_expires` (then after the comment
/// `token expired`); the client resumes with `Last-Event-ID`. Holds `slot` for as long as it
/// lives.
fn tail(
    state: AppState,
    tenant: TenantId,
    after: CommitPosition,
    event_type: Option<&'static str>,
    slot: app::LongPollSlot,
    token_expires: tokio::time::Instant,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(Some((after, slot)), move |cursor| {
        let state = state.clone();
        let tenant = tenant.clone();
        async move {
            let (after, slot) = cursor?;
            loop {
                let now = tokio::time::Instant::now();
                if now >= token_expires {
                    drop(slot);
                    let last = Ok(Event::default().comment("token expired"));
                    return Some((stream::iter(vec![last]), None));
                }
                let deadline = (now + TAIL_KEEP_ALIVE).min(token_expires);
                let page = tokio::select! {
                    () = state.shutdown.cancelled() => return None,
                    page = state.queries.next_events(&tenant, after, TAIL_PAGE, event_type, deadline) => page,
                };
                match page {
                    Ok(page) if page.events.is_empty() => continue,
                    Ok(page) => {
                        let events: Vec<Result<Event, Infallible>> = page
                            .events
                            .iter()
                            .map(|envelope| Ok(sse_event(envelope)))
                            .collect();
                        return Some((stream::iter(events), Some((page.next, slot))));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, error.sources = ?e, "event stream ended: the feed could not be read");
                        return None;
                    }
                }
            }
        }
    })
    .flatten()
}

fn sse_event(envelope: &EventEnvelope) -> Event {
    let data = serde_json::to_string(envelope).expect("an envelope always serialises");
    Event::default()
        .id(envelope.position.clone())
        .event(envelope.event_type())
        .data(data)
}
