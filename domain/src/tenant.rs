//! The tenant a device belongs to, as named by the `tenant` claim of the caller's token.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::InvalidValue;

/// A tenant identifier: 1 to 64 ASCII letters, digits, `-` or `_`.
///
/// The alphabet is deliberately narrow: the tenant becomes a token of NATS subjects
/// (`events.<tenant>.device.<type>`), where `.`, `*`, `>` and whitespace have meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$", description = "The tenant (from the token)."))]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidValue(format!(
                "tenant must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidValue(
                "tenant may contain only ASCII letters, digits, '-' and '_'".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A tenant as an event recorded it, not checked against today's rule (`parse`): it met
    /// the rule of its day, and a recorded fact is read as it was, never re-judged. For the
    /// event store's schema, which reads stored events; input goes through [`Self::parse`].
    pub fn recorded(value: String) -> Self {
        Self(value)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_subject_safe_names() {
        assert_eq!(
            TenantId::parse("acme-fleet_1").unwrap().as_str(),
            "acme-fleet_1"
        );
    }

    #[test]
    fn refuses_characters_that_break_nats_subjects() {
        for raw in ["", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(TenantId::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }
}
