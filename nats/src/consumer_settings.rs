//! How the workers' durable pull consumers are configured: explicit acks, a bound on
//! unacknowledged messages, and a bounded number of deliveries with growing delays.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::Stream;

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Messages handed out and not yet acknowledged, across all processes sharing the
    /// consumer. Bounds memory and the work lost when a worker dies.
    pub max_ack_pending: i64,
    /// Deliveries before a message is given up on (then it becomes a dead letter).
    pub max_deliver: i64,
    /// Redelivery delays after the 1st, 2nd, … failed delivery; the last repeats. Also how
    /// long the server waits for an ack (or an in-progress ack) before redelivering.
    pub backoff: Vec<Duration>,
}

impl ConsumerSettings {
    /// The delay before the next delivery after `delivered` deliveries failed.
    pub fn redelivery_delay(&self, delivered: i64) -> Duration {
        let index = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    /// How long the server waits for an ack of the first delivery: in-progress acks must come
    /// more often than this.
    pub fn ack_wait(&self) -> Duration {
        self.backoff
            .first()
            .copied()
            .unwrap_or(Duration::from_secs(30))
    }
}

/// The durable consumer `name` on `stream`, created if missing (shared by every worker
/// process that asks for the same name).
pub async fn durable_pull_consumer(
    stream: &Stream,
    name: &str,
    filter_subject: String,
    settings: &ConsumerSettings,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
    let config = pull_config(name, filter_subject, settings);
    Ok(stream.get_or_create_consumer(name, config).await?)
}

/// A durable consumer's settings, delivering from the start of the stream.
pub(crate) fn pull_config(
    name: &str,
    filter_subject: String,
    settings: &ConsumerSettings,
) -> pull::Config {
    // The server requires max_deliver > len(backoff).
    let backoff: Vec<Duration> = settings
        .backoff
        .iter()
        .copied()
        .take(usize::try_from(settings.max_deliver.saturating_sub(1)).unwrap_or(0))
        .collect();
    pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject,
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: settings.ack_wait(),
        max_deliver: settings.max_deliver,
        max_ack_pending: settings.max_ack_pending,
        backoff,
        ..Default::default()
    }
}
