//! The one way a command reaches an aggregate, whichever it is (`Device`, `TenantCas`): load
//! it, let it decide ([`Decides`]), fold the new events into the copy for the answer, and
//! append them at the loaded version, with the public command's idempotency claim. Every
//! public command runs the same loop: decide and append; on an optimistic-concurrency
//! conflict (the version or the key was taken), look the idempotency key up, and if it was not
//! used, start over after a short jittered backoff, a bounded number of times. A command that
//! creates its aggregate does not even read it on its first attempt: it bets the aggregate is
//! new (`Loaded::without_events`) and lets the append's uniqueness check (sequence 1 of the
//! derived id) prove it.
//!
//! Why the key is not looked up before appending: the idempotency record, written by the
//! store in the append's own transaction under a unique key, is what guarantees at most one
//! execution per key, not the lookup. A retried request either is refused by the aggregate
//! (e.g. the device is already registered) or its append collides with the record (a
//! conflict); both send us to the lookup, which answers with the recorded outcome (or 422 for
//! another body). The lookup follows every conflict, the last attempt's included, so a replay
//! never depends on the retry budget (`COMMAND_MAX_ATTEMPTS=1` replays too): only a conflict
//! that no earlier request with this key explains is contention. So new commands, the common
//! case, save a round trip, and duplicates, including concurrent ones that lost the race, are
//! answered with the winner's response.
//!
//! Internal commands (no key) may start from an aggregate their caller has just loaded: the
//! first attempt decides on it, only a conflict reads again.
//!
//! Must not: know any aggregate's commands or answers (the services on top do), or name a
//! metric per command (the services do).

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::{
    Append, AppendOutcome, CommandMetadata, EventSourced, EventStore, IdempotencyClaim,
    IdempotencyStore, Loaded, OutcomeCountMismatch, StoreError,
};

/// An aggregate a command runner can drive: how it decides, and which commands create it.
pub trait Decides: EventSourced + Send + Sync {
    /// The events `command` produces in this state (none: accepted, nothing left to do), or
    /// why the aggregate refuses it.
    fn decide_on(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Whether `command` creates the aggregate, so that its first attempt may bet it is new.
    fn creates(command: &Self::Command) -> bool;
}

/// How hard to try when other writers keep winning the race for the same aggregate.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(100),
        }
    }
}

/// What an accepted command came to: the aggregate right after it.
#[derive(Debug, Clone)]
pub struct Decision<A: EventSourced> {
    pub id: A::Id,
    pub aggregate: A,
    /// The version after the command (= the sequence of its last event).
    pub version: u64,
    /// 0 when the command was accepted but had nothing left to do, or was replayed.
    pub events_appended: usize,
    /// True when this is the recorded outcome of an earlier request with the same key.
    pub replayed: bool,
}

/// Why a command was not accepted. Rejections (the aggregate's) and infrastructure failures
/// are different variants on purpose.
#[derive(Debug)]
pub enum RunError<E> {
    Rejected(E),
    IdempotencyKeyReused,
    /// Every attempt lost an optimistic-concurrency race on the same aggregate.
    ConcurrencyConflict,
    /// The store refused a value of the command; nothing was written.
    Unstorable,
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    Corrupt(Box<dyn std::error::Error + Send + Sync>),
}

/// What one decision and its append came to (store failures aside).
enum Decided<A: EventSourced> {
    Applied(Decision<A>),
    Rejected(A::Error),
    /// The append lost a race: another writer took the version, or another request with the
    /// same key committed. Nothing was written.
    Conflict,
    /// The store refused a value of the append (`AppendOutcome::Refused`). Nothing was written.
    Unstorable,
}

/// Why one attempt ended: only `Conflict` is worth another attempt.
enum AttemptError<E> {
    Conflict,
    Final(RunError<E>),
}

impl<E> From<StoreError> for AttemptError<E> {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => Self::Final(RunError::Unavailable(e)),
            StoreError::Corrupt(e) => Self::Final(RunError::Corrupt(e)),
        }
    }
}

