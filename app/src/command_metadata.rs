//! Who asked for a command, and under which idempotency key: stored with every event the
//! command appends (later readers need the tenant, the actor and the request id; the store
//! derives the idempotency record from it).

use domain::TenantId;

use crate::{IdempotencyScope, RequestFingerprint};

#[derive(Debug, Clone)]
pub struct CommandMetadata {
    pub tenant: TenantId,
    /// The token's `sub`, or the worker's name for internal commands.
    pub actor: String,
    /// The HTTP request id (or the message id for internal commands), for correlation.
    pub request_id: String,
    /// W3C trace context of the command, carried on to the events' NATS messages.
    pub traceparent: Option<String>,
    pub idempotency: Option<IdempotencyClaim>,
}

/// The idempotency key a public command was sent with and the fingerprint of its body.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub fingerprint: RequestFingerprint,
}

impl CommandMetadata {
    /// Metadata keys are part of the stored event format (and the store derives idempotency
    /// records from them): rename none of them.
    pub fn to_map(&self) -> std::collections::HashMap<String, String> {
        let mut map = std::collections::HashMap::with_capacity(8);
        map.insert("tenant".to_owned(), self.tenant.as_str().to_owned());
        map.insert("actor".to_owned(), self.actor.clone());
        map.insert("request_id".to_owned(), self.request_id.clone());
        if let Some(traceparent) = &self.traceparent {
            map.insert("traceparent".to_owned(), traceparent.clone());
        }
        if let Some(claim) = &self.idempotency {
            map.insert(
                "idempotency_key".to_owned(),
                claim.scope.key.as_str().to_owned(),
            );
            map.insert("idempotency_route".to_owned(), claim.scope.route.clone());
            map.insert("request_fingerprint".to_owned(), claim.fingerprint.to_hex());
        }
        map
    }
}
