//! The value types of idempotent requests: the client's key, the scope it is valid in, the
//! fingerprint of the request it was first used with, and the claim a command makes on it.

use domain::TenantId;
use sha2::{Digest, Sha256};

/// A client-chosen key: 1 to 255 printable ASCII characters (the HTTP layer has already
/// removed the structured-field quoting).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(format!("must be 1 to {} characters", Self::MAX_LEN));
        }
        if !raw.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("must contain only printable ASCII characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keys are scoped by (tenant, route, key): two tenants, or two routes, may use the same
/// key without meeting. `route` is the method and the concrete path
/// (`POST /v1/devices/{id}/decommission` with the id filled in), so a key reused on
/// another device is a different request, not a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub tenant: TenantId,
    pub route: String,
    pub key: IdempotencyKey,
}

/// The idempotency key a public command was sent with and the fingerprint of its body: the
/// event store records it with the command's events, in the same transaction.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub fingerprint: RequestFingerprint,
}

/// SHA-256 of the canonical request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFingerprint([u8; 32]);

impl RequestFingerprint {
    /// `canonical_body` must not depend on how the client formatted its JSON (key order,
    /// whitespace): the HTTP layer passes the parsed request re-serialised.
    pub fn of(canonical_body: &[u8]) -> Self {
        Self(Sha256::digest(canonical_body).into())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(raw: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(raw, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("3f1c9e2a-retry-1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("clé").is_err());
    }

    #[test]
    fn fingerprints_round_trip_through_hex() {
        let fp = RequestFingerprint::of(b"{}");
        assert_eq!(RequestFingerprint::from_hex(&fp.to_hex()), Some(fp));
        assert_ne!(RequestFingerprint::of(b"{}"), RequestFingerprint::of(b"[]"));
    }
}
