//! The live side of a registered read model, as the worker uses it: the batches its
//! projector consumer receives, and filling it from the event store's history before that.

use app::EventEnvelope;
use sqlx::PgPool;

use crate::backfill;
use crate::error::unavailable;
use crate::notified_events::notified_events;
use crate::runner::RunnableProjection;
use crate::{BatchReport, ProjectionError};

/// Events folded per backfill transaction by default.
const BACKFILL_BATCH: usize = 5_000;

/// A registered read model's live side, bound to a pool; cheap to clone.
#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
    projection: &'static dyn RunnableProjection,
    backfill_batch: usize,
}

impl Projector {
    pub(crate) fn new(pool: PgPool, projection: &'static dyn RunnableProjection) -> Self {
        Self {
            pool,
            projection,
            backfill_batch: BACKFILL_BATCH,
        }
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    /// Events folded per backfill transaction (default 5,000).
    pub fn with_backfill_batch(mut self, events: usize) -> Self {
        self.backfill_batch = events.max(1);
        self
    }

    /// Applies the events the notifications name (read from the event store, see
    /// `notified_events`), one transaction: on error nothing is written.
    pub async fn apply(
        &self,
        notifications: &[EventEnvelope],
    ) -> Result<BatchReport, ProjectionError> {
        if notifications.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let (events, furthest) = notified_events(&mut tx, notifications).await?;
        let Some(furthest) = furthest else {
            return Ok(BatchReport {
                skipped: notifications.len(),
                ..BatchReport::default()
            });
        };
        let report = self
            .projection
            .apply_live(&mut tx, &events, furthest)
            .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(report)
    }

    /// Fills the read model from the event store if that was never completed; returns the
    /// number of events folded, `None` when done before (see `backfill.rs`).
    pub async fn fill_from_history(&self) -> Result<Option<u64>, ProjectionError> {
        backfill::fill_from_history(&self.pool, self.projection, self.backfill_batch).await
    }
}
