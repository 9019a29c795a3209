//! The OpenAPI 3.1 document of the api, generated from the code: each handler's
//! `#[utoipa::path]` and the DTOs' schemas (registered together with the routes by
//! utoipa-axum, so a route cannot exist undocumented), the health endpoints from `bootstrap`,
//! then completed here with what every route shares: bearer auth, the problem responses any
//! `/v1` or `/admin` route can give (401, 403, 429, 500, 503, 504), problem+json bodies for
//! every error status, and the `x-request-id` header.
//!
//! Served at `/openapi.json`; `docs/openapi.json` is a committed copy (`api openapi` writes
//! it) and a test fails when the two differ.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};

use super::api_error::Problem;

const PROBLEM_JSON: &str = "application/problem+json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Device provisioning API",
        description = "Register devices, get their X.509 client certificates issued, follow their \
            state and read the event stream. Commands answer 202 and take effect asynchronously; \
            every command needs an `Idempotency-Key`, so retries are safe. Errors are RFC 9457 \
            problem+json (docs/problems.md).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "devices", description = "Commands and queries on devices"),
        (name = "events", description = "The tenant's event feed, for analysts"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub(super) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some(
            "JWT (HS256 with the shared secret, or ES256/RS256 with a key of the configured \
             JWKS) with `sub`, `scope` (space-separated: devices:write, \
             devices:read, events:read, admin), `exp` and optionally `nbf` (both checked \
             with 30 s leeway), and either `tenant` (a tenant's token) or `role` = \
             `platform-operator` and no tenant (an operator's token: the only kind the \
             `/admin` routes take, 403 `operators-only` otherwise). `api token` makes one."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Completes a document generated from the routes (see the module docs).
pub(super) fn complete(mut doc: OpenApi) -> OpenApi {
    doc.merge(bootstrap::HealthApi::openapi());
    for (path, item) in doc.paths.paths.iter_mut() {
        let public_api = path.starts_with("/v1/") || path.starts_with("/admin/");
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            if public_api {
                for (status, description) in SHARED_PROBLEMS {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(problem_response(description)));
                }
            }
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
                if public_api && is_error && response.content.is_empty() {
                    response.content.insert(
                        PROBLEM_JSON.into(),
                        RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
                    );
                }
                response.headers.insert(
                    "x-request-id".into(),
                    RefOr::T(
                        HeaderBuilder::new()
                            .schema(Some(Object::with_type(Type::String)))
                            .description(Some(
                                "The request's id: the client's `x-request-id` when it sent a \
                                 valid one, else a new one. Every log line of the request has it.",
                            ))
                            .build(),
                    ),
                );
            }
        }
    }
    doc
}

/// Problems any `/v1` route can answer, besides its own.
const SHARED_PROBLEMS: [(u16, &str); 6] = [
    (
        401,
        "`unauthenticated`: no bearer token, or one that is invalid, expired or not valid yet",
    ),
    (403, "`forbidden`: the token lacks the route's scope"),
    (
        429,
        "`rate-limited`: the tenant's request rate is over its limit; see `Retry-After`",
    ),
    (500, "`internal`: a bug; the request id finds its log line"),
    (
        503,
        "`service-unavailable`: a dependency (Postgres) is unavailable; retry after `Retry-After`",
    ),
    (
        504,
        "`timeout`: the request did not complete in time; retry it (commands with the same key)",
    ),
];

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
