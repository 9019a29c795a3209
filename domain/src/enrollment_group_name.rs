//! An enrollment group's name: unique across the service, and the label of its EST URLs
//! (`/.well-known/est/<name>/simpleenroll`, RFC 7030 §3.2.2), so it must be a path segment
//! that cannot be read as one of EST's operations.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::InvalidValue;

/// 1 to 63 characters: lowercase ASCII letters, digits and `-`, starting with a letter or a
/// digit; never the name of an EST operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$", example = "factory-line-7"))]
#[serde(try_from = "String", into = "String")]
pub struct EnrollmentGroupName(String);

impl EnrollmentGroupName {
    pub const MAX_LEN: usize = 63;

    /// The operations RFC 7030 defines, which a label must not shadow.
    const EST_OPERATIONS: [&'static str; 6] = [
        "cacerts",
        "simpleenroll",
        "simplereenroll",
        "csrattrs",
        "fullcmc",
        "serverkeygen",
    ];

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidValue(format!(
                "must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        let mut bytes = raw.bytes();
        let lower_or_digit = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let first_ok = bytes.next().is_some_and(lower_or_digit);
        if !first_ok || !bytes.all(|b| lower_or_digit(b) || b == b'-') {
            return Err(InvalidValue(
                "must start with a lowercase letter or digit and contain only lowercase ASCII letters, digits and '-'".into(),
            ));
        }
        if Self::EST_OPERATIONS.contains(&raw) {
            return Err(InvalidValue(format!(
                "must not be the name of an EST operation ({})",
                Self::EST_OPERATIONS.join(", ")
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnrollmentGroupName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EnrollmentGroupName> for String {
    fn from(value: EnrollmentGroupName) -> Self {
        value.0
    }
}

impl fmt::Display for EnrollmentGroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_path_segment_names() {
        for name in ["factory-7", "a", "0line", &"x".repeat(63)] {
            assert_eq!(EnrollmentGroupName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_names_that_are_not_a_plain_label() {
        for name in ["", "-x", "Upper", "a/b", "a.b", "a b", &"x".repeat(64)] {
            assert!(EnrollmentGroupName::parse(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn refuses_the_names_of_est_operations() {
        let err = EnrollmentGroupName::parse("simpleenroll").unwrap_err();
        assert!(err.0.contains("EST operation"), "{}", err.0);
    }
}
