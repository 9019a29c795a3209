//! `app::DeviceEventStore` on Postgres, through cqrs-es's persisted event store over the
//! postgres-es table layout (one `events` table, optimistic concurrency on the primary key
//! (aggregate type, aggregate id, sequence)).

use async_trait::async_trait;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use domain::{Device, DeviceCommand, DeviceError, DeviceEvent, DeviceId};
use sqlx::PgPool;

use app::{Applied, CommandMetadata, DeviceEventStore, History, StoreError};

use crate::append_notifier::AppendNotifier;
use crate::single_statement_event_repository::SingleStatementEventRepository;

/// Reads a device's events up to a version, oldest first.
const SELECT_DEVICE_EVENTS_UP_TO: &str = "
SELECT payload FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3
 ORDER BY sequence";

pub struct PostgresDeviceStore {
    events: PersistedEventStore<SingleStatementEventRepository, Device>,
    pool: PgPool,
    notifier: AppendNotifier,
}

impl PostgresDeviceStore {
    /// Must be called within a Tokio runtime: it starts the [`AppendNotifier`] task.
    pub fn new(pool: PgPool) -> Self {
        Self {
            events: PersistedEventStore::new_event_store(SingleStatementEventRepository::new(
                pool.clone(),
            )),
            notifier: AppendNotifier::spawn(pool.clone()),
            pool,
        }
    }
}

#[async_trait]
impl DeviceEventStore for PostgresDeviceStore {
    async fn execute(
        &self,
        id: DeviceId,
        command: DeviceCommand,
        metadata: &CommandMetadata,
        history: History,
    ) -> Result<Result<Applied, DeviceError>, StoreError> {
        let mut context = match history {
            History::Load => self
                .events
                .load_aggregate(&id.to_string())
                .await
                .map_err(store_error)?,
            // The context an empty device loads as; the append at sequence 1 checks the bet.
            History::AssumeNone => EventStoreAggregateContext {
                aggregate_id: id.to_string(),
                aggregate: Device::default(),
                current_sequence: 0,
                current_snapshot: None,
            },
        };
        let events = match context.aggregate.decide(command) {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        // Fold the new events into our copy first: the status we answer with is the state
        // right after them, and `commit` consumes the context.
        for event in &events {
            context.aggregate.apply(event.clone());
        }
        let status = context
            .aggregate
            .status()
            .expect("a device that accepted a command is registered");
        let previous_version = context.current_sequence as u64;
        let events_appended = events.len();
        if events_appended == 0 {
            return Ok(Ok(Applied {
                version: previous_version,
                status,
                events_appended,
            }));
        }
        let committed = self
            .events
            .commit(events, context, metadata.to_map())
            .await
            .map_err(store_error)?;
        self.notifier.appended();
        let version = committed
            .last()
            .map_or(previous_version, |e| e.sequence as u64);
        Ok(Ok(Applied {
            version,
            status,
            events_appended,
        }))
    }

    async fn device_at(&self, id: DeviceId, version: u64) -> Result<Device, StoreError> {
        let payloads: Vec<serde_json::Value> = sqlx::query_scalar(SELECT_DEVICE_EVENTS_UP_TO)
            .bind(Device::TYPE)
            .bind(id.to_string())
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        let mut device = Device::default();
        for payload in payloads {
            let event: DeviceEvent =
                serde_json::from_value(payload).map_err(|e| StoreError::Corrupt(e.into()))?;
            device.apply(event);
        }
        Ok(device)
    }
}

fn store_error(err: AggregateError<DeviceError>) -> StoreError {
    match err {
        AggregateError::AggregateConflict => StoreError::Conflict,
        AggregateError::DeserializationError(e) => StoreError::Corrupt(e),
        AggregateError::DatabaseConnectionError(e) | AggregateError::UnexpectedError(e) => {
            StoreError::Unavailable(e)
        }
        // Only `Aggregate::handle` produces user errors, and we call `decide` directly.
        AggregateError::UserError(e) => StoreError::Corrupt(e.into()),
    }
}
