//! What a CA is made as, chosen by the operator who creates a tenant's CAs (or inherited by a
//! rotation): the curve of its key, its subject's common name and how long its certificate
//! is valid. Parsed once at the edge; read back from events with `recorded`, unchecked.

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// The curve of a CA's key (ECDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CaKeyCurve {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
}

impl CaKeyCurve {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "P-256" => Ok(Self::P256),
            "P-384" => Ok(Self::P384),
            _ => Err(InvalidValue("a CA key's curve is P-256 or P-384".into())),
        }
    }
}

/// A CA certificate's subject common name: 1 to 64 characters (X.520's upper bound), no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaCommonName(String);

impl CaCommonName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let length = raw.chars().count();
        if (1..=64).contains(&length) && !raw.chars().any(char::is_control) && raw.trim() == raw {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(
                "a CA's common name is 1 to 64 characters, without control characters or \
                 surrounding spaces"
                    .into(),
            ))
        }
    }

    /// As an event recorded it.
    pub fn recorded(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a CA is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaSpec {
    pub curve: CaKeyCurve,
    pub common_name: CaCommonName,
    /// Days its certificate is valid, 1 to 36,500 (checked by [`CaSpec::validity_days`]).
    pub validity_days: u32,
}

impl CaSpec {
    /// The longest a CA certificate may be valid: 100 years.
    pub const MAX_VALIDITY_DAYS: u32 = 36_500;

    /// Checks `days` against the bounds of a CA certificate's validity.
    pub fn validity_days(days: u32) -> Result<u32, InvalidValue> {
        if (1..=Self::MAX_VALIDITY_DAYS).contains(&days) {
            Ok(days)
        } else {
            Err(InvalidValue(format!(
                "a CA certificate is valid for 1 to {} days",
                Self::MAX_VALIDITY_DAYS
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_curves_and_validities_are_parsed_once() {
        assert!(CaCommonName::parse("Acme Devices Root CA").is_ok());
        for refused in ["", " padded", "tab\there", &"x".repeat(65)] {
            assert!(CaCommonName::parse(refused).is_err(), "{refused:?}");
        }
        assert_eq!(CaKeyCurve::parse("P-384").unwrap(), CaKeyCurve::P384);
        assert!(CaKeyCurve::parse("Ed25519").is_err());
        assert!(CaSpec::validity_days(0).is_err());
        assert!(CaSpec::validity_days(36_501).is_err());
        assert_eq!(CaSpec::validity_days(3_650).unwrap(), 3_650);
    }
}
