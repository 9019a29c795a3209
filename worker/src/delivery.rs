//! What happens to a message after a consumer tried it: ack, redeliver later, or give up and
//! keep it as a dead letter. Shared by every consumer of the worker.

use std::future::Future;
use std::time::Duration;

use app::EventEnvelope;
use async_nats::jetstream::message::Message;
use async_nats::jetstream::AckKind;
use backon::{ExponentialBuilder, Retryable};
use nats::{headers, ConsumerSettings};
use store::{DeadLetter, PostgresDeadLetters};

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Might work later (a dependency is down): redeliver, until `max_deliver`.
    Transient,
    /// Will never work (the message cannot be read): dead-letter it now.
    Permanent,
}

#[derive(Clone)]
pub struct Deliveries {
    consumer: String,
    settings: ConsumerSettings,
    dead_letters: PostgresDeadLetters,
}

impl Deliveries {
    pub fn new(
        consumer: impl Into<String>,
        settings: ConsumerSettings,
        dead_letters: PostgresDeadLetters,
    ) -> Self {
        Self {
            consumer: consumer.into(),
            settings,
            dead_letters,
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub async fn succeeded(&self, message: &Message) {
        if let Err(e) = message.ack().await {
            // The message will be redelivered; handling it again is harmless (idempotent).
            tracing::warn!(consumer = %self.consumer, error = %e, "ack failed");
        }
    }

    pub async fn failed(&self, message: &Message, failure: Failure, error: &str) {
        let delivered = message.info().map_or(1, |i| i.delivered);
        let last = failure == Failure::Permanent || delivered >= self.settings.max_deliver;
        tracing::warn!(
            consumer = %self.consumer,
            event_id = header(message, headers::MSG_ID).unwrap_or_default(),
            subject = %message.subject,
            delivered,
            last_delivery = last,
            error,
            "message failed"
        );
        if !last {
            let delay = self.settings.redelivery_delay(delivered);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            metrics::counter!("consumer_redeliveries_total", "consumer" => self.consumer.clone())
                .increment(1);
            return;
        }
        let letter = DeadLetter {
            consumer: self.consumer.clone(),
            event_id: header(message, headers::MSG_ID)
                .and_then(|id| uuid::Uuid::parse_str(&id).ok())
                .unwrap_or_default(),
            subject: message.subject.to_string(),
            stream_sequence: message.info().map_or(0, |i| i.stream_sequence),
            tenant: header(message, headers::TENANT),
            deliveries: u64::try_from(delivered).unwrap_or(0),
            error: error.to_owned(),
            payload: String::from_utf8_lossy(&message.payload).into_owned(),
        };
        let recorded = (|| self.dead_letters.record(&letter))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_times(5),
            )
            .await;
        match recorded {
            Ok(()) => {
                metrics::counter!("dead_letters_total", "consumer" => self.consumer.clone())
                    .increment(1);
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(e) => {
                // Leave the message unacknowledged: the server redelivers it after its ack
                // wait if deliveries remain, and the event stays in Postgres for a replay.
                tracing::error!(consumer = %self.consumer, error = %e, "could not record a dead letter");
            }
        }
    }
}

/// An error with its causes (`outer: inner: root`), for logs and dead letters: the outermost
/// message alone ("a dependency is unavailable") does not tell an operator what to fix.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// The span of handling one message, a child of the span that produced its event (its
/// `traceparent` header); `Span::none()` when traces are not exported, so that the hot path
/// creates nothing.
pub fn consumer_span(
    name: &'static str,
    message: &Message,
    envelope: &EventEnvelope,
    traceparent: Option<&str>,
) -> tracing::Span {
    if !bootstrap::traces_enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "message",
        otel.name = name,
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        messaging.message.id = %envelope.id,
        messaging.delivery_count = message.info().map_or(1, |i| i.delivered),
        device_id = %envelope.subject,
        event_type = envelope.event_type(),
    );
    bootstrap::continue_trace(&span, traceparent);
    span
}

/// Runs `work` while telling the server, every `interval`, that the message is still being
/// worked on, so that slow work is not redelivered to another worker meanwhile.
pub async fn with_progress<T>(
    message: &Message,
    interval: Duration,
    work: impl Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}
