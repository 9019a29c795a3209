//! The CRL as the application sees it: what goes into one (the revoked, unexpired
//! certificates), a published one, and the ports that read revocations, sign a list and store
//! what was published. The DER encoding is the signer's (the CA adapter); storage is
//! Postgres's; nothing here knows either.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{CaRevocationReason, RevocationReason};

use super::IssuingCaId;
use crate::StoreError;

/// A revoked certificate as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// The certificate's serial number, lowercase hex of its bytes (as `IssuedCertificate`).
    pub serial: String,
    pub revoked_at: DateTime<Utc>,
    pub reason: CrlReason,
}

/// Why a CRL lists an entry: a device certificate's reason, or a CA's (a tenant root's CRL
/// lists its revoked issuing CAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlReason {
    Certificate(RevocationReason),
    Ca(CaRevocationReason),
}

impl From<RevocationReason> for CrlReason {
    fn from(reason: RevocationReason) -> Self {
        Self::Certificate(reason)
    }
}

/// What a CRL says, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationListContent {
    pub number: u64,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    /// Sorted by serial.
    pub entries: Vec<RevokedCertificate>,
}

/// A signed CRL as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCrl {
    pub ca: IssuingCaId,
    pub header: CrlHeader,
    /// Shared, not copied: a CRL of a million entries is about 50 MB, and the api answers
    /// every fetch with the same bytes.
    pub der: std::sync::Arc<[u8]>,
}

/// What is known of a published CRL without its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlHeader {
    pub number: u64,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    /// How many revocations had been recorded (ever, expired certificates included) when it
    /// was made: a larger count now means the list changed.
    pub revocations_seen: u64,
    pub entries: u64,
}

/// Where revocations are read from (the `certificate_status` read model).
#[async_trait]
pub trait Revocations: Send + Sync {
    /// Every revocation ever recorded. Only grows: a revocation is final.
    async fn count(&self) -> Result<u64, StoreError>;

    /// The revoked certificates that have not expired at `at`, sorted by serial (an expired
    /// certificate may leave the CRL, RFC 5280 §3.3, which keeps its size bounded by the live
    /// population rather than by history).
    async fn unexpired_at(&self, at: DateTime<Utc>) -> Result<Vec<RevokedCertificate>, StoreError>;
}

/// Signs a CRL with a CA's key. CPU-bound: call it off the async runtime.
pub trait CrlSigner: Send + Sync {
    fn ca(&self) -> &IssuingCaId;

    fn sign_crl(&self, content: &RevocationListContent) -> Result<Vec<u8>, CrlSigningError>;
}

#[derive(Debug, thiserror::Error)]
#[error("the CA cannot sign the CRL")]
pub struct CrlSigningError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The published CRLs, one current per CA.
#[async_trait]
pub trait CrlRepository: Send + Sync {
    async fn current_header(&self, ca: &IssuingCaId) -> Result<Option<CrlHeader>, StoreError>;

    async fn current(&self, ca: &IssuingCaId) -> Result<Option<PublishedCrl>, StoreError>;

    /// Stores `crl` as the current one if the current one is still `replacing` (`None`: there
    /// is none); `false` when another publisher got there first (its CRL stands, ours is
    /// dropped), which keeps CRL numbers strictly increasing across processes.
    async fn publish(&self, crl: &PublishedCrl, replacing: Option<u64>)
        -> Result<bool, StoreError>;
}
