//! What every worker consumer's handler provides, so that one registry can run them all
//! (`consumer_registry`): handling live events as a JetStream consumer's handler
//! ([`nats::EventHandler`]: its pace, any preparation, decoded events in, an outcome out; the
//! messages themselves are `nats`'s), and handling one stored message again (a dead letter's
//! retry).
//!
//! A handler decides nothing the domain decides: it calls `app` services or the projections.

use app::{EventEnvelope, ProvisioningError};
use async_trait::async_trait;
use projections::ProjectionError;

/// Why handling a message failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlingError {
    #[error("not an event envelope: {0}")]
    NotAnEnvelope(#[from] serde_json::Error),
    #[error(transparent)]
    Provisioning(#[from] ProvisioningError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

#[async_trait]
pub trait ConsumerHandler: nats::EventHandler {
    /// Handles one message again, outside the stream (a dead letter an operator retries), as
    /// the live loop would: as idempotent, with the same facts read from Postgres.
    async fn handle_again(&self, envelope: &EventEnvelope) -> Result<(), HandlingError>;
}
