//! Running a handler on what its consumer's intake takes, at the handler's [`Pace`], and
//! settling every message by the outcome: acked, held through a Postgres outage and handled
//! again, redelivered later, or kept as a dead letter (`delivery`).
//!
//! A message whose body is not an event envelope never reaches the handler: it is a dead
//! letter at once (it will never be readable).

use std::time::Duration;

use app::EventEnvelope;
use async_nats::jetstream::consumer::{pull, Consumer};
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use super::delivery::{header, Deliveries, Failure};
use super::event_handler::{DeliveredEvent, EventHandler, Outcome, Pace};
use super::intake::{self, Received};
use crate::stream_contract::headers;

/// Consumes from `consumer` until the worker is cancelled (the intake stops then, see
/// `Deliveries::receive`) or the message stream fails; settles every message it took before
/// returning.
pub(crate) async fn consume(
    handler: &dyn EventHandler,
    deliveries: &Deliveries,
    consumer: Consumer<pull::Config>,
) -> Result<(), async_nats::Error> {
    match handler.pace() {
        Pace::Concurrently { in_flight } => {
            concurrently(handler, deliveries, consumer, in_flight).await
        }
        Pace::Batches { max, linger } => {
            in_batches(handler, deliveries, consumer, max, linger).await
        }
    }
}

/// One message per handling, up to `in_flight` at once; at the end, lets those in hand finish.
async fn concurrently(
    handler: &dyn EventHandler,
    deliveries: &Deliveries,
    consumer: Consumer<pull::Config>,
    in_flight: usize,
) -> Result<(), async_nats::Error> {
    let mut intake = deliveries.receive(consumer, in_flight);
    let mut running = FuturesUnordered::new();
    let settle_one = |received: Received| async move {
        if let Some(event) = decode(deliveries, &received).await {
            settle(handler, deliveries, vec![received], vec![event]).await;
        }
    };
    let ended = loop {
        tokio::select! {
            received = intake.recv() => match received {
                Some(Ok(received)) => running.push(settle_one(received)),
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    };
    while running.next().await.is_some() {}
    ended
}

/// Batch by batch: up to `max` messages, gathered for at most `linger` (see
/// `intake::next_batch`).
async fn in_batches(
    handler: &dyn EventHandler,
    deliveries: &Deliveries,
    consumer: Consumer<pull::Config>,
    max: usize,
    linger: Duration,
) -> Result<(), async_nats::Error> {
    let mut intake = deliveries.receive(consumer, max);
    while let Some(batch) = intake::next_batch(&mut intake, max, linger).await {
        let (mut messages, mut events) = (Vec::with_capacity(batch.len()), Vec::new());
        let mut ended = None;
        for received in batch {
            match received {
                Ok(received) => {
                    if let Some(event) = decode(deliveries, &received).await {
                        messages.push(received);
                        events.push(event);
                    }
                }
                Err(e) => ended = Some(e),
            }
        }
        settle(handler, deliveries, messages, events).await;
        if let Some(e) = ended {
            return Err(e);
        }
    }
    Ok(())
}

/// The event `received` carries, as its handler is given it; `None` if its body is not an
/// event envelope (then it is a dead letter already).
async fn decode(deliveries: &Deliveries, received: &Received) -> Option<DeliveredEvent> {
    let message = &received.message;
    match serde_json::from_slice::<EventEnvelope>(&message.payload) {
        Ok(envelope) => Some(DeliveredEvent {
            envelope,
            subject: message.subject.to_string(),
            delivered: message.info().map_or(1, |i| i.delivered),
            traceparent: header(message, headers::TRACEPARENT),
        }),
        Err(e) => {
            let error = format!("not an event envelope: {e}");
            deliveries.failed(message, Failure::Permanent, &error).await;
            None
        }
    }
}

/// Handles `events` (those of `messages`, in the same order) through Postgres outages and
/// settles their messages by the outcome.
async fn settle(
    handler: &dyn EventHandler,
    deliveries: &Deliveries,
    messages: Vec<Received>,
    events: Vec<DeliveredEvent>,
) {
    if messages.is_empty() {
        return;
    }
    // How long handling took, holds through an outage included (`worker_job_seconds`).
    let started = std::time::Instant::now();
    let outcome = deliveries
        .through_outages(messages.len(), || handler.handle(&events))
        .await;
    metrics::histogram!("worker_job_seconds", "consumer" => deliveries.consumer().to_owned())
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Outcome::Done => {
            for received in &messages {
                deliveries.succeeded(&received.message).await;
            }
        }
        Outcome::Transient(error) | Outcome::DependencyUnavailable(error) => {
            for received in &messages {
                deliveries
                    .failed(&received.message, Failure::Transient, &error)
                    .await;
            }
        }
        Outcome::Failed(error) if messages.len() == 1 => {
            deliveries
                .failed(&messages[0].message, Failure::Transient, &error)
                .await;
        }
        Outcome::Failed(_) => {
            for (received, event) in messages.into_iter().zip(events) {
                Box::pin(settle(handler, deliveries, vec![received], vec![event])).await;
            }
        }
        Outcome::FailedPermanently(error) => {
            for received in &messages {
                deliveries
                    .failed(&received.message, Failure::Permanent, &error)
                    .await;
            }
        }
    }
}
