//! Replaying the stream for one durable consumer: it is deleted and created again with the
//! same settings, delivering from a point (a time, or the first message after a commit-order
//! position), so that its handler sees those events again. Other consumers are not touched.
//!
//! The handlers are idempotent (the provisioner signs only open requests, the projectors only
//! move rows forward), so a replay re-applies what was missed and repeats nothing.
//! Workers consuming it notice the deletion and bind to the new consumer by themselves.

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use chrono::{DateTime, Utc};

use crate::consumer_settings::pull_config;
use crate::stream_contract::headers;
use crate::ConsumerSettings;
use app::CommitPosition;

/// Where a consumer replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStart {
    /// Messages published at or after this time.
    Time(DateTime<Utc>),
    /// Messages of events committed after this position.
    After(CommitPosition),
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

/// The first stream sequence whose event committed after `after` (the relay publishes in
/// commit order, so the stream is sorted by position: a binary search over direct gets).
async fn first_sequence_after(
    stream: &mut Stream,
    after: CommitPosition,
) -> Result<u64, async_nats::Error> {
    let state = stream.info().await?.state.clone();
    let (mut low, mut high) = (state.first_sequence, state.last_sequence + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        let position = match stream.get_raw_message(middle).await {
            Ok(message) => message
                .headers
                .get(headers::POSITION)
                .and_then(|v| CommitPosition::from_cursor(v.as_str()).ok()),
            // A message removed from the middle: treat it as old.
            Err(_) => None,
        };
        match position {
            Some(position) if position > after => high = middle,
            _ => low = middle + 1,
        }
    }
    Ok(low)
}
