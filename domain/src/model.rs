//! The hardware model a device claims to be.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::InvalidValue;

/// 1 to 64 characters without control characters and without leading or trailing
/// whitespace (so that `"X1"` and `"X1 "` cannot become two models in reports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, example = "gateway-x2"))]
#[serde(try_from = "String", into = "String")]
pub struct DeviceModel(String);

impl DeviceModel {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(InvalidValue(format!(
                "must be 1 to {} characters",
                Self::MAX_CHARS
            )));
        }
        if raw.trim() != raw {
            return Err(InvalidValue("must not start or end with whitespace".into()));
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidValue("must not contain control characters".into()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A model as an event recorded it, not checked against today's rule (`parse`): it met
    /// the rule of its day, and a recorded fact is read as it was, never re-judged. For the
    /// event store's schema, which reads stored events; input goes through [`Self::parse`].
    pub fn recorded(value: String) -> Self {
        Self(value)
    }
}

impl TryFrom<String> for DeviceModel {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DeviceModel> for String {
    fn from(value: DeviceModel) -> Self {
        value.0
    }
}

impl fmt::Display for DeviceModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_with_inner_spaces_and_unicode() {
        assert!(DeviceModel::parse("Gateway X1 (rév. 2)").is_ok());
    }

    #[test]
    fn refuses_blank_padded_and_control_characters() {
        for raw in ["", " X1", "X1 ", "X\n1", &"m".repeat(65)] {
            assert!(
                DeviceModel::parse(raw).is_err(),
                "{raw:?} should be refused"
            );
        }
    }
}
