//! JWTs verified on every request: HS256 with `AUTH_JWT_SECRET` (local use; `api token` issues
//! them), and ES256 or RS256 with the public keys of a JWKS (`AUTH_JWKS_PATH` or
//! `AUTH_JWKS_URL`, `jwks_url.rs`: an identity provider's keys), `iss` and `aud` checked when
//! configured. A token's `alg` must be the one
//! its key is for (from the JWK's `alg`, else its key type): no algorithm confusion.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::TenantId;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
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
    #[error("the token's issuer (iss) is not the one this service trusts")]
    WrongIssuer,
    #[error("the token is not for this service (aud)")]
    WrongAudience,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token's tenant claim is not a valid tenant id")]
    BadTenant,
    #[error(
        "the token's sub claim must be 1 to {max} characters without control characters",
        max = MAX_SUBJECT_CHARS
    )]
    BadSubject,
    #[error(
        "the token must name a tenant or carry the platform-operator role (and no tenant), not \
         both and not neither"
    )]
    NoIdentity,
}

/// The longest `sub` accepted, in characters (OpenID Connect's limit for a subject).
pub const MAX_SUBJECT_CHARS: usize = 255;

/// Whether `sub` can name the actor recorded with every event a token's commands append (and
/// every operator action it takes): 1 to [`MAX_SUBJECT_CHARS`] characters, none a control
/// character. A U+0000 in particular is a value the event store cannot hold.
fn is_valid_subject(sub: &str) -> bool {
    !sub.is_empty()
        && sub.chars().count() <= MAX_SUBJECT_CHARS
        && !sub.chars().any(char::is_control)
}

/// Tolerated clock skew between the token's issuer and us, for `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;

pub struct JwtKeys {
    /// HS256 (`AUTH_JWT_SECRET`); `None`: only the JWKS's keys are accepted.
    shared_secret: Option<SharedSecret>,
    /// The JWKS's keys by `kid`, each with the one algorithm it verifies; replaced whole when
    /// a JWKS is fetched again ([`JwtKeys::replace_jwks`]).
    public_keys: RwLock<Arc<PublicKeys>>,
    /// Woken when a token names a `kid` we do not hold (the provider may have rotated keys).
    unknown_key: Arc<tokio::sync::Notify>,
    issuer: Option<String>,
    audience: Option<String>,
}

type PublicKeys = HashMap<String, (Algorithm, DecodingKey)>;

/// The HS256 secret, to sign (`api token`, tests) and to verify.
struct SharedSecret {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Why a JWKS cannot be used. Names the key; a JWKS holds no secrets.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS: {0}")]
    NotAJwks(String),
    #[error("key {0:?}: has no `kid` (tokens name their key by it)")]
    NoKeyId(usize),
    #[error("key {kid:?}: {reason}")]
    Unusable { kid: String, reason: String },
    #[error("the JWKS holds no ES256 or RS256 key")]
    Empty,
    #[error("fetching the JWKS: {0}")]
    Fetch(String),
}

