//! Every read model's live side, as the worker consumes them: one [`Projector`] per registered
//! read model, in registration order.

use app::EventEnvelope;
use sqlx::PgPool;
use std::sync::Arc;

use crate::{BatchProjector, BatchReport, DeviceProjector, DeviceStatsProjector, ProjectionError};

/// A registered read model's live side, bound to a pool; cheap to clone.
#[derive(Clone)]
pub struct Projector {
    live: Arc<dyn BatchProjector>,
    stats: Option<DeviceStatsProjector>,
}

impl Projector {
    pub fn name(&self) -> &'static str {
        self.live.name()
    }

    /// Applies the events the notifications name (read from the event store), in one
    /// transaction.
    pub async fn apply(
        &self,
        notifications: &[EventEnvelope],
    ) -> Result<BatchReport, ProjectionError> {
        self.live.apply(notifications).await
    }

    /// Fills the read model from the event store if that was never completed; `None` when it
    /// was done before.
    pub async fn fill_from_history(&self) -> Result<Option<u64>, ProjectionError> {
        match &self.stats {
            Some(stats) => stats.backfill().await,
            None => Ok(None),
        }
    }
}

/// Every registered read model, in registration order.
pub fn projectors(pool: &PgPool) -> Vec<Projector> {
    let stats = DeviceStatsProjector::new(pool.clone());
    vec![
        Projector {
            live: Arc::new(DeviceProjector::new(pool.clone())),
            stats: None,
        },
        Projector {
            live: Arc::new(stats.clone()),
            stats: Some(stats),
        },
    ]
}

impl ProjectionError {
    /// The database did not answer: try again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}
