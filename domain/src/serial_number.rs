//! A device's serial number, unique within its tenant.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::InvalidValue;

/// 1 to 64 characters: ASCII letters and digits, plus `-`, `_`, `.` and `:` after the first
/// character. Case is significant and nothing is normalised: the serial is compared verbatim
/// with the certificate request's subject CN by the provisioner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]*$", example = "SN-000123"))]
#[serde(try_from = "String", into = "String")]
pub struct SerialNumber(String);

impl SerialNumber {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidValue(format!(
                "must be 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        let mut bytes = raw.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !first_ok || !rest_ok {
            return Err(InvalidValue(
                "must start with a letter or digit and contain only ASCII letters, digits, '-', '_', '.' and ':'".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A serial number as an event recorded it, not checked against today's rule (`parse`): it met
    /// the rule of its day, and a recorded fact is read as it was, never re-judged. For the
    /// event store's schema, which reads stored events; input goes through [`Self::parse`].
    pub fn recorded(value: String) -> Self {
        Self(value)
    }
}

impl TryFrom<String> for SerialNumber {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SerialNumber> for String {
    fn from(value: SerialNumber) -> Self {
        value.0
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_factory_style_serials() {
        for raw in ["SN-0001", "a", "00:1A:2B:3C:4D:5E", "lot_7.unit-12"] {
            assert!(
                SerialNumber::parse(raw).is_ok(),
                "{raw:?} should be accepted"
            );
        }
    }

    #[test]
    fn refuses_empty_long_and_odd_serials() {
        for raw in [
            "",
            "-leading",
            ".x",
            "has space",
            "slash/y",
            "é",
            &"9".repeat(65),
        ] {
            assert!(
                SerialNumber::parse(raw).is_err(),
                "{raw:?} should be refused"
            );
        }
    }
}
