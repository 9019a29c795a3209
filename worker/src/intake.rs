//! How a consumer takes messages from JetStream: only as many as it has room for, and every
//! message taken stays *in hand*, kept with in-progress acks, until it is settled (acked,
//! redelivered later, or terminated as a dead letter).
//!
//! Why: the server delivers a message again once its ack wait passes. A message waiting in a
//! client buffer behind slow work (a slow batch, a Postgres outage being waited out) would be
//! delivered again: work done twice, and a delivery counted against the message although it
//! never failed. So the intake never prefetches beyond its free room, never abandons a pull
//! request half-way (a message delivered to an abandoned request waits unseen for its ack
//! wait), and registers every message it receives with [`InHand`], whose keeper sends the
//! in-progress acks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::message::Message;
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long one pull request waits for a first message: also how soon the intake notices
/// that the worker is stopping.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// A received message and its place among the consumer's messages in hand: the place is free
/// again when this is dropped (once the message is settled).
pub struct Received {
    pub message: Message,
    _place: OwnedSemaphorePermit,
}

/// The messages a consumer has received and not settled yet, by their ack subject. A keeper
/// task sends each an in-progress ack every interval, for as long as it is here.
#[derive(Clone, Default)]
pub struct InHand {
    messages: Arc<Mutex<HashMap<String, Message>>>,
}

impl InHand {
    /// Starts the keeper (it ends when the last clone of this is dropped).
    pub fn keep(interval: Duration) -> Self {
        let in_hand = Self::default();
        let messages = Arc::downgrade(&in_hand.messages);
        tokio::spawn(send_progress(messages, interval));
        in_hand
    }

    fn hold(&self, message: &Message) {
        if let Some(reply) = &message.reply {
            self.lock().insert(reply.to_string(), message.clone());
        }
    }

    /// The message is settled: no more in-progress acks.
    pub fn release(&self, message: &Message) {
        if let Some(reply) = &message.reply {
            self.lock().remove(reply.as_str());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Message>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn send_progress(messages: Weak<Mutex<HashMap<String, Message>>>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        ticks.tick().await;
        let Some(messages) = messages.upgrade() else {
            return;
        };
        let held: Vec<Message> = messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        drop(messages);
        for message in held {
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}

/// The next batch from an intake: waits for a first message, then gathers more until
/// `max` are in hand or `linger` has passed since the first (at once when `linger` is zero:
/// whatever is already there). `None` once the intake has ended. An error ends the batch (it
/// is its last item) as it ends the intake.
///
/// Why linger: at moderate rates messages come one by one, and every batch costs its handler
/// a transaction (projectors) or a round of reads and appends (the provisioner) however small
/// it is. Waiting a few milliseconds for company divides that cost by the batch size, for a
/// latency bounded by `linger`; under load batches fill before it passes.
pub async fn next_batch(
    intake: &mut mpsc::UnboundedReceiver<Result<Received, async_nats::Error>>,
    max: usize,
    linger: Duration,
) -> Option<Vec<Result<Received, async_nats::Error>>> {
    let first = intake.recv().await?;
    let deadline = tokio::time::Instant::now() + linger;
    let mut batch = vec![first];
    while batch.len() < max && batch.last().is_some_and(Result::is_ok) {
        let next = match intake.try_recv() {
            Ok(next) => next,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, intake.recv()).await {
                    Ok(Some(next)) => next,
                    Ok(None) | Err(_) => break,
                }
            }
        };
        batch.push(next);
    }
    Some(batch)
}

/// Receives from `consumer` until `cancel`, at most `room` messages in hand at a time: each
/// received message is registered in `in_hand` and handed over with its place. An error
/// (NATS unreachable, the consumer deleted) is handed over too, and ends the intake.
pub fn receive(
    consumer: Consumer<pull::Config>,
    room: usize,
    in_hand: InHand,
    cancel: CancellationToken,
) -> mpsc::UnboundedReceiver<Result<Received, async_nats::Error>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let places = Arc::new(Semaphore::new(room.max(1)));
    tokio::spawn(async move {
        while !cancel.is_cancelled() {
            // Wait for room (the consumer settles what it holds meanwhile).
            let first_place = tokio::select! {
                place = places.clone().acquire_owned() => place.expect("never closed"),
                () = cancel.cancelled() => return,
                () = sender.closed() => return,
            };
            let received = pull(&consumer, first_place, &places, &in_hand).await;
            match received {
                Ok(messages) => {
                    for message in messages {
                        if sender.send(Ok(message)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = sender.send(Err(e));
                    return;
                }
            }
        }
    });
    receiver
}

/// One round: waits (up to [`PULL_WAIT`]) for a first message, then takes what else is there
/// right now, as much as there is room for. Both requests run to their end, so no message is
/// delivered to a request nobody reads.
async fn pull(
    consumer: &Consumer<pull::Config>,
    first_place: OwnedSemaphorePermit,
    places: &Arc<Semaphore>,
    in_hand: &InHand,
) -> Result<Vec<Received>, async_nats::Error> {
    let mut first = consumer
        .batch()
        .max_messages(1)
        .expires(PULL_WAIT)
        .messages()
        .await?;
    let mut received = Vec::new();
    let mut first_place = Some(first_place);
    while let Some(message) = first.next().await {
        let message = message?;
        if let Some(place) = first_place.take() {
            in_hand.hold(&message);
            received.push(Received {
                message,
                _place: place,
            });
        }
    }
    if received.is_empty() {
        return Ok(received);
    }
    let more_places: Vec<OwnedSemaphorePermit> =
        std::iter::from_fn(|| places.clone().try_acquire_owned().ok()).collect();
    if more_places.is_empty() {
        return Ok(received);
    }
    let mut more = consumer
        .fetch()
        .max_messages(more_places.len())
        .messages()
        .await?;
    let mut more_places = more_places.into_iter();
    while let Some(message) = more.next().await {
        // What was received so far is handed over whatever happens next: it is in hand.
        let Ok(message) = message else {
            break;
        };
        let Some(place) = more_places.next() else {
            break;
        };
        in_hand.hold(&message);
        received.push(Received {
            message,
            _place: place,
        });
    }
    Ok(received)
}
