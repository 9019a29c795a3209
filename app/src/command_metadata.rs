//! Who asked for a command: stored with every event the command appends (later readers need
//! the tenant, the actor, the request id and the trace context). The event store owns how it
//! is stored; nothing in it is an instruction to the store.

use domain::TenantId;

#[derive(Debug, Clone)]
pub struct CommandMetadata {
    pub tenant: TenantId,
    /// The token's `sub`, or the worker's name for internal commands.
    pub actor: String,
    /// The HTTP request id (or the message id for internal commands), for correlation.
    pub request_id: String,
    /// W3C trace context of the command, carried on to the events' NATS messages.
    pub traceparent: Option<String>,
}
