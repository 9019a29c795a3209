//! Port: where idempotency records are read. They are *written* by the event store, atomically
//! with the command's events, from the append's `IdempotencyClaim` (see `Append`).

use async_trait::async_trait;

use crate::{IdempotencyScope, RequestFingerprint, StoreError};

/// What a key was first used for, and what it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: RequestFingerprint,
    /// The id of the aggregate the original command went to, as stored (its `Display`).
    pub aggregate_id: String,
    /// The aggregate version the original command produced.
    pub version: u64,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    async fn find(&self, scope: &IdempotencyScope)
        -> Result<Option<IdempotencyRecord>, StoreError>;
}