impl JwtKeys {
    /// HS256 with `secret`, which also signs what [`JwtKeys::issue`] makes.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            shared_secret: Some(SharedSecret {
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
            }),
            public_keys: RwLock::default(),
            unknown_key: Arc::default(),
            issuer: None,
            audience: None,
        }
    }

    /// Only the keys of `jwks` (no HS256).
    pub fn from_jwks(jwks: &str) -> Result<Self, JwksError> {
        Ok(Self {
            shared_secret: None,
            public_keys: RwLock::new(Arc::new(public_keys(jwks)?)),
            unknown_key: Arc::default(),
            issuer: None,
            audience: None,
        })
    }

    /// The keys of `jwks` as well as HS256.
    pub fn with_jwks(self, jwks: &str) -> Result<Self, JwksError> {
        Ok(Self {
            public_keys: RwLock::new(Arc::new(public_keys(jwks)?)),
            ..self
        })
    }

    /// Serves the keys of `jwks` from now on, in place of the previous ones; on an error the
    /// previous ones stay.
    pub fn replace_jwks(&self, jwks: &str) -> Result<(), JwksError> {
        let keys = Arc::new(public_keys(jwks)?);
        *self.public_keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// Resolves once a token has named a `kid` the JWKS does not hold.
    pub async fn unknown_key_seen(&self) {
        self.unknown_key.notified().await;
    }

    /// Tokens must carry this `iss`.
    pub fn with_issuer(self, issuer: String) -> Self {
        Self {
            issuer: Some(issuer),
            ..self
        }
    }

    /// Tokens must name this audience in `aud`.
    pub fn with_audience(self, audience: String) -> Self {
        Self {
            audience: Some(audience),
            ..self
        }
    }

    /// How tokens signed with `algorithm` are checked.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `nbf` is optional, but honoured when present; clock skew gets the same leeway
        // either side (`exp` and `nbf`).
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }

    /// `verify` applied to the key a token names (by its header), if it is one of ours for
    /// that algorithm.
    fn with_key<R>(&self, header: &Header, verify: impl FnOnce(&DecodingKey) -> R) -> Option<R> {
        match header.alg {
            Algorithm::HS256 => self.shared_secret.as_ref().map(|s| verify(&s.decoding)),
            Algorithm::ES256 | Algorithm::RS256 => {
                let keys = self
                    .public_keys
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let (algorithm, key) = match &header.kid {
                    Some(kid) => match keys.get(kid) {
                        Some(found) => found,
                        None => {
                            self.unknown_key.notify_one();
                            return None;
                        }
                    },
                    // No `kid`: only unambiguous if one key is for that algorithm.
                    None => {
                        let mut candidates = keys.values().filter(|(a, _)| *a == header.alg);
                        let only = candidates.next()?;
                        if candidates.next().is_some() {
                            return None;
                        }
                        only
                    }
                };
                (*algorithm == header.alg).then(|| verify(key))
            }
            _ => None,
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

    /// An HS256 token. Only keys made with [`JwtKeys::from_secret`] issue tokens (the
    /// identity provider issues the JWKS's).
    pub fn issue_claims(&self, claims: &Claims) -> String {
        let secret = self
            .shared_secret
            .as_ref()
            .expect("tokens are issued with the HS256 secret (JwtKeys::from_secret)");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &secret.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let validation = self.validation(header.alg);
        let data = self
            .with_key(&header, |key| {
                jsonwebtoken::decode::<Claims>(token, key, &validation)
            })
            .ok_or(AuthError::Invalid)?
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => AuthError::WrongAudience,
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        if !is_valid_subject(&claims.sub) {
            return Err(AuthError::BadSubject);
        }
        match (claims.tenant, claims.role.as_deref()) {
            (Some(tenant), None) => {
                let tenant = TenantId::parse(&tenant).map_err(|_| AuthError::BadTenant)?;
                // Refused from the second after `exp` + the leeway on (the check above
                // refuses `exp < now - leeway`, `now` in whole seconds).
                let token_expires =
                    UNIX_EPOCH + Duration::from_secs(claims.exp.saturating_add(LEEWAY_SECONDS + 1));
                Ok(Identity::Tenant(Principal::new(
                    claims.sub,
                    tenant,
                    &claims.scope,
                    token_expires,
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

/// The ES256 and RS256 keys of a JWKS, by `kid`. Keys for other uses (`use` other than `sig`)
/// or other algorithms are left out; a key that claims ES256 or RS256 but cannot serve is an
/// error, not skipped.
fn public_keys(jwks: &str) -> Result<HashMap<String, (Algorithm, DecodingKey)>, JwksError> {
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| JwksError::NotAJwks(e.to_string()))?;
    let mut keys = HashMap::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        if matches!(
            jwk.common.public_key_use,
            Some(ref key_use) if *key_use != jsonwebtoken::jwk::PublicKeyUse::Signature
        ) {
            continue;
        }
        let algorithm = match (jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
            (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
            (Some(_), _) => continue,
            (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (None, _) => continue,
        };
        let kid = jwk.common.key_id.clone().ok_or(JwksError::NoKeyId(index))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| JwksError::Unusable {
            kid: kid.clone(),
            reason: e.to_string(),
        })?;
        keys.insert(kid, (algorithm, key));
    }
    if keys.is_empty() {
        return Err(JwksError::Empty);
    }
    Ok(keys)
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
        // Accepted for its 60 s and the leeway: what it holds open ends then.
        let remaining = principal.token_remaining();
        assert!(
            remaining > Duration::from_secs(60 + LEEWAY_SECONDS - 2)
                && remaining <= Duration::from_secs(60 + LEEWAY_SECONDS + 1),
            "{remaining:?}"
        );
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
