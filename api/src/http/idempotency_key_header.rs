//! The `Idempotency-Key` request header (IETF httpapi draft): a Structured Field string,
//! e.g. `"8e03978e-40d5-43e8-bc93-6894a57f9324"`. Many clients send it unquoted, so a bare
//! token is accepted too.

use app::{IdempotencyClaim, IdempotencyKey, IdempotencyScope, RequestFingerprint};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::TenantId;
use serde::Serialize;

use super::ApiError;

pub struct IdempotencyKeyHeader(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        let value = values.next().ok_or(ApiError::MissingIdempotencyKey)?;
        if values.next().is_some() {
            return Err(ApiError::InvalidIdempotencyKey("must be sent once".into()));
        }
        let raw = value
            .to_str()
            .map_err(|_| ApiError::InvalidIdempotencyKey("must be ASCII".into()))?;
        let unquoted = parse_sf_string(raw.trim()).map_err(ApiError::InvalidIdempotencyKey)?;
        IdempotencyKey::parse(&unquoted)
            .map(Self)
            .map_err(ApiError::InvalidIdempotencyKey)
    }
}

/// The claim a command makes with `key` on `route` (the method and the concrete path) in
/// `tenant`'s scope, for `body`: its canonical form (the request DTO serialised again, so
/// that the client's key order and whitespace do not matter) is fingerprinted.
pub fn claim<B: Serialize>(
    tenant: &TenantId,
    route: String,
    key: IdempotencyKey,
    body: &B,
) -> IdempotencyClaim {
    let canonical = serde_json::to_vec(body).expect("request DTOs always serialise");
    IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: tenant.clone(),
            route,
            key,
        },
        fingerprint: RequestFingerprint::of(&canonical),
    }
}

/// RFC 8941 §4.2.5 sf-string (`"..."` with `\"` and `\\` escapes), or the raw value when it
/// is not quoted.
fn parse_sf_string(raw: &str) -> Result<String, String> {
    let Some(inner) = raw.strip_prefix('"') else {
        return Ok(raw.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => out.push(escaped),
                _ => return Err("has an invalid escape in its quoted string".into()),
            },
            '"' => {
                return if chars.as_str().is_empty() {
                    Ok(out)
                } else {
                    Err("has characters after its closing quote".into())
                };
            }
            c => out.push(c),
        }
    }
    Err("has no closing quote".into())
}

#[cfg(test)]
mod tests {
    use super::parse_sf_string;

    #[test]
    fn accepts_quoted_and_bare_keys() {
        assert_eq!(parse_sf_string("\"abc-1\"").unwrap(), "abc-1");
        assert_eq!(parse_sf_string("abc-1").unwrap(), "abc-1");
        assert_eq!(parse_sf_string(r#""a\"b\\c""#).unwrap(), r#"a"b\c"#);
    }

    #[test]
    fn refuses_broken_quoting() {
        assert!(parse_sf_string("\"abc").is_err());
        assert!(parse_sf_string("\"a\"b").is_err());
        assert!(parse_sf_string(r#""a\nb""#).is_err());
    }
}
