//! Operators' routes for a tenant's certificate authorities (platform operators only): create
//! the tenant's root and first issuing CA, read them, start a rotation of the issuing CA,
//! revoke an issuing CA. The worker makes the keys and certificates; these routes only record
//! the decisions, as `TenantCas` events (their metadata names the operator: the CAs' audit
//! trail). Commands take an `Idempotency-Key`, scoped to the tenant and the route.

use app::{CaCommandError, CommandMetadata, Decision, RunError};
use axum::extract::{FromRequestParts, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::{
    CaCommonName, CaGeneration, CaKeyCurve, CaRevocationReason, CaSpec, IssuingCaId, TenantCa,
    TenantCas, TenantCasError, TenantId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::AuthorizedOperator;
use super::idempotency_key_header::{claim, IdempotencyKeyHeader};
use super::json_body::JsonBody;
use super::query_params::invalid;
use super::{current_request_id, current_traceparent, ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant_cas, get_tenant_cas))
        .routes(routes!(rotate_issuing_ca))
        .routes(routes!(revoke_ca))
}

/// How a CA is to be made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CaSpecBody {
    /// The subject's common name, 1 to 64 characters.
    common_name: String,
    /// `P-256` (the default) or `P-384`.
    #[serde(default = "default_curve")]
    curve: String,
    /// How long its certificate is valid, 1 to 36,500 days.
    validity_days: u32,
}

fn default_curve() -> String {
    CaKeyCurve::P256.as_str().to_owned()
}

impl CaSpecBody {
    fn parse(&self, field: &'static str) -> Result<CaSpec, ApiError> {
        let bad = |detail: domain::InvalidValue| invalid(field, &detail.to_string());
        Ok(CaSpec {
            curve: CaKeyCurve::parse(&self.curve).map_err(bad)?,
            common_name: CaCommonName::parse(&self.common_name).map_err(bad)?,
            validity_days: CaSpec::validity_days(self.validity_days).map_err(bad)?,
        })
    }
}

/// The tenant's CAs to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTenantCasRequest {
    /// The root: the trust anchor the tenant gives its relying parties.
    root: CaSpecBody,
    /// The first issuing CA, which signs the tenant's devices' certificates.
    issuing: CaSpecBody,
}

/// A rotation of the issuing CA.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// How the next issuing CA is made; by default as the current one.
    #[serde(default)]
    issuing: Option<CaSpecBody>,
}

/// A CA's revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeCaRequest {
    /// RFC 5280's reason: `cACompromise`, `affiliationChanged`, `superseded`,
    /// `cessationOfOperation` or `unspecified`.
    reason: String,
}

/// One of a tenant's CAs.
#[derive(Debug, Serialize, ToSchema)]
struct TenantCaBody {
    /// 0 is the root; the issuing CAs count up from 1.
    generation: u32,
    /// `root` or `issuing`.
    role: &'static str,
    /// `created` (its key and certificate are being made), `active`, `rotating` (a newer CA
    /// issues; it still answers for what it issued), `retired` or `revoked`.
    state: &'static str,
    common_name: String,
    curve: &'static str,
    validity_days: u32,
    /// Its id in CRL and OCSP URLs, once certified.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Its certificate's serial number (hex), once certified.
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<DateTime<Utc>>,
    /// When an issuing CA signs its first device certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    issues_from: Option<DateTime<Utc>>,
    /// Its certificate, PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    /// How many certificates it issued are live (not revoked, not expired), as the status
    /// read model counts them (it trails by a moment): watch the fleet move during a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    live_certificates: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
}

/// A tenant's CAs.
#[derive(Debug, Serialize, ToSchema)]
struct TenantCasBody {
    tenant: String,
    /// The version of the tenant's CAs (the sequence of their last event).
    version: u64,
    /// The root first, then the issuing CAs, oldest first.
    cas: Vec<TenantCaBody>,
}

impl TenantCaBody {
    fn of(ca: &TenantCa) -> Self {
        let certificate = ca.certified.as_ref().map(|c| &c.certificate);
        Self {
            generation: ca.generation.get(),
            role: if ca.generation.is_root() {
                "root"
            } else {
                "issuing"
            },
            state: ca.state.as_str(),
            common_name: ca.spec.common_name.as_str().to_owned(),
            curve: ca.spec.curve.as_str(),
            validity_days: ca.spec.validity_days,
            id: certificate.map(|c| c.id.as_str().to_owned()),
            serial: certificate.map(|c| c.serial.clone()),
            not_before: certificate.map(|c| c.not_before),
            not_after: certificate.map(|c| c.not_after),
            issues_from: ca.issues_from,
            certificate: certificate.map(|c| c.pem.clone()),
            live_certificates: None,
            revocation_reason: ca.revoked.map(|(reason, _)| reason.as_str()),
            revoked_at: ca.revoked.map(|(_, at)| at),
        }
    }
}

