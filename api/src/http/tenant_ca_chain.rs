//! `GET /v1/ca`: a tenant's own CA chain, for its relying parties: its root (the trust anchor
//! to give them; rotating the issuing CA never changes it) and the issuing CAs that sign or
//! still answer for its devices' certificates (during a rotation, both), as PEM.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::{CaState, TenantCa};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorized::{Authorized, DevicesRead};
use super::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_ca_chain))
}

/// An issuing CA of the tenant's chain.
#[derive(Debug, Serialize, ToSchema)]
struct IssuingCaBody {
    generation: u32,
    /// `active` (it signs new certificates) or `rotating` (a newer one does; it still answers
    /// for what it issued).
    state: &'static str,
    /// Its id in CRL and OCSP URLs.
    id: String,
    not_after: DateTime<Utc>,
    certificate: String,
}

/// The tenant's chain.
#[derive(Debug, Serialize, ToSchema)]
struct CaChainBody {
    /// The tenant's root CA certificate, PEM: what its relying parties trust.
    root: String,
    /// The issuing CAs in use, newest first.
    issuing: Vec<IssuingCaBody>,
    /// The issuing CAs' certificates, newest first, then the root's: one PEM bundle.
    chain: String,
}

/// The tenant's own CA chain.
#[utoipa::path(get, path = "/v1/ca", tag = "devices",
    security(("bearer" = ["devices:read"])),
    responses(
        (status = 200, description = "The tenant's root and issuing CAs", body = CaChainBody),
        (status = 404, description = "`not-found`: the tenant has no CAs of its own (its devices are issued by the platform's CA), or they are not made yet"),
    ))]
async fn get_ca_chain(
    State(state): State<AppState>,
    auth: Authorized<DevicesRead>,
) -> Result<Json<CaChainBody>, ApiError> {
    let loaded = state.tenant_cas.cas_of(&auth.principal.tenant).await?;
    let cas = loaded.aggregate;
    let root = cas
        .root()
        .and_then(|root| root.certified.as_ref())
        .ok_or(ApiError::NotFound)?
        .certificate
        .pem
        .clone();
    let issuing: Vec<IssuingCaBody> = cas
        .issuing()
        .iter()
        .rev()
        .filter(|ca| matches!(ca.state, CaState::Active | CaState::Rotating))
        .filter_map(issuing_body)
        .collect();
    let chain = issuing
        .iter()
        .map(|ca| ca.certificate.as_str())
        .chain([root.as_str()])
        .collect();
    Ok(Json(CaChainBody {
        root,
        issuing,
        chain,
    }))
}

fn issuing_body(ca: &TenantCa) -> Option<IssuingCaBody> {
    let certificate = &ca.certified.as_ref()?.certificate;
    Some(IssuingCaBody {
        generation: ca.generation.get(),
        state: ca.state.as_str(),
        id: certificate.id.as_str().to_owned(),
        not_after: certificate.not_after,
        certificate: certificate.pem.clone(),
    })
}
