//! How a command's metadata is stored in `events.metadata`, with every event the command
//! appends. A stored format: the `tenant` generated column (migrations) and the event readers
//! (`recorded_event_row.rs`: `traceparent`) read these keys back, so rename none of them.
//!
//! Nothing here is an instruction to the store: the idempotency record is written from the
//! append's claim, as values, never picked out of this JSON.

use app::{CommandMetadata, IdempotencyClaim};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct EventMetadata<'a> {
    tenant: &'a str,
    actor: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<&'a str>,
    /// The key a public command was sent under: provenance for whoever reads the stored
    /// events (which request asked for this), like `request_id`. The route and the request
    /// fingerprint are not stored here: only the idempotency record needs them.
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
}

impl<'a> EventMetadata<'a> {
    pub(crate) fn of(metadata: &'a CommandMetadata, claim: Option<&'a IdempotencyClaim>) -> Self {
        Self {
            tenant: metadata.tenant.as_str(),
            actor: &metadata.actor,
            request_id: &metadata.request_id,
            traceparent: metadata.traceparent.as_deref(),
            idempotency_key: claim.map(|c| c.scope.key.as_str()),
        }
    }
}
