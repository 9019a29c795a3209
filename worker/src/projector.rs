//! A projector consumer: feeds a read model (`projections::Projector`: `device_view`,
//! `device_stats`) from JetStream in batches
//! (whatever is ready, up to a limit), one transaction per batch, acking after commit.
//!
//! While a batch is applied its messages are kept with in-progress acks; while Postgres is
//! down the batch is held until it is back (see `Deliveries::through_outages`). A batch that
//! fails for a reason other than the database (an event that cannot follow the read model) is
//! retried one message at a time, so that one bad message does not hold the others back; it
//! alone is redelivered and, in the end, dead-lettered.

use app::EventEnvelope;
use async_nats::jetstream::consumer::{pull, Consumer};
use projections::ProjectionError;

use nats::headers;

use crate::delivery::{consumer_span, describe, header, Deliveries, Failure};
use crate::intake::Received;

pub struct Projector {
    projector: projections::Projector,
    deliveries: Deliveries,
    batch: usize,
}

impl Projector {
    pub fn new(projector: projections::Projector, deliveries: Deliveries, batch: usize) -> Self {
        Self {
            projector,
            deliveries,
            batch,
        }
    }

    /// Consumes until cancelled (the intake stops then, see `Deliveries::receive`), batch by
    /// batch: whatever is in hand, up to the batch size.
    pub async fn run(&self, consumer: &Consumer<pull::Config>) -> Result<(), async_nats::Error> {
        let mut intake = self.deliveries.receive(consumer.clone(), self.batch);
        while let Some(first) = intake.recv().await {
            let mut batch = vec![first];
            while batch.len() < self.batch {
                match intake.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
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
                consumer_span(
                    span_name(self.projector.name()),
                    message,
                    envelope,
                    incoming.as_deref(),
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let applied = self
            .deliveries
            .through_outages(
                batch.len(),
                |e| matches!(e, ProjectionError::Store(_)),
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
            Err(ProjectionError::Store(e)) => {
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

/// The span of applying one event to a read model, named after it.
fn span_name(projection: &str) -> &'static str {
    match projection {
        projections::DEVICE_VIEW => "project device_view",
        projections::DEVICE_STATS => "project device_stats",
        _ => "project read model",
    }
}
