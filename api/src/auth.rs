//! Who is calling, and what they may do.

mod jwt_keys;
mod principal;

pub use jwt_keys::{AuthError, Claims, JwksError, JwtKeys, OPERATOR_ROLE};
pub use principal::{Identity, Operator, Principal, Scope};
