//! A projector consumer's handler: feeds a registered read model (`projections::Projector`)
//! in batches (whatever is ready, up to a limit), one transaction per batch; `nats` acks
//! after the commit. Before consuming, the read model fills itself from the event store if it
//! never did (a read model added later: the stream may no longer hold the oldest events).
//!
//! A database failure is [`Outcome::Transient`]: while Postgres is down the batch is held
//! until it is back. Any other failure (an event that cannot follow the read model) is
//! [`Outcome::Failed`]: the batch is handled again one message at a time, so that one bad
//! message does not hold the others back; it alone is redelivered and, in the end,
//! dead-lettered.

use std::time::Duration;

use app::EventEnvelope;
use async_trait::async_trait;
use nats::{DeliveredEvent, EventHandler, Outcome, Pace};
use projections::Projector;
use tokio_util::sync::CancellationToken;

use crate::consumer_handler::{ConsumerHandler, HandlingError};
use crate::consumer_span::consumer_span;
use bootstrap::describe;

pub struct ProjectorConsumer {
    projector: Projector,
    batch: usize,
    /// How long a batch may wait for more messages after its first.
    linger: Duration,
    /// The span of applying one event (`project <read model>`).
    span_name: String,
}

impl ProjectorConsumer {
    pub fn new(projector: Projector, batch: usize, linger: Duration) -> Self {
        // Reported from the start, not only after the first batch (see the relay's
        // `relay_lag_seconds`): no series at all would read as "no data" to an alert.
        metrics::gauge!("projection_lag_seconds", "projection" => projector.name()).set(0.0);
        Self {
            span_name: format!("project {}", projector.name()),
            projector,
            batch,
            linger,
        }
    }
}

#[async_trait]
impl EventHandler for ProjectorConsumer {
    fn pace(&self) -> Pace {
        Pace::Batches {
            max: self.batch,
            linger: self.linger,
        }
    }

    /// Fills the read model from the event store until that succeeds once (or the worker
    /// stops).
    async fn prepare(&self, cancel: &CancellationToken) {
        loop {
            match self.projector.fill_from_history().await {
                Ok(_) => return,
                Err(e) => tracing::warn!(
                    projection = self.projector.name(),
                    error = %e,
                    "filling from the event store failed; retrying"
                ),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn handle(&self, events: &[DeliveredEvent]) -> Outcome {
        let envelopes: Vec<EventEnvelope> = events.iter().map(|e| e.envelope.clone()).collect();
        // One span per event, each in its own trace, all covering the batch that applies it.
        let _spans: Vec<tracing::Span> = events
            .iter()
            .map(|event| consumer_span(&self.span_name, event))
            .collect();
        match self.projector.apply(&envelopes).await {
            Ok(report) => {
                if let Some(newest) = envelopes.iter().map(|e| e.time).max() {
                    let lag = chrono::Utc::now() - newest;
                    metrics::gauge!("projection_lag_seconds", "projection" => self.projector.name())
                        .set(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
                }
                metrics::counter!("projection_events_applied_total", "projection" => self.projector.name())
                    .increment((report.applied + report.gap_filled) as u64);
                tracing::debug!(
                    applied = report.applied,
                    skipped = report.skipped,
                    gap_filled = report.gap_filled,
                    "projected a batch"
                );
                Outcome::Done
            }
            Err(e) if e.is_transient() => Outcome::Transient(describe(&e)),
            Err(e) => Outcome::Failed(describe(&e)),
        }
    }
}

#[async_trait]
impl ConsumerHandler for ProjectorConsumer {
    async fn handle_again(&self, envelope: &EventEnvelope) -> Result<(), HandlingError> {
        self.projector.apply(std::slice::from_ref(envelope)).await?;
        Ok(())
    }
}
