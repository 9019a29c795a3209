//! The relay: publishes every committed event to JetStream, in commit order, exactly as
//! Postgres has it. There are no dual writes: the api only appends; this is what makes the
//! append visible to workers and analysts, even if the api died right after its commit.
//!
//! - **One active relay per database**: whoever holds the lease (`store::RelayLeases`, an
//!   advisory lock on a dedicated connection). Standbys retry every `takeover_interval`, so
//!   when the active relay dies another takes over within about that time.
//! - **Gap-safe**: it reads only events whose transaction is below the snapshot's xmin, so
//!   an event that commits late is never skipped (it is published when it becomes safe).
//! - **Stored in commit order, even when a publish fails**: a batch is published pipelined,
//!   and each message carries `Nats-Expected-Last-Sequence`, the stream sequence its
//!   predecessor gets, so JetStream stores a message only right after the one before it. If
//!   message k is lost (a leader change, a broken connection), k+1 and later are refused
//!   rather than stored ahead of it. The relay stops at the first failed acknowledgement,
//!   asks the stream where it ends, and resends from the first message not stored; messages
//!   the stream already holds are recognised (its last message's `Nats-Msg-Id`, or JetStream's
//!   deduplication) and not stored twice. So the stream's messages are always a commit-order
//!   run: nothing is stored after a later event. This relies on the relay being the only
//!   publisher (NATS authorization); a foreign message only makes it resynchronise.
//! - **At least once, deduplicated**: a batch's acks are awaited before the checkpoint moves
//!   past it; the checkpoint is saved at most every `checkpoint_interval`, also once the relay
//!   has caught up. A crash republishes what followed the
//!   saved checkpoint with the same `Nats-Msg-Id`s, which JetStream drops within its
//!   duplicate window (and beyond it, the stream's last message shows where the crashed
//!   relay stopped).
//! - **Woken** by append notifications, with a fallback poll; when events are held back by
//!   an open older transaction it asks again soon, backing off while nothing moves. Rounds are
//!   at least `round_interval` apart, so that under load each read and run of publishes
//!   carries what committed meanwhile.
//! - **Retries with backoff** (backon) while NATS or Postgres is down, and catches up after.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use app::{CommitPosition, RecordedEvent, StoreError};
use async_nats::jetstream::{
    self,
    stream::{RawMessageErrorKind, Stream},
};
use backon::{BackoffBuilder, ExponentialBuilder};
use store::{AppendListener, RelayLease, RelayLeases};

use crate::stream_contract::{ensure_stream, headers, message_for, StreamSettings};

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events read and published per round.
    pub batch_size: usize,
    /// Longest wait without a notification before looking for new events anyway.
    pub poll_interval: Duration,
    /// How often a standby tries to take the lease over.
    pub takeover_interval: Duration,
    /// How long to wait for JetStream to acknowledge a batch (one run of pipelined publishes).
    pub publish_timeout: Duration,
    /// The checkpoint is saved at most this often, also once the relay has caught up: a crash
    /// republishes at most this much, which JetStream deduplicates, and a busy relay does not
    /// pay a write per round.
    pub checkpoint_interval: Duration,
    /// The least time between two rounds' reads: a round takes whatever committed meanwhile,
    /// so under load a read and a run of publishes carry many events instead of one each, for
    /// at most this much latency.
    pub round_interval: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            takeover_interval: Duration::from_secs(1),
            publish_timeout: Duration::from_secs(5),
            checkpoint_interval: Duration::from_millis(100),
            round_interval: Duration::from_millis(5),
        }
    }
}

pub struct Relay {
    leases: RelayLeases,
    js: jetstream::Context,
    stream: StreamSettings,
    settings: RelaySettings,
}

impl Relay {
    pub fn new(
        leases: RelayLeases,
        js: jetstream::Context,
        stream: StreamSettings,
        settings: RelaySettings,
    ) -> Self {
        // Reported from the start, not only after the first publish: a process that has
        // published nothing yet is behind by nothing, and an alert or a dashboard on the gauge
        // would otherwise see no series at all until the first event.
        metrics::gauge!("relay_lag_seconds").set(0.0);
        Self {
            leases,
            js,
            stream,
            settings,
        }
    }