fn body(tenant: &TenantId, cas: &TenantCas, version: u64) -> TenantCasBody {
    TenantCasBody {
        tenant: tenant.as_str().to_owned(),
        version,
        cas: cas.all().map(TenantCaBody::of).collect(),
    }
}

/// Create a tenant's root CA and first issuing CA; the worker makes their keys (in its key
/// store) and certificates, after which the tenant's devices are issued by its own CA.
#[utoipa::path(post, path = "/admin/tenants/{tenant}/cas", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("tenant" = TenantId, Path, description = "The tenant"),
        ("Idempotency-Key" = String, Header, description = "Makes a retry safe")),
    request_body(content = CreateTenantCasRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded; the worker makes the CAs (their `state` is `created` until then)", body = TenantCasBody, headers(
            ("Location" = String, description = "The tenant's CAs"))),
        (status = 400, description = "`invalid-field`, `malformed-body` or an Idempotency-Key problem"),
        (status = 409, description = "`ca-state-conflict`: the tenant has CAs already"),
        (status = 422, description = "`idempotency-key-reused`"),
    ))]
async fn create_tenant_cas(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    TenantPath(tenant): TenantPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(request): JsonBody<CreateTenantCasRequest>,
) -> Result<Response, ApiError> {
    let root = request.root.parse("root")?;
    let issuing = request.issuing.parse("issuing")?;
    let route = format!("POST /admin/tenants/{}/cas", tenant.as_str());
    let claim = claim(&tenant, route, key, &request);
    let decision = state
        .tenant_cas
        .create(metadata(&auth, &tenant), claim, root, issuing)
        .await
        .map_err(ca_error)?;
    Ok(answer(StatusCode::ACCEPTED, &tenant, decision))
}

/// A tenant's CAs, their states and, for issuing CAs, their live certificates.
#[utoipa::path(get, path = "/admin/tenants/{tenant}/cas", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("tenant" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant's CAs", body = TenantCasBody),
        (status = 400, description = "`invalid-field`: not a tenant id"),
        (status = 404, description = "`not-found`: the tenant has no CAs of its own"),
    ))]
async fn get_tenant_cas(
    State(state): State<AppState>,
    _auth: AuthorizedOperator,
    TenantPath(tenant): TenantPath,
) -> Result<Json<TenantCasBody>, ApiError> {
    let loaded = state.tenant_cas.cas_of(&tenant).await?;
    if loaded.version == 0 {
        return Err(ApiError::NotFound);
    }
    let mut answer = body(&tenant, &loaded.aggregate, loaded.version);
    let issuers: Vec<IssuingCaId> = loaded
        .aggregate
        .issuing()
        .iter()
        .filter_map(|ca| ca.certified.as_ref().map(|c| c.certificate.id.clone()))
        .collect();
    let live = state
        .live_certificates
        .live_by_issuer(&issuers, Utc::now())
        .await?;
    for ca in answer.cas.iter_mut().filter(|ca| ca.role == "issuing") {
        if let Some(id) = &ca.id {
            ca.live_certificates = Some(
                live.get(&IssuingCaId::recorded(id.clone()))
                    .copied()
                    .unwrap_or(0),
            );
        }
    }
    Ok(Json(answer))
}

/// Start a rotation of the tenant's issuing CA: the worker makes the next one, which takes
/// over new certificates a few seconds after it is certified; the current one keeps answering
/// for what it issued until that has expired, then retires.
#[utoipa::path(post, path = "/admin/tenants/{tenant}/cas/rotate", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("tenant" = TenantId, Path, description = "The tenant"),
        ("Idempotency-Key" = String, Header, description = "Makes a retry safe")),
    request_body(content = RotateRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Recorded; the worker makes the next issuing CA", body = TenantCasBody),
        (status = 400, description = "`invalid-field`, `malformed-body` or an Idempotency-Key problem"),
        (status = 404, description = "`not-found`: the tenant has no CAs of its own"),
        (status = 409, description = "`ca-state-conflict`: a rotation is under way, or no issuing CA is certified yet"),
        (status = 422, description = "`idempotency-key-reused`"),
    ))]
