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
use async_nats::jetstream::{self, AckKind};
use async_nats::StatusCode;
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long one pull request waits for its messages: also how soon the intake notices that
/// the worker is stopping.
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
/// Why linger: at moderate rates messages come one by one, and every batch costs a projector
/// a transaction however small it is. Waiting a few milliseconds for company divides that cost by the batch size, for a
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
///
/// One subscription for the intake's life, and one pull request per round, for as many
/// messages as there is room for, delivered as they come (see [`PullRequests`]). (Not
/// async-nats's `batch()`/`fetch()`: each subscribes and unsubscribes a new inbox, two per
/// round, which at a few hundred messages a second cost the worker and the server more than
/// the messages did; nor its `stream()`, which keeps requesting ahead of what is in hand.)
pub fn receive(
    client: async_nats::Client,
    consumer: Consumer<pull::Config>,
    room: usize,
    in_hand: InHand,
    cancel: CancellationToken,
) -> mpsc::UnboundedReceiver<Result<Received, async_nats::Error>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let places = Arc::new(Semaphore::new(room.max(1)));
    tokio::spawn(async move {
        let mut requests = match PullRequests::open(client, &consumer).await {
            Ok(requests) => requests,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        };
        while !cancel.is_cancelled() {
            // Wait for room (the consumer settles what it holds meanwhile).
            let first_place = tokio::select! {
                place = places.clone().acquire_owned() => place.expect("never closed"),
                () = cancel.cancelled() => return,
                () = sender.closed() => return,
            };
            let mut reserved = vec![first_place];
            reserved.extend(std::iter::from_fn(|| {
                places.clone().try_acquire_owned().ok()
            }));
            if let Err(e) = requests
                .round(reserved, &places, &in_hand, |received| {
                    sender.send(Ok(received)).is_ok()
                })
                .await
            {
                let _ = sender.send(Err(e));
                return;
            }
        }
    });
    receiver
}

/// Pull requests on one inbox: a round asks for as many messages as places were reserved,
/// waiting up to [`PULL_WAIT`] for them, and hands each over as it arrives. One request is
/// outstanding at a time, so every status the server sends on the inbox (408: the request
/// expired; 409: it was ended) is about that request. A round runs to the request's end (or
/// until a grace period past its expiry, if the end never comes), so no message is left for a
/// request nobody reads; one that arrives late still lands on the inbox and is taken in hand
/// by the next round.
struct PullRequests {
    client: async_nats::Client,
    context: jetstream::Context,
    subject: String,
    inbox: String,
    subscription: async_nats::Subscriber,
    /// The stream and consumer pulled from: a message whose ack subject names another is not
    /// this intake's (see [`PullRequests::is_own`]).
    stream: String,
    consumer: String,
}

/// How long past its expiry a round waits for the end of its request before giving it up.
/// Short: the server does not always say at once that a request expired (measured: stalls of
/// up to the whole grace, about twice a minute, at 200 messages a second with 2 s), and a
/// message that comes meanwhile waits for the next request. Giving up early is safe: the
/// expired request can deliver nothing more, and anything already on its way lands on the
/// same inbox and is taken by the next round.
const PULL_GRACE: Duration = Duration::from_millis(50);

impl PullRequests {
    async fn open(
        client: async_nats::Client,
        consumer: &Consumer<pull::Config>,
    ) -> Result<Self, async_nats::Error> {
        let info = consumer.cached_info();
        // The JetStream API's default prefix, which `crate::connect` uses (no domains).
        let subject = format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
            info.stream_name, info.name
        );
        let inbox = client.new_inbox();
        let subscription = client.subscribe(inbox.clone()).await?;
        Ok(Self {
            context: jetstream::new(client.clone()),
            client,
            subject,
            inbox,
            subscription,
            stream: info.stream_name.clone(),
            consumer: info.name.clone(),
        })
    }

    /// Whether `message` was delivered by this intake's consumer, as its ack subject says.
    ///
    /// Why: anyone allowed to create a consumer can make the server push that consumer's
    /// messages to any subject, this inbox included. Taking such a message as our own would
    /// ack it for its consumer (or record it as our dead letter) and put its delivery count in
    /// our decisions. The ack subject is the server's (a client cannot publish to our inbox),
    /// so it names the consumer that delivered the message.
    fn is_own(&self, message: &jetstream::Message) -> bool {
        message
            .info()
            .is_ok_and(|info| info.stream == self.stream && info.consumer == self.consumer)
    }

    /// One request for `reserved.len()` messages; `hand_over` gets each with a place and
    /// says whether anyone still takes them.
    async fn round(
        &mut self,
        mut reserved: Vec<OwnedSemaphorePermit>,
        places: &Arc<Semaphore>,
        in_hand: &InHand,
        mut hand_over: impl FnMut(Received) -> bool,
    ) -> Result<(), async_nats::Error> {
        let wanted = reserved.len();
        let request = serde_json::json!({
            "batch": wanted,
            "expires": PULL_WAIT.as_nanos() as u64,
        });
        self.client
            .publish_with_reply(
                self.subject.clone(),
                self.inbox.clone(),
                request.to_string().into(),
            )
            .await?;
        let give_up = tokio::time::Instant::now() + PULL_WAIT + PULL_GRACE;
        let mut delivered = 0;
        while delivered < wanted {
            let message = match tokio::time::timeout_at(give_up, self.subscription.next()).await {
                Err(_) => return Ok(()),
                Ok(None) => return Err("the intake's subscription ended".into()),
                Ok(Some(message)) => message,
            };
            match message.status {
                None | Some(StatusCode::OK) if message.reply.is_some() => {
                    let message = jetstream::Message {
                        message,
                        context: self.context.clone(),
                    };
                    if !self.is_own(&message) {
                        tracing::warn!(
                            consumer = %self.consumer,
                            ack_subject = message.reply.as_deref().unwrap_or_default(),
                            "a message not of its consumer came to its inbox; ignored (not acked)"
                        );
                        metrics::counter!("consumer_foreign_messages_total", "consumer" => self.consumer.clone())
                            .increment(1);
                        continue;
                    }
                    // In hand from now on, whether or not a place is free for it yet (a
                    // message of an earlier, given-up request may come now).
                    in_hand.hold(&message);
                    let place = match reserved.pop() {
                        Some(place) => place,
                        None => places.clone().acquire_owned().await.expect("never closed"),
                    };
                    delivered += 1;
                    if !hand_over(Received {
                        message,
                        _place: place,
                    }) {
                        return Ok(());
                    }
                }
                Some(StatusCode::IDLE_HEARTBEAT) => {}
                Some(StatusCode::REQUEST_TERMINATED) => {
                    let reason = message.description.unwrap_or_default();
                    // The consumer is gone or cannot be pulled: rebinding is the remedy.
                    // Otherwise (a leadership change, too many waiting requests) ask again.
                    if reason.contains("Deleted") || reason.contains("push based") {
                        return Err(format!("pull request ended: {reason}").into());
                    }
                    return Ok(());
                }
                // 408 (expired with fewer messages than asked), 404, or anything else: this
                // request is over.
                Some(_) => return Ok(()),
                None => {}
            }
        }
        Ok(())
    }
}
