//! Routes and the HTTP-only concerns around them. Each resource module owns its routes and
//! exports `router()`; this module only merges them and adds the layers every route shares.

mod admin_dead_letters;
mod admin_enrollment_groups;
mod admin_projections;
mod admin_tenant_cas;
mod api_error;
mod authorized;
mod cmp;
mod connection_limit;
mod connection_server;
mod crl;
mod deadline;
mod device_id_path;
mod device_stats;
mod device_views;
mod devices;
mod est;
mod events;
mod idempotency_key_header;
mod in_flight;
mod json_body;
mod lingering_close;
mod ocsp;
mod openapi_document;
mod query_params;
mod request_context;
mod scep;
mod tenant_ca_chain;
mod tenant_rate_limit;
mod unread_body;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use app::{DeviceCommandService, DeviceQueryService};
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use api_error::ApiError;
pub use connection_limit::{BoundedConnection, BoundedListener, ConnectionLimits};
pub use connection_server::{serve, HeadArrived, ServedConnection};
pub use device_views::MAX_WAIT_SECONDS;
pub use in_flight::{InFlight, InFlightBound, InFlightLimit};
pub use request_context::{current_request_id, current_traceparent, record_device, record_tenant};
pub use tenant_rate_limit::TenantRateLimit;

use crate::auth::JwtKeys;

/// Limits that apply to every request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub body_limit_bytes: usize,
    /// Past this a request is answered 504; the work it started is cancelled (a command that
    /// committed is safe: its retry with the same key replays it).
    pub request_timeout: Duration,
}

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<DeviceCommandService>,
    pub queries: Arc<DeviceQueryService>,
    pub auth: Arc<JwtKeys>,
    /// `/livez`, `/readyz`, `/metrics`.
    pub health: bootstrap::Health,
    pub rate_limit: Arc<TenantRateLimit>,
    /// Read-model operations (`/admin/projections`).
    pub projections: Arc<dyn app::ProjectionOperations>,
    /// Dead-letter operations (`/admin/dead-letters`).
    pub dead_letters: Arc<dyn app::DeadLetterOperations>,
    /// Device counts (`/v1/stats`).
    pub stats: Arc<dyn app::DeviceStatsReadModel>,
    /// The CAs' current CRLs (`/pki/{ca}/crl`).
    pub crls: Arc<app::pki::CrlDistribution>,
    /// The OCSP responder (`/pki/{ca}/ocsp`).
    pub ocsp: Arc<pki::ocsp::OcspResponder>,
    /// Tenants' certificate authorities (`/admin/tenants/{tenant}/cas`, `/v1/ca`).
    pub tenant_cas: Arc<app::TenantCaService>,
    /// How many live certificates each CA still has (the `certificate_status` read model).
    pub live_certificates: Arc<dyn app::pki::LiveCertificates>,
    /// Enrollment groups (`/admin/enrollment-groups`); `None` without
    /// `ENROLLMENT_KEY_ENCRYPTION_KEY`.
    pub enrollment_groups: Option<Arc<app::EnrollmentGroupService>>,
    /// EST (`/.well-known/est/`); `None` without enrollment groups or `CA_CERT_PATH`.
    pub est: Option<Arc<crate::est::EstServer>>,
    /// CMP (`/.well-known/cmp/p/{label}`); `None` as `est` is.
    pub cmp: Option<Arc<crate::cmp::CmpServer>>,
    /// SCEP (`/scep/{label}`); `None` as `est` is, or without `SCEP_RA_CERT_PATH`.
    pub scep: Option<Arc<crate::scep::ScepServer>>,
    /// Commands being worked on, at most `COMMAND_MAX_IN_FLIGHT` (`AdmittedCommand`).
    pub in_flight_commands: Arc<InFlightLimit>,
    /// Requests being worked on, health and metrics aside, at most `REQUEST_MAX_IN_FLIGHT`.
    pub in_flight_requests: Arc<InFlightLimit>,
    /// Cancelled when the server starts shutting down: live streams (the feed's
    /// `text/event-stream`) end then, so that the graceful shutdown is not held up by them.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The routes of the public API together with their OpenAPI description.
fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, doc) = OpenApiRouter::with_openapi(openapi_document::ApiDoc::openapi())
        .merge(devices::router())
        .merge(device_views::router())
        .merge(events::router())
        .merge(device_stats::router())
        .merge(admin_projections::router())
        .merge(admin_dead_letters::router())
        .merge(admin_enrollment_groups::router())
        .merge(admin_tenant_cas::router())
        .merge(tenant_ca_chain::router())
        .merge(crl::router())
        .routes(utoipa_axum::routes!(openapi_json))
        .split_for_parts();
    (routes, openapi_document::complete(doc))
}

/// The OpenAPI 3.1 document that `/openapi.json` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().1
}

/// This document, as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
async fn openapi_json() -> impl axum::response::IntoResponse {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

pub fn router(state: AppState, limits: HttpLimits) -> Router {
    let routes = Router::new()
        .merge(documented_routes().0)
        // Public and binary (RFC 6960): outside the OpenAPI document and the bearer tokens.
        .merge(ocsp::router())
        // EST (RFC 7030), CMP (RFC 9483) and SCEP (RFC 8894): devices' own protocols, with
        // their own credentials and errors.
        .merge(est::router())
        .merge(cmp::router())
        .merge(scep::router());
    served(routes, state, limits)
}

/// What a plain-HTTP listener of its own serves to relying parties when the api's own
/// listener speaks TLS (`PKI_ADDR`): the CRLs, the OCSP responder and SCEP, nothing else. Status
/// is fetched over plain HTTP (RFC 5280 §4.2.1.13, RFC 5019): checking an HTTPS responder's
/// certificate would need status first, so relying parties (nginx among them) do not.
pub fn pki_router(state: AppState, limits: HttpLimits) -> Router {
    let routes = Router::new()
        .merge(Router::from(crl::router()))
        .merge(ocsp::router())
        // SCEP's messages are signed and encrypted end to end (RFC 8894 §4.1), and some
        // clients check TLS for none of their operations but the first (certmonger's
        // PKIOperation trusts only the system's CAs): SCEP is served over plain HTTP here too.
        .merge(scep::router());
    served(routes, state, limits)
}

/// What a listener of its own serves to orchestrators and scrapers (`API_HEALTH_ADDR`):
/// `/livez`, `/readyz` and `/metrics`, which no client of the api's listener can crowd out.
pub fn health_router(state: AppState, limits: HttpLimits) -> Router {
    served(Router::new(), state, limits)
}

/// `routes` under the bound on requests in flight, with health and metrics beside them
/// (always answered), and the layers every answer goes through.
fn served(routes: Router<AppState>, state: AppState, limits: HttpLimits) -> Router {
    Router::new()
        .merge(routes)
        // Everything so far, not health and metrics: orchestrators and scrapers must be
        // answered however loaded the process is.
        .layer(axum::middleware::from_fn_with_state(
            state.in_flight_requests.clone(),
            in_flight::admit,
        ))
        .merge(state.health.router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(axum::Extension(json_body::BodyLimitBytes(
            limits.body_limit_bytes,
        )))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            deadline::enforce,
        ))
        // A panic is a bug; answer 500 problem+json and keep serving.
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal)
        }))
        // After every answer, so that an early one (a shed command, a bad token) leaves the
        // connection usable.
        .layer(axum::middleware::from_fn_with_state(
            limits.body_limit_bytes,
            unread_body::drain,
        ))
        // Outermost, so that every response (errors included) carries the request id.
        .layer(axum::middleware::from_fn(request_context::track))
}
