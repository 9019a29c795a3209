//! Group commit: appends that arrive together are written by one statement in one
//! transaction (`append_statement`), so Postgres's per-statement and per-transaction work
//! (parse, plan, WAL flush at commit) and our round trips are paid once per batch instead of
//! once per command.
//!
//! **No fixed wait.** A few committer tasks take turns at one queue: a committer takes
//! whatever is queued when it is free (up to `max_appends`), commits it, and comes back. At
//! low load a command finds an idle committer and is written at once, alone; under load,
//! commands queue while the committers are busy and the next batch is whatever queued
//! meanwhile. Batches grow with the load, latency does not.
//!
//! **Each append keeps its own outcome.** A conflict (a sequence another writer took, a key
//! another command recorded) or a value Postgres refuses (a data error: SQLSTATE class 22,
//! 23 or 54, e.g. a U+0000 in the metadata's `jsonb`) fails the whole statement without
//! saying whose it was, so such a batch is retried at once, each append in a statement of
//! its own, run concurrently: its batch-mates are delayed by one retry, never failed, and
//! the append whose value was refused is answered `Refused`, its own outcome. A statement
//! that fails otherwise (Postgres unreachable, the pool exhausted, a timeout) fails every
//! append of the batch, as it would have failed each of them alone; the port's contract (an
//! error may hide a commit) holds either way, because a batch commits all or nothing.
//!
//! Must not decide anything nor reorder a caller's appends: it only groups and writes.

use std::sync::Arc;

use app::{AppendOutcome, StoreError};
use futures::future::join_all;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::append_notifier::AppendNotifier;
use crate::append_statement::{self, EncodedAppend, NotWritten};

/// How many committers, and how much one statement may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Batches in flight at once. More than one keeps Postgres busy while a batch waits for
    /// its commit to be flushed; each uses a pool connection while it runs.
    pub committers: usize,
    /// The most appends one statement takes (a caller's own batch is never split, so one
    /// statement may exceed it by that batch).
    pub max_appends: usize,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            committers: 2,
            max_appends: 128,
        }
    }
}

/// A caller's appends, waiting for a committer, and where their outcomes go.
struct Queued {
    appends: Vec<EncodedAppend>,
    answer: oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
}

/// How many callers may wait for a committer before `append` itself waits: far more than
/// the pool could write in one round, so it bounds memory, not throughput.
const QUEUE_CAPACITY: usize = 4096;

#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Queued>,
}

impl GroupCommit {
    /// Starts the committers on the current runtime; they end when the last handle is
    /// dropped, after writing what is queued.
    pub(crate) fn spawn(
        pool: PgPool,
        notifier: AppendNotifier,
        settings: GroupCommitSettings,
    ) -> Self {
        let (queue, queued) = mpsc::channel(QUEUE_CAPACITY);
        let queued = Arc::new(Mutex::new(queued));
        for _ in 0..settings.committers.max(1) {
            let committer = Committer {
                pool: pool.clone(),
                notifier: notifier.clone(),
                queued: queued.clone(),
                max_appends: settings.max_appends.max(1),
            };
            tokio::spawn(committer.run());
        }
        Self { queue }
    }

    /// Appends `appends` with whatever else is queued; one outcome per append, in order.
    pub(crate) async fn append(
        &self,
        appends: Vec<EncodedAppend>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Queued { appends, answer })
            .await
            .map_err(|_| StoreError::Unavailable(CommitterStopped.into()))?;
        // A committer that stopped mid-batch (the runtime shutting down) answers nothing: as
        // with a connection lost after the statement, the appends may have committed.
        answered
            .await
            .map_err(|_| StoreError::Unavailable(CommitterStopped.into()))?
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the event store's committer stopped before answering")]
struct CommitterStopped;

/// The statement that carried a caller's appends failed; the statement's error is shared by
/// every caller whose appends it carried.
#[derive(Debug, thiserror::Error)]
#[error("the statement carrying these {appends} appends failed")]
struct BatchFailed {
    appends: usize,
    source: Arc<sqlx::Error>,
}

struct Committer {
    pool: PgPool,
    notifier: AppendNotifier,
    queued: Arc<Mutex<mpsc::Receiver<Queued>>>,
    max_appends: usize,
}

impl Committer {
    async fn run(self) {
        while let Some(batch) = self.next_batch().await {
            self.commit(batch).await;
        }
    }

