//! What happens to a message after its handler tried it: ack, redeliver later, or give up and
//! keep it as a dead letter. Shared by every consumer.
//!
//! **Outages do not count as a message's failures.** A transient failure while Postgres does
//! not answer is the outage's, not the message's: the consumer holds the message (in-progress
//! acks keep it, so its delivery count does not grow), waits until Postgres answers again and
//! tries once more ([`Deliveries::through_outages`]). Only failures while the dependencies are
//! up count towards `CONSUMER_MAX_DELIVER`; past it the message becomes a dead letter.
//!
//! **No message is forgotten.** The server never gives up on a message by itself (its consumers
//! have no delivery limit: the limit is ours); a message is acked only once it is handled or
//! recorded as a dead letter, so one whose dead letter cannot be written yet is delivered
//! again.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::message::Message;
use async_nats::jetstream::AckKind;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use store::{DatabaseProbe, DeadLetter, PostgresDeadLetters};
use tokio_util::sync::CancellationToken;

use super::consumer_settings::ConsumerSettings;
use super::event_handler::Outcome;
use super::intake::{self, InHand, Received};
use crate::stream_contract::headers;

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Might work later (a dependency is down): redeliver, until `max_deliver`.
    Transient,
    /// Will never work (the message cannot be read): dead-letter it now.
    Permanent,
}

/// How long one check that Postgres answers may take.
const DEPENDENCY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(crate) struct Deliveries {
    consumer: String,
    settings: ConsumerSettings,
    dead_letters: PostgresDeadLetters,
    /// The dependency whose outage must not count against messages: Postgres.
    database: DatabaseProbe,
    cancel: CancellationToken,
    /// The messages received and not settled yet (kept with in-progress acks).
    in_hand: InHand,
    /// The connection pull requests go out on.
    client: async_nats::Client,
}

impl Deliveries {
    pub fn new(
        consumer: impl Into<String>,
        settings: ConsumerSettings,
        dead_letters: PostgresDeadLetters,
        database: DatabaseProbe,
        cancel: CancellationToken,
        client: async_nats::Client,
    ) -> Self {
        let in_hand = InHand::keep(settings.ack_wait() / 3);
        Self {
            consumer: consumer.into(),
            settings,
            dead_letters,
            database,
            cancel,
            in_hand,
            client,
        }
    }

    /// Receives from `consumer`, at most `room` messages in hand at a time (see `intake`).
    pub fn receive(
        &self,
        consumer: Consumer<pull::Config>,
        room: usize,
    ) -> tokio::sync::mpsc::UnboundedReceiver<Result<Received, async_nats::Error>> {
        intake::receive(
            self.client.clone(),
            consumer,
            room,
            self.in_hand.clone(),
            self.cancel.clone(),
        )
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Runs `attempt` for `messages` messages (in hand: kept with in-progress acks) and
    /// returns its outcome, except that neither [`Outcome::Transient`] while Postgres does not
    /// answer nor [`Outcome::DependencyUnavailable`] is returned: the messages are held until
    /// Postgres answers again, or for a while (with backoff) when another dependency is down,
    /// then `attempt` runs once more. Returns the last outcome if the worker is stopping
    /// meanwhile.
    pub async fn through_outages<F, Fut>(&self, messages: usize, mut attempt: F) -> Outcome
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut dependency_down: Option<Held> = None;
        loop {
            match attempt().await {
                outcome @ Outcome::Transient(_) if !self.database_answers().await => {
                    if !self.hold_until_database_answers(messages).await {
                        return outcome;
                    }
                }
                Outcome::DependencyUnavailable(error) => {
                    let held = dependency_down.get_or_insert_with(|| {
                        tracing::warn!(
                            consumer = %self.consumer,
                            messages,
                            error,
                            "a dependency does not answer; holding the messages and trying again \
                             until it does (an outage is not their failure)"
                        );
                        Held::new(&self.consumer, messages)
                    });
                    let pause = held.next_pause();
                    let waited = tokio::select! {
                        () = tokio::time::sleep(pause) => true,
                        () = self.cancel.cancelled() => false,
                    };
                    if !waited {
                        return Outcome::DependencyUnavailable(error);
                    }
                }
                outcome => {
                    if dependency_down.is_some() {
                        tracing::info!(consumer = %self.consumer, "the dependency answers again");
                    }
                    return outcome;
                }
            }
        }
    }

    async fn database_answers(&self) -> bool {
        self.database.answers(DEPENDENCY_CHECK_TIMEOUT).await
    }

    /// Holds `messages` messages (in hand, so kept with in-progress acks) until Postgres
    /// answers; false if the worker stops first.
    async fn hold_until_database_answers(&self, messages: usize) -> bool {
        tracing::warn!(
            consumer = %self.consumer,
            messages,
            "Postgres does not answer; holding the messages until it does (an outage is not their failure)"
        );
        let held = metrics::gauge!("consumer_messages_held", "consumer" => self.consumer.clone());
        held.increment(messages as f64);
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .without_max_times()
            .build();
        let back = loop {
            let pause = delays.next().unwrap_or(Duration::from_secs(2));
            let waited = tokio::select! {
                () = tokio::time::sleep(pause) => true,
                () = self.cancel.cancelled() => false,
            };
            if !waited {
                break false;
            }
            if self.database_answers().await {
                break true;
            }
        };
        held.decrement(messages as f64);
        if back {
            tracing::info!(consumer = %self.consumer, "Postgres answers again; trying the held messages");
        }
        back
    }

    pub async fn succeeded(&self, message: &Message) {
        self.in_hand.release(message);
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
            self.in_hand.release(message);
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
            .retry(recording_retries())
            .await;
        match recorded {
            Ok(()) => {
                metrics::counter!("dead_letters_total", "consumer" => self.consumer.clone())
                    .increment(1);
                self.in_hand.release(message);
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(e) => {
                // Not recorded, so not given up on: the server has no delivery limit of its
                // own and delivers it again, and we try to record it again then.
                tracing::error!(consumer = %self.consumer, error = %e, "could not record a dead letter; the message will be delivered again");
                let delay = self.settings.redelivery_delay(delivered);
                self.in_hand.release(message);
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
        }
    }
}

/// How hard a consumer tries, in place, to record a message's fate in Postgres (a dead
/// letter here; a retried dead letter's outcome, in the worker) before leaving it to be done
/// again later.
pub fn recording_retries() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_times(5)
}

pub(crate) fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Messages held while a dependency is down: counted in `consumer_messages_held` for as long
/// as this lives, tried again after growing pauses.
struct Held {
    gauge: metrics::Gauge,
    messages: f64,
    pauses: backon::ExponentialBackoff,
}

impl Held {
    fn new(consumer: &str, messages: usize) -> Self {
        let gauge = metrics::gauge!("consumer_messages_held", "consumer" => consumer.to_owned());
        gauge.increment(messages as f64);
        Self {
            gauge,
            messages: messages as f64,
            pauses: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .without_max_times()
                .build(),
        }
    }

    fn next_pause(&mut self) -> Duration {
        self.pauses.next().unwrap_or(Duration::from_secs(2))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.decrement(self.messages);
    }
}