async fn rotate_issuing_ca(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    TenantPath(tenant): TenantPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(request): JsonBody<RotateRequest>,
) -> Result<Response, ApiError> {
    let issuing = request
        .issuing
        .as_ref()
        .map(|spec| spec.parse("issuing"))
        .transpose()?;
    let route = format!("POST /admin/tenants/{}/cas/rotate", tenant.as_str());
    let claim = claim(&tenant, route, key, &request);
    let decision = state
        .tenant_cas
        .start_rotation(metadata(&auth, &tenant), claim, issuing)
        .await
        .map_err(ca_error)?;
    Ok(answer(StatusCode::ACCEPTED, &tenant, decision))
}

/// Revoke one of the tenant's issuing CAs: OCSP answers `revoked` for every certificate it
/// issued, the tenant root's CRL lists it, and unless another issuing CA is active or being
/// made, its replacement is made at once; the tenant's devices enroll again with their group
/// credential.
#[utoipa::path(post, path = "/admin/tenants/{tenant}/cas/{generation}/revoke", tag = "operations",
    security(("bearer" = ["admin"])),
    params(("tenant" = TenantId, Path, description = "The tenant"),
        ("generation" = u32, Path, description = "The issuing CA's generation"),
        ("Idempotency-Key" = String, Header, description = "Makes a retry safe")),
    request_body(content = RevokeCaRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked", body = TenantCasBody),
        (status = 400, description = "`invalid-field`, `malformed-body` or an Idempotency-Key problem"),
        (status = 404, description = "`not-found`: no such tenant CA"),
        (status = 409, description = "`ca-state-conflict`: the root, a CA not yet certified, or one revoked already"),
        (status = 422, description = "`idempotency-key-reused`"),
    ))]
async fn revoke_ca(
    State(state): State<AppState>,
    auth: AuthorizedOperator,
    TenantGenerationPath(tenant, generation): TenantGenerationPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(request): JsonBody<RevokeCaRequest>,
) -> Result<Response, ApiError> {
    let reason = CaRevocationReason::parse(&request.reason)
        .map_err(|e| invalid("reason", &e.to_string()))?;
    let route = format!(
        "POST /admin/tenants/{}/cas/{}/revoke",
        tenant.as_str(),
        generation.get()
    );
    let claim = claim(&tenant, route, key, &request);
    let decision = state
        .tenant_cas
        .revoke(metadata(&auth, &tenant), claim, generation, reason)
        .await
        .map_err(ca_error)?;
    Ok(answer(StatusCode::OK, &tenant, decision))
}

fn metadata(auth: &AuthorizedOperator, tenant: &TenantId) -> CommandMetadata {
    CommandMetadata {
        tenant: tenant.clone(),
        actor: auth.operator.subject.clone(),
        request_id: current_request_id().unwrap_or_default(),
        traceparent: current_traceparent(),
    }
}

fn answer(status: StatusCode, tenant: &TenantId, decision: Decision<TenantCas>) -> Response {
    let replayed = decision.replayed;
    let mut response = (
        status,
        Json(body(tenant, &decision.aggregate, decision.version)),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/admin/tenants/{}/cas", tenant.as_str()))
    {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn ca_error(error: CaCommandError) -> ApiError {
    match error {
        RunError::Rejected(TenantCasError::NotFound | TenantCasError::UnknownCa) => {
            ApiError::NotFound
        }
        RunError::Rejected(rejection) => ApiError::CaStateConflict(rejection),
        RunError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
        RunError::ConcurrencyConflict => ApiError::ConcurrencyConflict,
        RunError::Unstorable => ApiError::Unstorable,
        RunError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "dependency unavailable");
            ApiError::Unavailable
        }
        RunError::Corrupt(cause) => {
            tracing::error!(error = %cause, "event store corrupt");
            ApiError::Internal
        }
    }
}

/// The `{tenant}` segment as a tenant id; anything else is a 400 naming `tenant`.
struct TenantPath(TenantId);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| invalid("tenant", "must be a tenant id"))?;
        TenantId::parse(&raw)
            .map(Self)
            .map_err(|e| invalid("tenant", &e.to_string()))
    }
}

/// The `{tenant}` and `{generation}` segments.
struct TenantGenerationPath(TenantId, CaGeneration);

impl<S: Send + Sync> FromRequestParts<S> for TenantGenerationPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path((tenant, generation)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| invalid("generation", "must be a CA generation (a number)"))?;
        let tenant = TenantId::parse(&tenant).map_err(|e| invalid("tenant", &e.to_string()))?;
        let generation = generation
            .parse::<u32>()
            .map_err(|_| invalid("generation", "must be a CA generation (a number)"))?;
        Ok(Self(tenant, CaGeneration::new(generation)))
    }
}
