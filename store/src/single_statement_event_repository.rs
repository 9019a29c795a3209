//! A cqrs-es event repository that reads through postgres-es and appends with one
//! statement, which also writes the command's idempotency record.
//!
//! Why not postgres-es's own `persist`: it appends as `BEGIN; INSERT …; …; COMMIT`, three or
//! more round trips per command, and on this service's hot path round trips, not SQL, are
//! what costs (each one wakes a Postgres backend and our runtime). One statement is atomic on
//! its own: the events (multi-row `INSERT … SELECT FROM unnest(…)`, same table, same
//! optimistic-concurrency check on the primary key) and, when the command came with an
//! `Idempotency-Key`, its record in `idempotency_keys`, taken from the events' metadata (see
//! `app::CommandMetadata::to_map`). A key already used by another command violates that
//! table's primary key, so the whole append fails and nothing of the duplicate is written.
//! Reads, snapshots and replay streams are postgres-es's.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;

/// Events in postgres-es's column list (the other columns of `events` have defaults), then one
/// idempotency record per command: all events of a command share its metadata, and the record
/// keeps the last sequence, the version the command produced.
const INSERT_EVENTS: &str = "
WITH appended AS (
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
    RETURNING aggregate_id, sequence, metadata
)
INSERT INTO idempotency_keys (tenant, route, idempotency_key, request_fingerprint, aggregate_id, sequence)
SELECT metadata ->> 'tenant', metadata ->> 'idempotency_route', metadata ->> 'idempotency_key',
       metadata ->> 'request_fingerprint', aggregate_id, max(sequence)
  FROM appended
 WHERE metadata ? 'idempotency_key'
 GROUP BY 1, 2, 3, 4, 5";

pub struct SingleStatementEventRepository {
    reads: PostgresEventRepository,
    pool: PgPool,
}

impl SingleStatementEventRepository {
    pub fn new(pool: PgPool) -> Self {
        Self {
            reads: PostgresEventRepository::new(pool.clone()),
            pool,
        }
    }

    async fn insert_events<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
    ) -> Result<(), PersistenceError> {
        let n = events.len();
        let (mut types, mut ids, mut sequences) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut event_types, mut versions) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut payloads, mut metadata) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for event in events {
            types.push(A::TYPE);
            ids.push(event.aggregate_id.as_str());
            sequences.push(event.sequence as i64);
            event_types.push(event.event_type.as_str());
            versions.push(event.event_version.as_str());
            payloads.push(&event.payload);
            metadata.push(&event.metadata);
        }
        sqlx::query(INSERT_EVENTS)
            .bind(types)
            .bind(ids)
            .bind(sequences)
            .bind(event_types)
            .bind(versions)
            .bind(payloads)
            .bind(metadata)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(persistence_error)
    }
}

fn persistence_error(err: sqlx::Error) -> PersistenceError {
    match &err {
        // The primary key (another writer took this sequence) or the idempotency record
        // (another request with this key committed): either way, nothing was written and
        // the caller should re-read and decide again.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => PersistenceError::ConnectionError(err.into()),
        _ => PersistenceError::UnknownError(err.into()),
    }
}

impl PersistedEventRepository for SingleStatementEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reads.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reads
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.reads.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        match snapshot_update {
            None if events.is_empty() => Ok(()),
            None => self.insert_events::<A>(events).await,
            // Snapshots need events and snapshot in one transaction: postgres-es does that.
            Some(_) => self.reads.persist::<A>(events, snapshot_update).await,
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_all_events::<A>().await
    }
}
