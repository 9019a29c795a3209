//! Port: the event store as the command path needs it, storage only, for any aggregate the
//! store can hold (`EventSourced`; `Device` is the first). It loads an aggregate's events and
//! appends new ones; it never decides anything (the application services call the
//! aggregate's decision, e.g. `Device::decide`, and `apply`).
//!
//! An append is optimistic: it names the version its events were decided on, and fails
//! with nothing written if the aggregate has moved since. It may carry an idempotency claim,
//! recorded atomically with its events, so that a command and its key commit together or
//! not at all.
//!
//! Appends come in batches, each with its own outcome: a conflict, a taken key or a value
//! the store cannot hold fails only its own append. The Postgres adapter goes further and
//! commits together whatever appends arrive together from any callers, for any aggregate
//! (group commit), so a caller appending one at a time still shares its transaction under
//! load.

use std::fmt;

use async_trait::async_trait;
use cqrs_es::Aggregate;

use crate::{CommandMetadata, EventSourced, IdempotencyClaim};

/// An aggregate as the store holds it: the state after its first `version` events.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    pub aggregate: A,
    /// The sequence of the last event folded into `aggregate`; 0 for one without events.
    /// An append decided on this state expects this version.
    pub version: u64,
}

impl<A: Default> Loaded<A> {
    /// An aggregate with no events, as a command that creates one may assume without
    /// reading: if it does exist, the append at version 0 conflicts.
    pub fn without_events() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
        }
    }
}

/// One command's events, to be appended to an aggregate after `expected_version`.
pub struct Append<'a, A: EventSourced> {
    pub aggregate_id: A::Id,
    /// The version the events were decided on: the first event becomes `expected_version + 1`.
    pub expected_version: u64,
    /// Not empty in practice: a decision that produced no events has nothing to append. (An
    /// append without events writes nothing, its claim included, and is answered `Appended`
    /// at `expected_version`.)
    pub events: &'a [<A as Aggregate>::Event],
    /// Stored with every event (who asked, under which request, the trace to continue).
    pub metadata: &'a CommandMetadata,
    /// The public command's idempotency key and request fingerprint, recorded in the same
    /// transaction as the events, with the version they bring the aggregate to.
    pub claim: Option<&'a IdempotencyClaim>,
}

// By hand: a derive would ask `A` itself to be `Clone`, `Copy` and `Debug`.
impl<A: EventSourced> Clone for Append<'_, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A: EventSourced> Copy for Append<'_, A> {}

impl<A: EventSourced> fmt::Debug for Append<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Append")
            .field("aggregate_type", &A::TYPE)
            .field("aggregate_id", &self.aggregate_id)
            .field("expected_version", &self.expected_version)
            .field("events", &self.events)
            .field("metadata", &self.metadata)
            .field("claim", &self.claim)
            .finish()
    }
}

/// What became of one append. Every outcome but `Appended` wrote nothing of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events committed; the aggregate is now at `version`.
    Appended { version: u64 },
    /// Another writer appended to the aggregate after `expected_version`.
    VersionConflict,
    /// Another command already recorded the claim's key (tenant, route, key).
    KeyAlreadyClaimed,
    /// The store cannot hold a value of this append (e.g. a character Postgres refuses): the
    /// command's input, which its validation should have refused, not an outage. Trying
    /// again cannot help.
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store holds (or answered) something this code cannot interpret.
    #[error("the store holds data that cannot be read")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An adapter answered a batch with another number of outcomes than it was given appends:
/// a bug in the adapter, reported as [`StoreError::Corrupt`].
#[derive(Debug, thiserror::Error)]
#[error("the event store answered {answered} outcomes for {appended} appends")]
pub struct OutcomeCountMismatch {
    pub appended: usize,
    pub answered: usize,
}

#[async_trait]
pub trait EventStore<A: EventSourced>: Send + Sync + 'static {
    /// The aggregate as it is now (no events: `Loaded::without_events`).
    async fn load(&self, id: A::Id) -> Result<Loaded<A>, StoreError>;

    /// The aggregate as it was right after `version` (or now, if it has not got that far).
    /// Used to answer a replayed request with exactly what the original request was answered.
    async fn load_at(&self, id: A::Id, version: u64) -> Result<Loaded<A>, StoreError>;

    /// Appends each of `appends` atomically with its claim, with optimistic concurrency on
    /// (aggregate, version); returns one outcome per append, in order. One append's conflict
    /// or refused value does not fail the others.
    ///
    /// `Err(_)`: the store failed; an append may or may not have committed (as with any
    /// answer lost on the way), which the idempotency records and the internal commands'
    /// idempotence make safe to retry.
    async fn append(&self, appends: &[Append<'_, A>]) -> Result<Vec<AppendOutcome>, StoreError>;
}
