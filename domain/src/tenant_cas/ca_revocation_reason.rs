//! Why a CA was revoked: RFC 5280's reason codes (§5.3.1) that apply to a CA, as its issuer's
//! CRL and OCSP answers carry them.

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum CaRevocationReason {
    Unspecified,
    /// Its key is, or may be, in someone else's hands.
    #[serde(rename = "cACompromise")]
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl CaRevocationReason {
    const ALL: [Self; 5] = [
        Self::Unspecified,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
    ];

    /// The name RFC 5280 gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
        }
    }

    /// Its `CRLReason` code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
        }
    }

    /// The reason RFC 5280 names `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "a CA's revocation reason is one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                ))
            })
    }
}
