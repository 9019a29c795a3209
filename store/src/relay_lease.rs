//! The relay's side of Postgres: who is the active relay, where it has published up to, and
//! the committed events after that point in gap-safe commit order.
//!
//! Exactly one relay is active per database: the one whose connection holds a session-level
//! advisory lock (an `ExclusiveLease` named `relay <relay>`). The lock lives and dies with that
//! connection, so when the active relay's
//! process dies (or its connection breaks) Postgres releases it and a standby's next
//! `try_acquire` wins. The lease reads and writes only through the locked connection: a
//! relay that lost its connection learns it on its next statement and steps down, so two
//! relays never advance the checkpoint at once.

use std::time::Duration;

use app::{CommitPosition, StoreError};
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::Row;

use crate::committed_events::{committed_events_after, CommittedBatch};
use crate::exclusive_lease::{ExclusiveLease, ExclusiveLeases};
use crate::recorded_event_row::unavailable;

/// The channel `PostgresEventStore` notifies after appending (see `append_notifier.rs`).
pub const EVENTS_APPENDED_CHANNEL: &str = "dp_events_appended";

/// Rows after the checkpoint in commit order, each flagged with whether its transaction is
/// below the snapshot's xmin. Only the flagged prefix may be published: a row past it may
/// still be preceded by a row of a transaction that has not committed yet.
const SELECT_CHECKPOINT: &str =
    "SELECT transaction_id::text, position FROM relay_checkpoints WHERE relay = $1";

const UPSERT_CHECKPOINT: &str = "
INSERT INTO relay_checkpoints (relay, transaction_id, position) VALUES ($1, $2::text::xid8, $3)
ON CONFLICT (relay) DO UPDATE
   SET transaction_id = excluded.transaction_id, position = excluded.position, updated_at = now()";

/// Connects relay candidates to the database.
#[derive(Clone)]
pub struct RelayLeases {
    options: PgConnectOptions,
    relay: String,
}

/// Committed events after the checkpoint, and whether more are already known to be waiting
/// for an older transaction to end.
impl RelayLeases {
    /// `relay` names the checkpoint and the lock: relays with different names are
    /// independent (one per stream).
    pub fn new(options: PgConnectOptions, relay: impl Into<String>) -> Self {
        Self {
            options,
            relay: relay.into(),
        }
    }

    /// Becomes the active relay if no other process is: `Ok(None)` when another holds the
    /// lease.
    pub async fn try_acquire(&self) -> Result<Option<RelayLease>, StoreError> {
        let leases = ExclusiveLeases::new(self.options.clone(), format!("relay {}", self.relay));
        Ok(leases.try_acquire().await?.map(|lease| RelayLease {
            lease,
            relay: self.relay.clone(),
        }))
    }

    /// A listener for append notifications (its own connection; it reconnects by itself).
    pub async fn listen(&self) -> Result<AppendListener, StoreError> {
        let pool = sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await.map_err(unavailable)?;
        listener
            .listen(EVENTS_APPENDED_CHANNEL)
            .await
            .map_err(unavailable)?;
        Ok(AppendListener { listener })
    }
}

/// Proof of being the active relay, for as long as its connection lives.
pub struct RelayLease {
    lease: ExclusiveLease,
    relay: String,
}

impl RelayLease {
    pub async fn checkpoint(&mut self) -> Result<CommitPosition, StoreError> {
        let row = sqlx::query(SELECT_CHECKPOINT)
            .bind(&self.relay)
            .fetch_optional(self.lease.connection())
            .await
            .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(CommitPosition::START);
        };
        let transaction_id: String = row.try_get(0).map_err(unavailable)?;
        Ok(CommitPosition {
            transaction_id: transaction_id
                .parse()
                .map_err(|_| StoreError::Corrupt("relay checkpoint xid".into()))?,
            position: row.try_get(1).map_err(unavailable)?,
        })
    }

    pub async fn committed_after(
        &mut self,
        after: CommitPosition,
        limit: usize,
    ) -> Result<CommittedBatch, StoreError> {
        committed_events_after(self.lease.connection(), after, limit).await
    }

    pub async fn save_checkpoint(&mut self, position: CommitPosition) -> Result<(), StoreError> {
        sqlx::query(UPSERT_CHECKPOINT)
            .bind(&self.relay)
            .bind(position.transaction_id.to_string())
            .bind(position.position)
            .execute(self.lease.connection())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Gives the lease up now (closing the connection releases the lock).
    pub async fn release(self) {
        self.lease.release().await;
    }
}

/// Wakes the relay when events were appended.
pub struct AppendListener {
    listener: PgListener,
}

impl AppendListener {
    /// Returns after a notification or after `timeout`, whichever comes first. Notifications
    /// are hints: a missed one costs at most `timeout` of latency.
    pub async fn wait(&mut self, timeout: Duration) {
        match tokio::time::timeout(timeout, self.listener.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "append listener lost its connection");
                tokio::time::sleep(timeout.min(Duration::from_millis(500))).await;
            }
        }
        // Several notifications may be buffered; one wake-up serves them all.
        while self.listener.next_buffered().is_some() {}
    }
}
