//! Free-form key/value labels a fleet attaches to a device (site, batch, customer...).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a set of labels was refused; names the offending key so the client can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("at most {max} labels are allowed")]
    TooMany { max: usize },
    #[error("label key {key:?} must be 1 to 63 characters: lowercase ASCII letters, digits, '.', '_', '-' or '/', starting with a letter or digit")]
    InvalidKey { key: String },
    #[error(
        "label {key:?} has a value longer than 128 characters or containing control characters"
    )]
    InvalidValue { key: String },
}

/// At most 32 labels. Keys follow a Kubernetes-like alphabet so they can be used in query
/// filters and metrics without escaping; values are short free text.
///
/// Stored in a `BTreeMap` so that serialisation is ordered and two equal label sets always
/// produce the same bytes (request fingerprints and event payloads depend on that).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>, description = "Up to 32 labels. Keys: 1-63 characters of `a-z`, `0-9`, `.`, `_`, `/`, `-`, starting with a letter or digit; values: up to 128 characters, no control characters.", example = json!({"site": "berlin-1"})))]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub const MAX_LABELS: usize = 32;
    pub const MAX_KEY_LEN: usize = 63;
    pub const MAX_VALUE_CHARS: usize = 128;

    pub fn parse(raw: BTreeMap<String, String>) -> Result<Self, LabelError> {
        if raw.len() > Self::MAX_LABELS {
            return Err(LabelError::TooMany {
                max: Self::MAX_LABELS,
            });
        }
        for (key, value) in &raw {
            if !Self::is_valid_key(key) {
                return Err(LabelError::InvalidKey { key: key.clone() });
            }
            if value.chars().count() > Self::MAX_VALUE_CHARS || value.chars().any(char::is_control)
            {
                return Err(LabelError::InvalidValue { key: key.clone() });
            }
        }
        Ok(Self(raw))
    }

    fn is_valid_key(key: &str) -> bool {
        let mut bytes = key.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        first_ok
            && key.len() <= Self::MAX_KEY_LEN
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Labels as an event recorded it, not checked against today's rule (`parse`): it met
    /// the rule of its day, and a recorded fact is read as it was, never re-judged. For the
    /// event store's schema, which reads stored events; input goes through [`Self::parse`].
    pub fn recorded(labels: BTreeMap<String, String>) -> Self {
        Self(labels)
    }
}

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = LabelError;
    fn try_from(value: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(value: Labels) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_typical_labels() {
        let parsed = Labels::parse(labels(&[("site", "Lyon 3"), ("fleet.io/batch", "")])).unwrap();
        assert_eq!(parsed.iter().count(), 2);
    }

    #[test]
    fn names_the_key_that_is_wrong() {
        assert_eq!(
            Labels::parse(labels(&[("Site", "x")])),
            Err(LabelError::InvalidKey { key: "Site".into() })
        );
        assert_eq!(
            Labels::parse(labels(&[("site", "a\tb")])),
            Err(LabelError::InvalidValue { key: "site".into() })
        );
    }

    #[test]
    fn refuses_too_many_labels() {
        let many = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(Labels::parse(many), Err(LabelError::TooMany { max: 32 }));
    }
}
