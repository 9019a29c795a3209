//! Who is calling, and what they may do.

mod jwks_url;
mod jwt_keys;
mod principal;

pub use jwks_url::{JwksUrl, FETCH_TIMEOUT};
pub use jwt_keys::{AuthError, Claims, JwksError, JwtKeys, LEEWAY_SECONDS, OPERATOR_ROLE};
pub use principal::{Identity, Operator, Principal, Scope};