    /// Runs until `shutdown` resolves: competes for the lease, leads while it holds it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut failures = backoff();
        loop {
            let attempt = async {
                match self.leases.try_acquire().await {
                    Ok(Some(lease)) => {
                        metrics::gauge!("relay_active").set(1.0);
                        tracing::info!(stream = %self.stream.name, "relay active");
                        let result = self.lead(lease).await;
                        metrics::gauge!("relay_active").set(0.0);
                        result.map(|()| true)
                    }
                    Ok(None) => Ok(false),
                    Err(e) => Err(e),
                }
            };
            let delay = tokio::select! {
                () = &mut shutdown => return,
                result = attempt => match result {
                    // Another process is the active relay: stand by.
                    Ok(_) => {
                        failures = backoff();
                        self.settings.takeover_interval
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "relay stepped down; retrying");
                        failures.next().unwrap_or(Duration::from_secs(5))
                    }
                },
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn lead(&self, mut lease: RelayLease) -> Result<(), StoreError> {
        let result = self.publish_loop(&mut lease).await;
        lease.release().await;
        result
    }

    async fn publish_loop(&self, lease: &mut RelayLease) -> Result<(), StoreError> {
        let mut listener: Option<AppendListener> = None;
        let mut checkpoint = lease.checkpoint().await?;
        let mut saved = SavedCheckpoint::at(checkpoint, self.settings.checkpoint_interval);
        let mut stream: Option<Stream> = None;
        // The sequence of the stream's last message, as the relay's own acks tell it; `None`
        // until asked (at the start, and after a failure).
        let mut tail: Option<u64> = None;
        let mut held_back_rounds = 0u32;
        let mut next_round = tokio::time::Instant::now();
        loop {
            // Rounds are spaced: whatever committed meanwhile goes in one read, one run of
            // publishes (only after a full batch, a backlog, does the next go at once).
            tokio::time::sleep_until(next_round).await;
            next_round = tokio::time::Instant::now() + self.settings.round_interval;
            if listener.is_none() {
                // Without a listener the relay still works, on the fallback poll.
                listener = self.leases.listen().await.ok();
            }
            let batch = lease
                .committed_after(checkpoint, self.settings.batch_size)
                .await?;
            if let Some(last) = batch.events.last() {
                metrics::histogram!("relay_round_events").record(batch.events.len() as f64);
                let stream = match &stream {
                    Some(stream) => stream,
                    None => stream.insert(
                        self.retry_until_ok(|| async {
                            ensure_stream(&self.js, &self.stream)
                                .await
                                .map_err(PublishError::Stream)
                        })
                        .await,
                    ),
                };
                self.publish_in_order(stream, &mut tail, &batch.events)
                    .await;
                checkpoint = last.position;
                saved.save_if_due(lease, checkpoint).await?;
                metrics::counter!("relay_published_total").increment(batch.events.len() as u64);
                let lag = chrono::Utc::now() - last.recorded_at;
                metrics::gauge!("relay_lag_seconds")
                    .set(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
                if batch.events.len() == self.settings.batch_size {
                    next_round = tokio::time::Instant::now();
                    continue;
                }
            }
            if batch.held_back {
                // An older transaction is still open; it will end soon (appends are one
                // statement), and it may not notify (it may not be an append at all). Under
                // load some transaction nearly always is: only rounds that find nothing to
                // publish back off, so a busy relay keeps its pace.
                held_back_rounds = match batch.events.is_empty() {
                    true => held_back_rounds + 1,
                    false => 1,
                };
                let delay = Duration::from_millis(1u64 << held_back_rounds.min(6));
                tokio::time::sleep(delay).await;
                continue;
            }
            held_back_rounds = 0;
            // Caught up: if the checkpoint is behind, wake up when it is due even if no event
            // comes, so that a crash has nothing left to republish.
            let idle_wait = match saved.save_if_due(lease, checkpoint).await? {
                Some(due_in) => due_in.min(self.settings.poll_interval),
                None => self.settings.poll_interval,
            };
            match listener.as_mut() {
                Some(listener) => listener.wait(idle_wait).await,
                None => tokio::time::sleep(idle_wait).await,
            }
        }
    }

    /// Publishes `events` (in commit order) until the stream holds every one of them, in that
    /// order, each once. Runs of pipelined publishes, each stopped by its first failure; the
    /// next run starts from the first event not stored, after asking the stream where it ends.
    async fn publish_in_order(
        &self,
        stream: &Stream,
        tail: &mut Option<u64>,
        events: &[RecordedEvent],
    ) {
        let mut next = 0;
        let mut failures = backoff();
        while next < events.len() {
            let synced = tail.is_none();
            let last_sequence = match *tail {
                Some(last_sequence) => last_sequence,
                None => {
                    let end = self.retry_until_ok(|| stream_end(stream)).await;
                    // The stream's last message is one of these events (a run whose acks were
                    // lost, or a relay that crashed before its checkpoint): it and everything
                    // before it are stored already. Only the relay's own message counts: the
                    // same id and the same envelope, which no one can forge ahead of time.
                    if let Some(last) = &end.last_message {
                        if let Some(stored) =
                            events[next..].iter().position(|e| last.is(&self.stream, e))
                        {
                            next += stored + 1;
                        }
                    }
                    end.last_sequence
                }
            };
            if next == events.len() {
                *tail = Some(last_sequence);
                break;
            }
            let run = self.publish_run(&events[next..], last_sequence).await;
            next += run.stored;
            *tail = run.last_sequence;
            if let Some(error) = run.error {
                metrics::counter!("relay_publish_failures_total").increment(1);
                if run.stored == 0 && synced {
                    let delay = failures.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(%error, ?delay, "relay cannot publish; retrying");
                    tokio::time::sleep(delay).await;
                } else {
                    // Progress, or a stale idea of the stream's end: resend at once.
                    tracing::info!(
                        %error,
                        stored = run.stored,
                        "relay publish run stopped; resending the rest"
                    );
                }
            }
        }
    }

    /// One run: publishes `events` pipelined, the first expecting the stream to end at
    /// `last_sequence` and each next one right after the one before, then awaits the acks in
    /// order (within `publish_timeout`), stopping at the first failure: the events stored are
    /// a prefix of `events`, and only those acknowledged count.
    async fn publish_run(&self, events: &[RecordedEvent], last_sequence: u64) -> PublishRun {
        let mut run = PublishRun {
            stored: 0,
            last_sequence: None,
            error: None,
        };
        let mut acks = Vec::with_capacity(events.len());
        for (offset, event) in (0u64..).zip(events) {
            let message = match message_for(&self.stream, event) {
                Ok(message) => message,
                Err(e) => {
                    run.error = Some(PublishError::Serialise {
                        event: event.event_id().to_string(),
                        error: e,
                    });
                    break;
                }
            };
            let (subject, message) = message.into_publish();
            // Nats-Expected-Last-Sequence: 0 is not checked; only the first message on an empty
            // stream has it, and it has no predecessor to overtake.
            let message = message.expected_last_sequence(last_sequence + offset);
            match self.js.send_publish(subject, message).await {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    run.error = Some(PublishError::Publish(e.into()));
                    break;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.settings.publish_timeout;
        for ack in acks {
            match tokio::time::timeout_at(deadline, ack).await {
                Ok(Ok(ack)) => {
                    run.stored += 1;
                    // Stored now, so the stream ends there. A duplicate was stored before
                    // (within the duplicate window) and does not move the end; the message
                    // after it, expecting it did, is refused, and the run stops there.
                    if !ack.duplicate {
                        run.last_sequence = Some(ack.sequence);
                    }
                }
                Ok(Err(e)) => {
                    run.error = Some(PublishError::Ack(e.into()));
                    break;
                }
                Err(_) => {
                    run.error = Some(PublishError::AckTimeout(self.settings.publish_timeout));
                    break;
                }
            }
        }
        if run.error.is_some() {
            // Messages after the failure may still be stored: ask the stream.
            run.last_sequence = None;
        }
        run
    }

    /// NATS being down is not a reason to give up the lease: keep it and keep trying, so the
    /// relay catches up as soon as NATS is back.
    async fn retry_until_ok<T, F, Fut>(&self, mut attempt: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PublishError>>,
    {
        let mut delays = backoff();
        loop {
            match attempt().await {
                Ok(value) => return value,
                Err(e) => {
                    metrics::counter!("relay_publish_failures_total").increment(1);
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, "relay cannot publish; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// How one run of pipelined publishes ended.
struct PublishRun {
    /// Events acknowledged as stored (new or duplicate), from the first.
    stored: usize,
    /// The stream's last sequence after the run, when the acks tell it for certain (a run that
    /// stopped early leaves it unknown).
    last_sequence: Option<u64>,
    /// Why the run stopped before its end.
    error: Option<PublishError>,
}

/// Why the relay could not publish (it keeps its lease and tries again). Only logged, so each
/// message carries its cause.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("cannot reach the stream: {0}")]
    Stream(async_nats::Error),
    #[error("cannot serialise event {event}: {error}")]
    Serialise {
        event: String,
        error: serde_json::Error,
    },
    #[error("publish failed: {0}")]
    Publish(async_nats::Error),
    #[error("publish refused: {0}")]
    Ack(async_nats::Error),
    #[error("no publish ack within {0:?}")]
    AckTimeout(Duration),
    #[error("cannot read where the stream ends: {0}")]
    StreamEnd(async_nats::Error),
}

/// Where the stream ends: its last sequence, and the message there (if it is still there).
struct StreamEnd {
    last_sequence: u64,
    last_message: Option<StoredMessage>,
}

struct StoredMessage {
    id: Option<String>,
    body: Vec<u8>,
}

impl StoredMessage {
    /// Whether this is the relay's message for `event`.
    fn is(&self, settings: &StreamSettings, event: &RecordedEvent) -> bool {
        self.id.as_deref() == Some(event.event_id().to_string().as_str())
            && message_for(settings, event).is_ok_and(|message| message.body == self.body)
    }
}

async fn stream_end(stream: &Stream) -> Result<StreamEnd, PublishError> {
    let state = stream
        .get_info()
        .await
        .map_err(|e| PublishError::StreamEnd(e.into()))?
        .state;
    let last_message = if state.messages == 0 {
        None
    } else {
        match stream.get_raw_message(state.last_sequence).await {
            Ok(message) => Some(StoredMessage {
                id: message
                    .headers
                    .get(headers::MSG_ID)
                    .map(|id| id.as_str().to_owned()),
                body: message.payload.to_vec(),
            }),
            // Deleted since: nothing to recognise; deduplication still drops what is stored.
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(PublishError::StreamEnd(e.into())),
        }
    };
    Ok(StreamEnd {
        last_sequence: state.last_sequence,
        last_message,
    })
}

/// Unbounded, jittered exponential backoff from 50 ms up to 5 s.
fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The checkpoint as last saved, and when: saved again at most every `interval`.
struct SavedCheckpoint {
    position: CommitPosition,
    at: tokio::time::Instant,
    interval: Duration,
}

impl SavedCheckpoint {
    fn at(position: CommitPosition, interval: Duration) -> Self {
        Self {
            position,
            at: tokio::time::Instant::now(),
            interval,
        }
    }

    /// Saves `position` if it moved and the interval has passed since the last save; if it
    /// moved and is not due yet, how long until it is.
    async fn save_if_due(
        &mut self,
        lease: &mut RelayLease,
        position: CommitPosition,
    ) -> Result<Option<Duration>, StoreError> {
        if position == self.position {
            return Ok(None);
        }
        let due = self.at + self.interval;
        let now = tokio::time::Instant::now();
        if now < due {
            return Ok(Some(due - now));
        }
        lease.save_checkpoint(position).await?;
        *self = Self::at(position, self.interval);
        Ok(None)
    }
}
