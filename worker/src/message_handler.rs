//! What every worker consumer's handler provides, so that one registry can run them all
//! (`consumer_registry`): consuming live from JetStream, handling one stored message again
//! (a dead letter's retry), and any preparation before consuming.
//!
//! A handler decides nothing the domain decides: it calls `app` services or the projections.

use app::{EventEnvelope, ProvisioningError};
use async_nats::jetstream::consumer::{pull, Consumer};
use async_trait::async_trait;
use projections::ProjectionError;
use tokio_util::sync::CancellationToken;

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
pub trait MessageHandler: Send + Sync + 'static {
    /// Work before consuming, such as a read model filling itself from the event store; returns
    /// early when `cancel` fires.
    async fn prepare(&self, _cancel: &CancellationToken) {}

    /// Consumes from `consumer` until the worker is cancelled (its intake then stops) or the
    /// message stream fails; settles every message it took before returning.
    async fn consume(&self, consumer: Consumer<pull::Config>) -> Result<(), async_nats::Error>;

    /// Handles one message again, outside the stream (a dead letter an operator retries), as
    /// the live loop would: as idempotent, with the same facts read from Postgres.
    async fn handle_again(&self, envelope: &EventEnvelope) -> Result<(), HandlingError>;
}
