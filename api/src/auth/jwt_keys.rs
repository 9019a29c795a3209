//! HS256 JWTs signed with `AUTH_JWT_SECRET`: verified on every request, issued by
//! `api token` for operators and tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::TenantId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Identity, Operator, Principal};

/// The `role` claim of a platform operator's token (which names no tenant).
pub const OPERATOR_ROLE: &str = "platform-operator";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// A tenant's token names its tenant; an operator's names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// [`OPERATOR_ROLE`] on a platform operator's token; absent on a tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch: optional; when present, refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Why a token was refused. The messages go to the client: they say what is wrong with the
/// token, never echo it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header is missing")]
    Missing,
    #[error("the Authorization header must be 'Bearer <token>'")]
    NotBearer,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token's tenant claim is not a valid tenant id")]
    BadTenant,
    #[error(
        "the token must name a tenant or carry the platform-operator role (and no tenant), not \
         both and not neither"
    )]
    NoIdentity,
}

/// Tolerated clock skew between the token's issuer and us, for `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `nbf` is optional, but honoured when present; clock skew gets the same leeway
        // either side (`exp` and `nbf`).
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A tenant's token.
    pub fn issue(&self, subject: &str, tenant: &str, scope: &str, ttl: Duration) -> String {
        self.issue_claims(&Claims {
            sub: subject.to_owned(),
            tenant: Some(tenant.to_owned()),
            role: None,
            scope: scope.to_owned(),
            exp: expiry(ttl),
            nbf: None,
        })
    }

    /// A platform operator's token (no tenant; the `platform-operator` role).
    pub fn issue_operator(&self, subject: &str, scope: &str, ttl: Duration) -> String {
        self.issue_claims(&Claims {
            sub: subject.to_owned(),
            tenant: None,
            role: Some(OPERATOR_ROLE.to_owned()),
            scope: scope.to_owned(),
            exp: expiry(ttl),
            nbf: None,
        })
    }

    pub fn issue_claims(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        match (claims.tenant, claims.role.as_deref()) {
            (Some(tenant), None) => {
                let tenant = TenantId::parse(&tenant).map_err(|_| AuthError::BadTenant)?;
                Ok(Identity::Tenant(Principal::new(
                    claims.sub,
                    tenant,
                    &claims.scope,
                )))
            }
            (None, Some(OPERATOR_ROLE)) => {
                Ok(Identity::Operator(Operator::new(claims.sub, &claims.scope)))
            }
            _ => Err(AuthError::NoIdentity),
        }
    }

    /// Verifies an `Authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim())
    }
}

/// Seconds since the Unix epoch, `ttl` from now.
fn expiry(ttl: Duration) -> u64 {
    SystemTime::now()
        .checked_add(ttl)
        .unwrap_or(SystemTime::now())
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_it_issued_verifies_with_its_claims() {
        let keys = JwtKeys::from_secret(SECRET);
        let token = keys.issue(
            "installer-7",
            "acme",
            "devices:write devices:read",
            Duration::from_secs(60),
        );
        let Identity::Tenant(principal) = keys
            .verify_header(Some(&format!("Bearer {token}")))
            .unwrap()
        else {
            panic!("a tenant's token")
        };
        assert_eq!(principal.subject, "installer-7");
        assert_eq!(principal.tenant.as_str(), "acme");
        assert!(principal.has(Scope::DevicesWrite) && principal.has(Scope::DevicesRead));
        assert!(!principal.has(Scope::Admin));
    }

    #[test]
    fn refuses_other_secrets_expired_tokens_and_bad_tenants() {
        let keys = JwtKeys::from_secret(SECRET);
        let other = JwtKeys::from_secret(b"another secret, also 32 bytes lo");
        let forged = other.issue("x", "acme", "admin", Duration::from_secs(60));
        assert!(matches!(keys.verify(&forged), Err(AuthError::Invalid)));
        let expired = keys.issue_claims(&Claims {
            sub: "x".into(),
            tenant: Some("acme".into()),
            role: None,
            scope: "admin".into(),
            exp: 1_000,
            nbf: None,
        });
        assert!(matches!(keys.verify(&expired), Err(AuthError::Expired)));
        let bad_tenant = keys.issue("x", "a.b", "admin", Duration::from_secs(60));
        assert!(matches!(
            keys.verify(&bad_tenant),
            Err(AuthError::BadTenant)
        ));
        assert!(matches!(
            keys.verify_header(Some("Basic abc")),
            Err(AuthError::NotBearer)
        ));
        assert!(matches!(keys.verify_header(None), Err(AuthError::Missing)));
    }

    #[test]
    fn honours_nbf_with_the_same_leeway_as_exp() {
        let keys = JwtKeys::from_secret(SECRET);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let with_nbf = |nbf| {
            keys.issue_claims(&Claims {
                sub: "x".into(),
                tenant: Some("acme".into()),
                role: None,
                scope: "devices:read".into(),
                exp: now + 3600,
                nbf: Some(nbf),
            })
        };
        assert!(matches!(
            keys.verify(&with_nbf(now + LEEWAY_SECONDS + 60)),
            Err(AuthError::NotYetValid)
        ));
        assert!(keys.verify(&with_nbf(now + LEEWAY_SECONDS / 2)).is_ok());
        assert!(keys.verify(&with_nbf(now - 60)).is_ok());
    }

    #[test]
    fn an_operator_token_names_no_tenant_and_a_token_is_one_or_the_other() {
        let keys = JwtKeys::from_secret(SECRET);
        let operator = keys.issue_operator("alice", "admin", Duration::from_secs(60));
        let Ok(Identity::Operator(alice)) = keys.verify(&operator) else {
            panic!("an operator's token")
        };
        assert_eq!(alice.subject, "alice");
        assert!(alice.has(Scope::Admin));
        let exp = expiry(Duration::from_secs(60));
        let both = keys.issue_claims(&Claims {
            sub: "mallory".into(),
            tenant: Some("acme".into()),
            role: Some(OPERATOR_ROLE.into()),
            scope: "admin".into(),
            exp,
            nbf: None,
        });
        assert!(matches!(keys.verify(&both), Err(AuthError::NoIdentity)));
        let neither = keys.issue_claims(&Claims {
            sub: "nobody".into(),
            tenant: None,
            role: None,
            scope: "admin".into(),
            exp,
            nbf: None,
        });
        assert!(matches!(keys.verify(&neither), Err(AuthError::NoIdentity)));
        let other_role = keys.issue_claims(&Claims {
            sub: "x".into(),
            tenant: None,
            role: Some("operator".into()),
            scope: "admin".into(),
            exp,
            nbf: None,
        });
        assert!(matches!(
            keys.verify(&other_role),
            Err(AuthError::NoIdentity)
        ));
    }
}