    /// Waits for the first caller, then takes whoever else is already queued, up to the
    /// limit. `None` once every handle is gone and the queue is empty.
    async fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut queued = self.queued.lock().await;
        let first = queued.recv().await?;
        let mut appends = first.appends.len();
        let mut batch = vec![first];
        while appends < self.max_appends {
            match queued.try_recv() {
                Ok(next) => {
                    appends += next.appends.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn commit(&self, batch: Vec<Queued>) {
        let writing: Vec<&EncodedAppend> = batch
            .iter()
            .flat_map(|q| &q.appends)
            .filter(|a| !a.is_empty())
            .collect();
        let written = self.write(&writing).await;
        let appended_tenants = writing
            .iter()
            .zip(&written)
            .filter(|(_, w)| matches!(w, Ok(AppendOutcome::Appended { .. })))
            .map(|(append, _)| append.tenant());
        self.notifier.appended(appended_tenants);
        drop(writing);
        let mut written = written.into_iter();
        for queued in batch {
            let mut outcomes = Vec::with_capacity(queued.appends.len());
            let mut failed = None;
            for append in &queued.appends {
                let outcome = match append.is_empty() {
                    true => Ok(AppendOutcome::Appended {
                        version: append.expected_version(),
                    }),
                    false => written.next().unwrap_or(Err(WriteError::Unanswered)),
                };
                match outcome {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) => failed = Some(e),
                }
            }
            let answer = match failed {
                None => Ok(outcomes),
                Some(e) => Err(e.into_store_error(queued.appends.len())),
            };
            // The caller may have given up waiting (its request was cancelled): nothing to do.
            let _ = queued.answer.send(answer);
        }
    }

    /// Writes `appends` in one statement, or, if that conflicts, each in its own; one
    /// result per append, in order.
    async fn write(&self, appends: &[&EncodedAppend]) -> Vec<Result<AppendOutcome, WriteError>> {
        if appends.is_empty() {
            return Vec::new();
        }
        metrics::histogram!("append_batch_size").record(appends.len() as f64);
        if let [append] = appends {
            return vec![self.write_one(append).await];
        }
        match append_statement::insert(&self.pool, appends).await {
            Ok(Ok(())) => appends.iter().map(|a| Ok(appended(a))).collect(),
            // Whose conflict or value it was, the error does not say: each on its own.
            Ok(Err(_)) => {
                metrics::counter!("append_batch_retried_total").increment(1);
                join_all(appends.iter().map(|append| self.write_one(append))).await
            }
            Err(e) => {
                let e = Arc::new(e);
                appends
                    .iter()
                    .map(|_| Err(WriteError::Statement(e.clone())))
                    .collect()
            }
        }
    }

    /// One append in a statement of its own: the conflict or refused value, if any, is its
    /// own.
    async fn write_one(&self, append: &EncodedAppend) -> Result<AppendOutcome, WriteError> {
        match append_statement::insert(&self.pool, std::slice::from_ref(&append)).await {
            Ok(Ok(())) => Ok(appended(append)),
            Ok(Err(NotWritten::Conflict(outcome))) => Ok(outcome),
            Ok(Err(NotWritten::Refused(e))) => {
                metrics::counter!("append_refused_total").increment(1);
                // The SQLSTATE and the tenant, never the value: it may be anything a client sent.
                tracing::warn!(
                    sqlstate = append_statement::sqlstate(&e).as_deref().unwrap_or(""),
                    tenant = append.tenant(),
                    "the event store refused a value of an append; only that append failed"
                );
                Ok(AppendOutcome::Refused)
            }
            Err(e) => Err(WriteError::Statement(Arc::new(e))),
        }
    }
}

fn appended(append: &EncodedAppend) -> AppendOutcome {
    AppendOutcome::Appended {
        version: append.appended_version(),
    }
}

/// Why an append got no outcome.
#[derive(Debug, Clone)]
enum WriteError {
    /// Its statement failed (shared by every append the statement carried).
    Statement(Arc<sqlx::Error>),
    /// A bug: fewer results than appends.
    Unanswered,
}

impl WriteError {
    fn into_store_error(self, appends: usize) -> StoreError {
        match self {
            Self::Statement(source) => {
                StoreError::Unavailable(Box::new(BatchFailed { appends, source }))
            }
            Self::Unanswered => StoreError::Corrupt(Box::new(app::OutcomeCountMismatch {
                appended: appends,
                answered: 0,
            })),
        }
    }
}