/// Runs commands against one kind of aggregate (see the module documentation).
pub struct CommandRunner<A: Decides> {
    store: Arc<dyn EventStore<A>>,
    idempotency: Arc<dyn IdempotencyStore>,
    retry: RetryPolicy,
}

impl<A: Decides> CommandRunner<A>
where
    A::Command: Sync,
    A::Error: Send,
{
    pub fn new(
        store: Arc<dyn EventStore<A>>,
        idempotency: Arc<dyn IdempotencyStore>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            store,
            idempotency,
            retry,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore<A>> {
        &self.store
    }

    /// A public command, idempotent by `claim`.
    pub async fn public(
        &self,
        id: A::Id,
        command: &A::Command,
        metadata: &CommandMetadata,
        claim: &IdempotencyClaim,
    ) -> Result<Decision<A>, RunError<A::Error>> {
        let mut attempts = 0;
        self.with_retries(|| {
            attempts += 1;
            self.attempt_public(id, command, metadata, claim, attempts == 1)
        })
        .await
    }

    /// An internal command, idempotent by what the aggregate decides (an outcome applied
    /// twice appends nothing). `loaded`: the aggregate as the caller has just loaded it.
    pub async fn internal(
        &self,
        id: A::Id,
        command: &A::Command,
        metadata: &CommandMetadata,
        loaded: Option<Loaded<A>>,
    ) -> Result<Decision<A>, RunError<A::Error>> {
        let mut loaded = loaded;
        self.with_retries(|| {
            // Only the first attempt may use the caller's copy: after a conflict it is stale.
            let loaded = loaded.take();
            async move {
                let loaded = match loaded {
                    Some(loaded) => loaded,
                    None => self.store.load(id).await?,
                };
                match self
                    .decide_and_append(id, loaded, command, metadata, None)
                    .await?
                {
                    Decided::Applied(decision) => Ok(decision),
                    Decided::Rejected(rejection) => {
                        Err(AttemptError::Final(RunError::Rejected(rejection)))
                    }
                    Decided::Conflict => Err(AttemptError::Conflict),
                    Decided::Unstorable => Err(AttemptError::Final(RunError::Unstorable)),
                }
            }
        })
        .await
    }

    async fn with_retries<T, F, Fut>(&self, attempt: F) -> Result<T, RunError<A::Error>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError<A::Error>>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1))
            .with_jitter();
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, AttemptError::Conflict))
            .notify(|_, delay| tracing::debug!(?delay, "optimistic concurrency conflict, retrying"))
            .await
            .map_err(|e| match e {
                AttemptError::Conflict => RunError::ConcurrencyConflict,
                AttemptError::Final(e) => e,
            })
    }

    async fn attempt_public(
        &self,
        id: A::Id,
        command: &A::Command,
        metadata: &CommandMetadata,
        claim: &IdempotencyClaim,
        first_attempt: bool,
    ) -> Result<Decision<A>, AttemptError<A::Error>> {
        if first_attempt && A::creates(command) {
            // Bet that the aggregate is new (it nearly always is): decide without reading it.
            // A lost bet (it exists, or this key was used) is not contention, so it is
            // settled now, on the full path below, rather than after a backoff.
            let assumed = Loaded::without_events();
            match self
                .decide_and_append(id, assumed, command, metadata, Some(claim))
                .await?
            {
                Decided::Conflict => {
                    if let Some(replayed) = self.replay(claim).await? {
                        return Ok(replayed);
                    }
                }
                decided => return self.answer(decided, claim).await,
            }
        }
        let loaded = self.store.load(id).await?;
        let decided = self
            .decide_and_append(id, loaded, command, metadata, Some(claim))
            .await?;
        self.answer(decided, claim).await
    }

    /// Lets the aggregate decide on `command` in the `loaded` state and appends the events at
    /// the loaded version (with `claim`, atomically). Nothing is appended for a refusal, nor
    /// for an accepted command that has nothing left to do.
    async fn decide_and_append(
        &self,
        id: A::Id,
        loaded: Loaded<A>,
        command: &A::Command,
        metadata: &CommandMetadata,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Decided<A>, StoreError> {
        let Loaded {
            mut aggregate,
            version,
        } = loaded;
        let events = match aggregate.decide_on(command) {
            Ok(events) => events,
            Err(rejection) => return Ok(Decided::Rejected(rejection)),
        };
        // Fold the new events into our copy: the answer is the state right after them.
        for event in &events {
            aggregate.apply(event.clone());
        }
        if events.is_empty() {
            return Ok(Decided::Applied(Decision {
                id,
                aggregate,
                version,
                events_appended: 0,
                replayed: false,
            }));
        }
        let append = Append {
            aggregate_id: id,
            expected_version: version,
            events: &events,
            metadata,
            claim,
        };
        let outcomes = self.store.append(std::slice::from_ref(&append)).await?;
        let [outcome] = outcomes[..] else {
            return Err(StoreError::Corrupt(Box::new(OutcomeCountMismatch {
                appended: 1,
                answered: outcomes.len(),
            })));
        };
        Ok(match outcome {
            AppendOutcome::Appended { version } => Decided::Applied(Decision {
                id,
                aggregate,
                version,
                events_appended: events.len(),
                replayed: false,
            }),
            // Either way nothing was written, and the key's record (if that is what we
            // collided with) tells the caller whether this is a replay.
            AppendOutcome::VersionConflict | AppendOutcome::KeyAlreadyClaimed => Decided::Conflict,
            AppendOutcome::Refused => Decided::Unstorable,
        })
    }

    /// Turns what an attempt decided into the answer: accepted, or refused (or contention)
    /// unless an earlier request with this key explains the refusal or the conflict.
    async fn answer(
        &self,
        decided: Decided<A>,
        claim: &IdempotencyClaim,
    ) -> Result<Decision<A>, AttemptError<A::Error>> {
        let refusal = match decided {
            Decided::Applied(decision) => return Ok(decision),
            // E.g. an earlier request with this key is why the device "already exists".
            Decided::Rejected(rejection) => AttemptError::Final(RunError::Rejected(rejection)),
            // E.g. an earlier request with this key holds the key's record, which the append
            // collided with: that is a replay, not contention, on any attempt.
            Decided::Conflict => AttemptError::Conflict,
            // Nothing of it was written (its key's record included), so nothing to replay.
            Decided::Unstorable => return Err(AttemptError::Final(RunError::Unstorable)),
        };
        // The earlier request's record committed with its events, so it is visible now.
        match self.replay(claim).await? {
            Some(replayed) => Ok(replayed),
            None => Err(refusal),
        }
    }

    /// The recorded outcome for `claim`'s key, if the key was used before: the aggregate as
    /// that command left it.
    async fn replay(
        &self,
        claim: &IdempotencyClaim,
    ) -> Result<Option<Decision<A>>, AttemptError<A::Error>> {
        let Some(record) = self.idempotency.find(&claim.scope).await? else {
            return Ok(None);
        };
        if record.fingerprint != claim.fingerprint {
            return Err(AttemptError::Final(RunError::IdempotencyKeyReused));
        }
        let dangling = || {
            AttemptError::Final(RunError::Corrupt(Box::new(DanglingIdempotencyRecord {
                aggregate_id: record.aggregate_id.clone(),
                version: record.version,
            })))
        };
        let id: A::Id = record.aggregate_id.parse().map_err(|_| dangling())?;
        let loaded = self.store.load_at(id, record.version).await?;
        if loaded.version == 0 {
            return Err(dangling());
        }
        Ok(Some(Decision {
            id,
            aggregate: loaded.aggregate,
            version: record.version,
            events_appended: 0,
            replayed: true,
        }))
    }
}

/// An idempotency record whose aggregate has no events (or an id this aggregate cannot
/// have): the store lost events it committed together with the record, or was edited by
/// hand.
#[derive(Debug, thiserror::Error)]
#[error(
    "idempotency record points at aggregate {aggregate_id} version {version}, which has no events"
)]
struct DanglingIdempotencyRecord {
    aggregate_id: String,
    version: u64,
}
