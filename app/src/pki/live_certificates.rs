//! How many live certificates (issued, not revoked, not expired) each CA still has, as the
//! `certificate_status` read model counts them: what operators watch while a fleet moves to a
//! new issuing CA (devices renewing), and when a rotated-out CA has nothing left. A read
//! model: it trails the events, and decides nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::IssuingCaId;
use crate::StoreError;

#[async_trait]
pub trait LiveCertificates: Send + Sync + 'static {
    /// The live certificates of each of `issuers` at `at` (a CA with none is absent).
    async fn live_by_issuer(
        &self,
        issuers: &[IssuingCaId],
        at: DateTime<Utc>,
    ) -> Result<HashMap<IssuingCaId, u64>, StoreError>;
}
