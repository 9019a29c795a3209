//! `worker replay CONSUMER --from …`: one registered consumer gets the stream again from a
//! point (a time, or after a commit-order position), the others are not touched. Recorded in
//! the audit trail (`operator_actions`) before it runs. Needs the stream side of the
//! configuration only (`StreamAccess`), not the CA.

use std::time::Duration;

use async_nats::jetstream;

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
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    #[error("stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("cannot recreate consumer {consumer}")]
    Recreate {
        consumer: String,
        #[source]
        source: async_nats::Error,
    },
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
        let client = nats::connect(&access.nats).await?;
        let js = jetstream::new(client.clone());
        let replayed = async {
            let mut stream =
                js.get_stream(&access.stream.name)
                    .await
                    .map_err(|e| ReplayError::Stream {
                        stream: access.stream.name.clone(),
                        source: e.into(),
                    })?;
            nats::replay_consumer(
                &mut stream,
                name,
                definition.subjects.filter(&access.stream),
                &access.consumers,
                start,
            )
            .await
            .map_err(|source| ReplayError::Recreate {
                consumer: name.to_owned(),
                source,
            })
        }
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), client.drain()).await;
        Ok(ReplayReport {
            first_sequence: replayed?,
            guarantee: definition.guarantee,
        })
    }
    .await;
    store::close(&pool, Duration::from_secs(5)).await;
    result
}
