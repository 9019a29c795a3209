//! Operators' dead-letter routes (scope `admin`): list (filter by consumer, tenant, error,
//! state), retry (a worker processes the message again, once) and discard (never again).
//! Each action is recorded with the caller's identity (`operator_actions`), logged and counted.

use app::{DeadLetterFilter, DeadLetterState, DeadLetterView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::authorized::AuthorizedOperator;
use super::query_params::{invalid, QueryParams};
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(retry_dead_letter))
        .routes(routes!(discard_dead_letter))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeadLetterList)]
struct DeadLettersBody {
    dead_letters: Vec<DeadLetterView>,
}

/// Dead letters, newest first.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "operations",
    security(("bearer" = ["admin"])),
    params(
        ("consumer" = Option<String>, Query, description = "e.g. `provisioner-registrations`"),
        ("tenant" = Option<String>, Query),
        ("error" = Option<String>, Query, description = "Case-insensitive part of the error"),
        ("state" = Option<DeadLetterState>, Query),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 500, description = "Default 100"),
    ),
    responses(
        (status = 200, description = "The dead letters", body = DeadLettersBody),
        (status = 400, description = "`invalid-field`: a bad or unknown query parameter"),
    ))]
async fn list_dead_letters(
    State(state): State<AppState>,
    _auth: AuthorizedOperator,
    params: QueryParams,
) -> Result<Json<DeadLettersBody>, ApiError> {
    params.allow_only(&["consumer", "tenant", "error", "state", "limit"])?;
    let filter = DeadLetterFilter {
        consumer: params.one("consumer")?.map(str::to_owned),
        tenant: params.one("tenant")?.map(str::to_owned),
        error: params.one("error")?.map(str::to_owned),
        state: params
            .one("state")?
            .map(|s| {
                DeadLetterState::parse(s).ok_or_else(|| {
                    invalid(
                        "state",
                        "must be one of dead, retry_requested, retrying, retried, discarded",
                    )
                })
            })
            .transpose()?,
        limit: params.number("limit", 1..=500)?.unwrap_or(100) as usize,
    };
    let dead_letters = state.dead_letters.list(&filter).await?;
    Ok(Json(DeadLettersBody { dead_letters }))
}

/// Process a dead letter again: a worker hosting its consumer claims it within a second or so;
/// its `state` goes `retry_requested` → `retrying` → `retried` (or back to `dead` with the new
/// error).
#[utoipa::path(post, path = "/admin/dead-letters/{id}/retry", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The dead letter's id")),
    responses(
        (status = 202, description = "Retry requested", body = DeadLetterView),
        (status = 400, description = "`invalid-field`: an id that is not a UUID"),
        (status = 404, description = "`not-found`: no such dead letter"),
        (status = 409, description = "`dead-letter-state`: it is not `dead` (already retried, discarded or being retried)"),
    ))]
async fn retry_dead_letter(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    DeadLetterIdPath(id): DeadLetterIdPath,
) -> Result<(StatusCode, Json<DeadLetterView>), ApiError> {
    let letter = state.dead_letters.retry(id, &auth.operator.subject).await?;
    Ok((StatusCode::ACCEPTED, Json(letter)))
}

/// Discard a dead letter for good: it is never processed again.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/discard", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Discarded", body = DeadLetterView),
        (status = 400, description = "`invalid-field`: an id that is not a UUID"),
        (status = 404, description = "`not-found`: no such dead letter"),
        (status = 409, description = "`dead-letter-state`: it is not `dead`"),
    ))]
async fn discard_dead_letter(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    DeadLetterIdPath(id): DeadLetterIdPath,
) -> Result<Json<DeadLetterView>, ApiError> {
    let letter = state
        .dead_letters
        .discard(id, &auth.operator.subject)
        .await?;
    Ok(Json(letter))
}

/// The `{id}` segment as a UUID; anything else is a 400 naming `id`.
struct DeadLetterIdPath(Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for DeadLetterIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| invalid("id", "must be a UUID"))?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| invalid("id", "must be a UUID"))
    }
}
