//! `worker replay CONSUMER --from …`: one registered consumer gets the stream again from a
//! point (a time, or after a commit-order position), the others are not touched. Recorded in
//! the audit trail (`operator_actions`) before it runs. Needs the stream side of the
//! configuration only (`StreamAccess`), not the CA.

use std::time::Duration;

use crate::config::StreamAccess;
use crate::consumer_registry::{find, worker_consumers, Guarantee, UnknownConsumer};

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// The first stream sequence it delivers again (for a time start, the server decides).
    pub first_sequence: Option<u64>,
    pub guarantee: Guarantee,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    UnknownConsumer(#[from] UnknownConsumer),
    #[error(transparent)]
    Database(#[from] store::DatabaseUrlError),
    #[error(transparent)]
    Schema(#[from] store::schema::SchemaError),
    #[error("cannot record the operator action")]
    Record(#[from] app::StoreError),
    /// NATS, the stream or recreating the consumer.
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
}

/// Recreates consumer `name` to deliver from `start`, as `actor`.
pub async fn replay_consumer(
    access: &StreamAccess,
    name: &str,
    start: nats::ReplayStart,
    actor: &str,
) -> Result<ReplayReport, ReplayError> {
    let pool = store::connect(&access.database)?;
    let result = async {
        let definitions = worker_consumers(projections::projectors(&pool));
        let definition = find(&definitions, name)?;
        store::schema::ensure_current(&pool).await?;
        let target = format!("consumer:{name}");
        store::OperatorAction {
            actor,
            action: "replay",
            target: &target,
        }
        .record(&pool)
        .await?;
        let first_sequence = nats::replay_durable_consumer(
            &access.nats,
            &access.stream,
            name,
            definition.subjects.filter(&access.stream),
            &access.consumers,
            start,
        )
        .await?;
        Ok(ReplayReport {
            first_sequence,
            guarantee: definition.guarantee,
        })
    }
    .await;
    store::close(&pool, Duration::from_secs(5)).await;
    result
}
