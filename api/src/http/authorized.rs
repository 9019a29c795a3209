//! `Authorized<S>`: an extractor that only succeeds for a valid bearer token granting the
//! scope `S`. Putting the scope in the type makes a handler's requirement visible in its
//! signature, and auth runs before any body is parsed (401/403 before 400).

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::{Principal, Scope};

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

pub struct Admin;
impl RequiredScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

pub struct Authorized<S: RequiredScope> {
    pub principal: Principal,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope + Send> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default());
        let principal = state.auth.verify_header(header)?;
        super::record_tenant(principal.tenant.as_str());
        state
            .rate_limit
            .check(&principal.tenant)
            .map_err(ApiError::RateLimited)?;
        if !principal.has(S::SCOPE) {
            return Err(ApiError::MissingScope(S::SCOPE));
        }
        Ok(Self {
            principal,
            _scope: PhantomData,
        })
    }
}
