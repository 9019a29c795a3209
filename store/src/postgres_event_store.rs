//! `app::EventStore` on Postgres, for every aggregate with a stored schema
//! (`stored_events::EventSchema`; `Device` is the first): loads an aggregate's events and
//! appends new ones, in the postgres-es table layout (one `events` table, optimistic
//! concurrency on its primary key (aggregate type, aggregate id, sequence)). No domain
//! decision is made here: the application runs the aggregate and hands over the events it
//! produced.
//!
//! One store for all aggregates: a [`PostgresEventStore<A>`] is the store as one aggregate's
//! events (its port, `EventStore<A>`); [`PostgresEventStore::of`] gives another aggregate's
//! view of the same store, so their appends share its group commit (one statement may carry a
//! device's events and another aggregate's), the idempotency records and the commit order. Events are written
//! and read back through the aggregate's stored schema (`stored_events`), never through the
//! domain's serde.
//!
//! Two statements, both ours. Why not cqrs-es's `PersistedEventStore` over a postgres-es
//! repository, as before: its append takes the command's metadata as a string map and nothing
//! else, so the idempotency claim had to ride in the events' metadata for the SQL to pick out;
//! it cannot load an aggregate as it was at a version (replays need that); and postgres-es's
//! own `persist` costs three round trips (`BEGIN; INSERT …; COMMIT`). What we kept is what
//! serves: aggregates are cqrs-es `Aggregate`s, and the table is postgres-es's.
//!
//! Appends go through group commit (`group_commit`): commands that arrive together share one
//! statement (`append_statement`: their events and idempotency records) and one transaction,
//! each with its own outcome. A sequence another writer took, or a key another command
//! recorded, violates a primary key, so nothing of that append is written; the violated
//! constraint says which outcome it was.

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use app::{Append, AppendOutcome, EventStore, Loaded, StoreError};

use crate::append_notifier::AppendNotifier;
use crate::append_statement::EncodedAppend;
use crate::group_commit::{GroupCommit, GroupCommitSettings};
use crate::stored_events::{EventSchema, StoredEventRef, UnreadableEvent};

/// Every aggregate of a type and its version (served by the primary key's index).
const SELECT_VERSIONS: &str = "
SELECT aggregate_id, max(sequence) AS version FROM events
 WHERE aggregate_type = $1
 GROUP BY aggregate_id";

/// An aggregate's events up to a version, oldest first.
const SELECT_EVENTS_UP_TO: &str = "
SELECT sequence, event_type, event_version, payload::text AS payload FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3
 ORDER BY sequence";

pub struct PostgresEventStore<A> {
    pool: PgPool,
    commits: GroupCommit,
    /// Only which aggregate's events this view loads and appends (`fn() -> A`: holding no
    /// `A`, it is `Send` and `Sync` whatever `A` is).
    aggregate: PhantomData<fn() -> A>,
}

impl<A: EventSchema> PostgresEventStore<A> {
    /// With the default group commit. Must be called within a Tokio runtime: it starts the
    /// committers and the [`AppendNotifier`] task.
    pub fn new(pool: PgPool) -> Self {
        Self::with_group_commit(pool, GroupCommitSettings::default())
    }

    pub fn with_group_commit(pool: PgPool, settings: GroupCommitSettings) -> Self {
        let notifier = AppendNotifier::spawn(pool.clone());
        Self {
            commits: GroupCommit::spawn(pool.clone(), notifier, settings),
            pool,
            aggregate: PhantomData,
        }
    }

    /// Aggregate `B`'s events in the same store: appends of both go through one group commit.
    pub fn of<B: EventSchema>(&self) -> PostgresEventStore<B> {
        PostgresEventStore {
            pool: self.pool.clone(),
            commits: self.commits.clone(),
            aggregate: PhantomData,
        }
    }

    async fn load_up_to(&self, id: A::Id, version: u64) -> Result<Loaded<A>, StoreError> {
        let id = id.to_string();
        let rows = sqlx::query(SELECT_EVENTS_UP_TO)
            .bind(A::TYPE)
            .bind(&id)
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut loaded = Loaded::<A>::without_events();
        for row in &rows {
            let (sequence, event) = decode::<A>(&id, row)?;
            loaded.aggregate.apply(event);
            loaded.version = sequence;
        }
        Ok(loaded)
    }
}

impl<A: EventSchema> PostgresEventStore<A> {
    /// Every aggregate of this type and its version. For aggregates there are few of (a
    /// tenant's CAs), not devices.
    pub async fn versions(&self) -> Result<Vec<(A::Id, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(SELECT_VERSIONS)
            .bind(A::TYPE)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|(id, version)| {
                let parsed = id.parse::<A::Id>().ok();
                match (parsed, u64::try_from(version)) {
                    (Some(id), Ok(version)) => Ok((id, version)),
                    _ => Err(StoreError::Corrupt(
                        format!("a stored {} id is not one: {id:?}", A::TYPE).into(),
                    )),
                }
            })
            .collect()
    }
}

#[async_trait]
impl app::TenantCaDirectory for PostgresEventStore<domain::TenantCas> {
    async fn versions(&self) -> Result<Vec<(domain::TenantCasId, u64)>, StoreError> {
        PostgresEventStore::versions(self).await
    }
}

#[async_trait]
impl<A: EventSchema> EventStore<A> for PostgresEventStore<A> {
    async fn load(&self, id: A::Id) -> Result<Loaded<A>, StoreError> {
        self.load_up_to(id, u64::MAX).await
    }

    async fn load_at(&self, id: A::Id, version: u64) -> Result<Loaded<A>, StoreError> {
        self.load_up_to(id, version).await
    }

    /// Queued for the next group commit (see `group_commit`): one statement for whatever
    /// arrived together, whatever the aggregates.
    async fn append(&self, appends: &[Append<'_, A>]) -> Result<Vec<AppendOutcome>, StoreError> {
        let encoded = appends
            .iter()
            .map(EncodedAppend::encode)
            .collect::<Result<Vec<_>, _>>()?;
        self.commits.append(encoded).await
    }
}

/// A stored event and its sequence. An event the schema cannot read is corruption, not an
/// outage.
fn decode<A: EventSchema>(id: &str, row: &PgRow) -> Result<(u64, A::Event), StoreError> {
    let sequence: i64 = row.try_get("sequence").map_err(unavailable)?;
    let stored = StoredEventRef {
        event_type: row.try_get("event_type").map_err(unavailable)?,
        event_version: row.try_get("event_version").map_err(unavailable)?,
        payload: row.try_get("payload").map_err(unavailable)?,
    };
    let event = A::decode(stored).map_err(|source| {
        StoreError::Corrupt(
            UnreadableStoredEvent {
                aggregate_type: A::TYPE,
                aggregate_id: id.to_owned(),
                sequence,
                source,
            }
            .into(),
        )
    })?;
    // The column's CHECK keeps sequences at 1 or above.
    Ok((sequence as u64, event))
}

#[derive(Debug, thiserror::Error)]
#[error("event {aggregate_type} {aggregate_id}/{sequence} cannot be decoded")]
struct UnreadableStoredEvent {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    source: UnreadableEvent,
}

fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.into())
}
