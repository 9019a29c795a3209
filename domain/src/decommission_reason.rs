//! Why an operator or fleet client decommissioned a device; kept for audit.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::InvalidValue;

/// 1 to 512 characters of free text, without control characters other than line breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 512, example = "retired"))]
#[serde(try_from = "String", into = "String")]
pub struct DecommissionReason(String);

impl DecommissionReason {
    pub const MAX_CHARS: usize = 512;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let chars = raw.chars().count();
        if raw.trim().is_empty() || chars > Self::MAX_CHARS {
            return Err(InvalidValue(format!(
                "must be 1 to {} characters and not blank",
                Self::MAX_CHARS
            )));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
        {
            return Err(InvalidValue("must not contain control characters".into()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A reason as an event recorded it, not checked against today's rule (`parse`): it met
    /// the rule of its day, and a recorded fact is read as it was, never re-judged. For the
    /// event store's schema, which reads stored events; input goes through [`Self::parse`].
    pub fn recorded(value: String) -> Self {
        Self(value)
    }
}

impl TryFrom<String> for DecommissionReason {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DecommissionReason> for String {
    fn from(value: DecommissionReason) -> Self {
        value.0
    }
}

impl fmt::Display for DecommissionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_multi_line_text_and_refuses_blank_or_huge() {
        assert!(DecommissionReason::parse("returned to vendor\nRMA 42").is_ok());
        assert!(DecommissionReason::parse("  ").is_err());
        assert!(DecommissionReason::parse("bell\u{7}").is_err());
        assert!(DecommissionReason::parse(&"r".repeat(513)).is_err());
    }
}
