//! A projector consumer: feeds a registered read model (`projections::Projector`) from
//! JetStream in batches (whatever is ready, up to a limit), one transaction per batch, acking
//! after commit. Before consuming, the read model fills itself from the event store if it
//! never did (a read model added later: the stream may no longer hold the oldest events).
//!
//! While a batch is applied its messages are kept with in-progress acks; while Postgres is
//! down the batch is held until it is back (see `Deliveries::through_outages`). A batch that
//! fails for a reason other than the database (an event that cannot follow the read model) is
//! retried one message at a time, so that one bad message does not hold the others back; it
//! alone is redelivered and, in the end, dead-lettered.

use std::time::Duration;

use app::EventEnvelope;
use async_nats::jetstream::consumer::{pull, Consumer};
use async_trait::async_trait;
use projections::Projector;
use tokio_util::sync::CancellationToken;

use nats::headers;

use crate::delivery::{consumer_span, header, Deliveries, Failure};
use crate::intake::{self, Received};
use crate::message_handler::{HandlingError, MessageHandler};
use bootstrap::describe;

pub struct ProjectorConsumer {
    projector: Projector,
    deliveries: Deliveries,
    batch: usize,
    /// How long a batch may wait for more messages after its first (see `intake::next_batch`).
    linger: Duration,
    /// The span of applying one event (`project <read model>`).
    span_name: String,
}

impl ProjectorConsumer {
    pub fn new(
        projector: Projector,
        deliveries: Deliveries,
        batch: usize,
        linger: Duration,
    ) -> Self {
        // Reported from the start, not only after the first batch (see the relay's
        // `relay_lag_seconds`): no series at all would read as "no data" to an alert.
        metrics::gauge!("projection_lag_seconds", "projection" => projector.name()).set(0.0);
        Self {
            span_name: format!("project {}", projector.name()),
            projector,
            deliveries,
            batch,
            linger,
        }
    }

    /// Consumes until cancelled (the intake stops then, see `Deliveries::receive`), batch by
    /// batch: up to the batch size, gathered for at most the linger time.
    async fn run(&self, consumer: Consumer<pull::Config>) -> Result<(), async_nats::Error> {
        let mut intake = self.deliveries.receive(consumer, self.batch);
        while let Some(batch) = intake::next_batch(&mut intake, self.batch, self.linger).await {
            let mut parsed = Vec::with_capacity(batch.len());
            let mut ended = None;
            for received in batch {
                match received {
                    Ok(received) => {
                        match serde_json::from_slice::<EventEnvelope>(&received.message.payload) {
                            Ok(envelope) => parsed.push((received, envelope)),
                            Err(e) => {
                                let error = format!("not an event envelope: {e}");
                                self.deliveries
                                    .failed(&received.message, Failure::Permanent, &error)
                                    .await;
                            }
                        }
                    }
                    Err(e) => ended = Some(e),
                }
            }
            self.apply(parsed).await;
            if let Some(e) = ended {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn apply(&self, batch: Vec<(Received, EventEnvelope)>) {
        if batch.is_empty() {
            return;
        }
        let envelopes: Vec<EventEnvelope> = batch.iter().map(|(_, e)| e.clone()).collect();
        // One span per event, each in its own trace, all covering the batch that applies it.
        let _spans: Vec<tracing::Span> = batch
            .iter()
            .map(|(received, envelope)| {
                let message = &received.message;
                let incoming = header(message, headers::TRACEPARENT);
                consumer_span(&self.span_name, message, envelope, incoming.as_deref())
            })
            .collect();
        let started = std::time::Instant::now();
        let applied = self
            .deliveries
            .through_outages(
                batch.len(),
                |e: &projections::ProjectionError| e.is_transient(),
                || self.projector.apply(&envelopes),
            )
            .await;
        match applied {
            Ok(report) => {
                metrics::histogram!("worker_job_seconds", "consumer" => self.deliveries.consumer().to_owned())
                    .record(started.elapsed().as_secs_f64());
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
                for (received, _) in &batch {
                    self.deliveries.succeeded(&received.message).await;
                }
            }
            Err(e) if e.is_transient() => {
                let error = describe(&e);
                for (received, _) in &batch {
                    self.deliveries
                        .failed(&received.message, Failure::Transient, &error)
                        .await;
                }
            }
            Err(e) if batch.len() == 1 => {
                let (received, _) = &batch[0];
                self.deliveries
                    .failed(&received.message, Failure::Transient, &describe(&e))
                    .await;
            }
            Err(_) => {
                for item in batch {
                    Box::pin(self.apply(vec![item])).await;
                }
            }
        }
    }
}

#[async_trait]
impl MessageHandler for ProjectorConsumer {
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

    async fn consume(&self, consumer: Consumer<pull::Config>) -> Result<(), async_nats::Error> {
        self.run(consumer).await
    }

    async fn handle_again(&self, envelope: &EventEnvelope) -> Result<(), HandlingError> {
        self.projector.apply(std::slice::from_ref(envelope)).await?;
        Ok(())
    }
}
