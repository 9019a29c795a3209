//! What a durable consumer's handler is to this crate: it is given the events of the messages
//! its consumer took, decoded, and says how handling them went; everything about the messages
//! themselves (taking, keeping, acking, redelivering, dead letters) stays in this crate.
//!
//! A handler never sees a NATS message: it cannot ack one by mistake, or act on anything the
//! message says beyond the envelope and its delivery (its facts it reads from Postgres).

use std::time::Duration;

use app::EventEnvelope;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

/// One message a consumer took, as its handler sees it: the event's envelope (event id,
/// tenant, aggregate id, sequence, commit position, the event) and what its delivery says.
#[derive(Debug, Clone)]
pub struct DeliveredEvent {
    pub envelope: EventEnvelope,
    /// The NATS subject it came on (`<prefix>.<tenant>.device.<EventType>`).
    pub subject: String,
    /// How many times the server has delivered it, this time included.
    pub delivered: i64,
    /// W3C trace context of the command that produced the event (its `traceparent` header).
    pub traceparent: Option<String>,
}

/// How handling some events went: what becomes of their messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: the messages are acked.
    Done,
    /// Failed in a way a dependency's outage explains. While Postgres does not answer the
    /// messages are held (kept with in-progress acks, their delivery count does not grow) and
    /// handled again once it does: an outage is not their failure. If Postgres answers, the
    /// failure counts, as [`Outcome::Failed`]'s does for a single message.
    Transient(String),
    /// A dependency other than Postgres does not answer (the CA, whose key may be in an HSM):
    /// the messages are held as through a Postgres outage (in hand, their delivery count does
    /// not grow) and handled again, with backoff, until the outcome is another. Nothing
    /// becomes a dead letter because a dependency is down.
    DependencyUnavailable(String),
    /// Failed on the messages' own account. A batch of several is handled again one message
    /// at a time, so that one bad message does not hold the others back; a single message is
    /// delivered again after the consumer's backoff, and becomes a dead letter once
    /// `max_deliver` deliveries failed.
    Failed(String),
    /// Will never work (the message cannot be read): a dead letter now.
    FailedPermanently(String),
}

/// How a handler takes its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One message per [`EventHandler::handle`], up to `in_flight` of them at once (their reads
    /// and appends overlap).
    Concurrently { in_flight: usize },
    /// Batches of up to `max` messages, one batch after another; a batch waits at most
    /// `linger` after its first message for more (zero: whatever is there already).
    Batches { max: usize, linger: Duration },
}

/// A durable consumer's handler. It must be idempotent: a message may come again (a
/// redelivery, a replay), and events are handled again after an outage or, one by one, after
/// their batch failed.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// How it takes its messages.
    fn pace(&self) -> Pace;

    /// Work before consuming, such as a read model filling itself from the event store;
    /// returns early when `cancel` fires.
    async fn prepare(&self, _cancel: &CancellationToken) {}

    /// Handles `events` (one, or a batch, as its [`Pace`] says), with one outcome for all.
    async fn handle(&self, events: &[DeliveredEvent]) -> Outcome;
}
