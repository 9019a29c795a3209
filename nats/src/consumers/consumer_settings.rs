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
    /// Failed deliveries (while Postgres answers) before a message is given up on and becomes a
    /// dead letter. Counted by the worker, not the server (see `pull_config`).
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
/// process that asks for the same name). An existing consumer is brought to `settings` (the
/// settings that can change; where it delivers from stays as it is, e.g. after a replay).
pub async fn durable_pull_consumer(
    stream: &Stream,
    name: &str,
    filter_subject: String,
    settings: &ConsumerSettings,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
    let wanted = pull_config(name, filter_subject, settings);
    let mut consumer = stream.get_or_create_consumer(name, wanted.clone()).await?;
    let current = consumer.cached_info().config.clone();
    if (
        current.max_deliver,
        &current.backoff,
        current.ack_wait,
        current.max_ack_pending,
    ) != (
        wanted.max_deliver,
        &wanted.backoff,
        wanted.ack_wait,
        wanted.max_ack_pending,
    ) {
        let updated = pull::Config {
            deliver_policy: current.deliver_policy,
            ..wanted
        };
        // The server's create is an update for a durable that exists (editable fields only).
        consumer = stream.create_consumer(updated).await?;
    }
    Ok(consumer)
}

/// A durable consumer's settings, delivering from the start of the stream.
///
/// The server is given no delivery limit (`max_deliver` -1): the worker counts the failures
/// that are the message's own and records a dead letter after `settings.max_deliver` of them.
/// A server-side limit would drop a message for good whenever the last delivery could not be
/// recorded (Postgres down), and would count outages against messages. Without a limit the
/// server takes no backoff list either: the worker's naks carry the redelivery delays, and a
/// message whose worker died (no ack, no in-progress ack) comes back after the ack wait.
pub(crate) fn pull_config(
    name: &str,
    filter_subject: String,
    settings: &ConsumerSettings,
) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject,
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: settings.ack_wait(),
        max_deliver: -1,
        max_ack_pending: settings.max_ack_pending,
        ..Default::default()
    }
}
