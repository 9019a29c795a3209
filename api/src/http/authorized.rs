//! `Authorized<S>`: an extractor that only succeeds for a valid bearer token of a tenant
//! granting the scope `S`; `AuthorizedOperator`: the same for a platform operator's token
//! granting `admin` (a tenant's token never does, whatever its scopes). Putting the scope in
//! the type makes a handler's requirement visible in its signature, and auth runs before any
//! body is parsed (401/403 before 400). The tenant's rate limit is charged only once the scope
//! is granted: 401s and 403s cost no quota.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::{Identity, Operator, Principal, Scope};

pub trait RequiredScope {
    const SCOPE: Scope;
}

pub struct DevicesWrite;
impl RequiredScope for DevicesWrite {
    const SCOPE: Scope = Scope::DevicesWrite;
}

pub struct DevicesRead;
impl RequiredScope for DevicesRead {
    const SCOPE: Scope = Scope::DevicesRead;
}

pub struct EventsRead;
impl RequiredScope for EventsRead {
    const SCOPE: Scope = Scope::EventsRead;
}

/// Who the request's bearer token speaks for.
fn identity(parts: &Parts, state: &AppState) -> Result<Identity, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    Ok(state.auth.verify_header(header)?)
}

pub struct Authorized<S: RequiredScope> {
    pub principal: Principal,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope + Send> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = match identity(parts, state)? {
            Identity::Tenant(principal) => principal,
            Identity::Operator(_) => return Err(ApiError::TenantsOnly),
        };
        super::record_tenant(principal.tenant.as_str());
        // Scope first: a request refused for its scope does no work, so it must not spend
        // the tenant's quota (a read-only token could otherwise starve the tenant's writers).
        if !principal.has(S::SCOPE) {
            return Err(ApiError::MissingScope(S::SCOPE));
        }
        state
            .rate_limit
            .check(&principal.tenant)
            .map_err(ApiError::RateLimited)?;
        Ok(Self {
            principal,
            _scope: PhantomData,
        })
    }
}

/// A platform operator's token granting `admin`.
pub struct AuthorizedOperator {
    pub operator: Operator,
}

impl FromRequestParts<AppState> for AuthorizedOperator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let operator = match identity(parts, state)? {
            Identity::Operator(operator) => operator,
            Identity::Tenant(_) => return Err(ApiError::OperatorsOnly),
        };
        if !operator.has(Scope::Admin) {
            return Err(ApiError::MissingScope(Scope::Admin));
        }
        Ok(Self { operator })
    }
}
