//! Replaying the stream for one durable consumer: it is deleted and created again with the
//! same settings, delivering from a point (a time, or the first message after a commit-order
//! position), so that its handler sees those events again. Other consumers are not touched.
//!
//! The handlers are idempotent (the provisioner signs only open requests, the projectors only
//! move rows forward), so a replay re-applies what was missed and repeats nothing.
//! Workers consuming it notice the deletion and bind to the new consumer by themselves.

use std::time::Duration;

use app::CommitPosition;
use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use chrono::{DateTime, Utc};

use super::consumer_settings::{pull_config, ConsumerSettings};
use crate::stream_contract::{headers, StreamSettings};
use crate::{connect, NatsError, NatsSettings};

/// Where a consumer replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStart {
    /// Messages published at or after this time.
    Time(DateTime<Utc>),
    /// Messages of events committed after this position.
    After(CommitPosition),
}

/// [`replay_consumer`] on a connection of its own (`nats`), to the stream `stream` names:
/// for a process that does nothing else with NATS (`worker replay`). The connection is
/// drained before this returns.
pub async fn replay_durable_consumer(
    nats: &NatsSettings,
    stream: &StreamSettings,
    name: &str,
    filter_subject: String,
    settings: &ConsumerSettings,
    start: ReplayStart,
) -> Result<Option<u64>, NatsError> {
    let client = connect(nats).await?;
    let js = jetstream::new(client.clone());
    let replayed = async {
        let mut stream = js
            .get_stream(&stream.name)
            .await
            .map_err(|e| NatsError::Stream {
                stream: stream.name.clone(),
                source: e.into(),
            })?;
        replay_consumer(&mut stream, name, filter_subject, settings, start)
            .await
            .map_err(|source| NatsError::RecreateConsumer {
                consumer: name.to_owned(),
                source,
            })
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.drain()).await;
    replayed
}

/// Recreates consumer `name` (filtering `filter_subject`) to deliver from `start`; returns the
/// first stream sequence it will deliver (for a time start, as the server decides it).
pub async fn replay_consumer(
    stream: &mut Stream,
    name: &str,
    filter_subject: String,
    settings: &ConsumerSettings,
    start: ReplayStart,
) -> Result<Option<u64>, async_nats::Error> {
    let (deliver_policy, first) = match start {
        ReplayStart::Time(time) => {
            let nanos = time
                .timestamp_nanos_opt()
                .ok_or("replay time out of range")?;
            let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))?;
            (DeliverPolicy::ByStartTime { start_time }, None)
        }
        ReplayStart::After(position) => {
            let sequence = first_sequence_after(stream, position).await?;
            (
                DeliverPolicy::ByStartSequence {
                    start_sequence: sequence,
                },
                Some(sequence),
            )
        }
    };
    let mut config: pull::Config = pull_config(name, filter_subject, settings);
    config.deliver_policy = deliver_policy;
    // Deleting may fail because it does not exist yet; creating is what matters.
    let _ = stream.delete_consumer(name).await;
    stream.create_consumer(config).await?;
    Ok(first)
}

/// The first message still in the stream whose event committed after `after`, or the
/// sequence the next message will get if there is none.
///
/// The relay keeps the stream sorted by position (each message is stored only right after the
/// one before it, `Nats-Expected-Last-Sequence`), so this is a binary search. A sequence may
/// hold no message, though: one deleted from the middle, or one without a readable
/// `Dp-Position` (not the relay's). Such a sequence is never taken for old or new: each probe
/// asks the server for the first message at or after it (`next_by_subj`) and skips forward
/// over any without a position, so the search decides only on the relay's messages and a
/// gap costs one request, not a scan.
async fn first_sequence_after(
    stream: &mut Stream,
    after: CommitPosition,
) -> Result<u64, async_nats::Error> {
    let state = stream.info().await?.state.clone();
    // The answer is in [low, high] or is `found`: every positioned message at or after `high`
    // committed after `after`, and none before `low` did.
    let (mut low, mut high) = (state.first_sequence, state.last_sequence + 1);
    let mut found = high;
    while low < high {
        let middle = low + (high - low) / 2;
        match first_positioned_at_or_after(stream, middle, high).await? {
            Some((sequence, position)) if position > after => {
                // Everything in [middle, sequence) is missing or not the relay's.
                found = sequence;
                high = middle;
            }
            Some((sequence, _)) => low = sequence + 1,
            None => high = middle,
        }
    }
    Ok(found)
}

/// The first message in `[from, below)` that carries a commit-order position, with it.
async fn first_positioned_at_or_after(
    stream: &Stream,
    mut from: u64,
    below: u64,
) -> Result<Option<(u64, CommitPosition)>, async_nats::Error> {
    while from < below {
        let message = match stream.get_first_raw_message_by_subject(">", from).await {
            Ok(message) => message,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if message.sequence >= below {
            return Ok(None);
        }
        let position = message
            .headers
            .get(headers::POSITION)
            .and_then(|v| CommitPosition::from_cursor(v.as_str()).ok());
        match position {
            Some(position) => return Ok(Some((message.sequence, position))),
            None => from = message.sequence + 1,
        }
    }
    Ok(None)
}
