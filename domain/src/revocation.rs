//! Why a certificate was revoked: RFC 5280's CRL reason codes (§5.3.1), named as the RFC
//! spells them, and the revocation a `CertificateRevoked` event records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// The reasons a device's certificate may be revoked for. `cACompromise`, `aACompromise`,
/// `certificateHold` and `removeFromCRL` are the CA's own affairs (a hold could be lifted,
/// and a revocation here is final), so no command can give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    /// A newer certificate replaced it (a renewal does this by itself).
    Superseded,
    /// The device is out of service (a decommission does this by itself).
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    const ALL: [Self; 6] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The name RFC 5280 gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Its `CRLReason` code (RFC 5280 §5.3.1), as CRLs and OCSP responses carry it.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// The reason RFC 5280 names `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue(
                    "must be one of unspecified, keyCompromise, affiliationChanged, superseded, \
                     cessationOfOperation, privilegeWithdrawn (RFC 5280 reason codes)"
                        .into(),
                )
            })
    }
}

/// A certificate's revocation: which serial, why, and from when it is no longer trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revocation {
    /// The revoked certificate's serial number, lowercase hex.
    pub serial: String,
    pub reason: RevocationReason,
    pub revoked_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_and_numbered_as_rfc_5280_says() {
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(reason.as_str()), Ok(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        assert_eq!(RevocationReason::KeyCompromise.code(), 1);
        assert_eq!(RevocationReason::CessationOfOperation.code(), 5);
        assert!(RevocationReason::parse("certificateHold").is_err());
        assert!(RevocationReason::parse("key_compromise").is_err());
    }
}
