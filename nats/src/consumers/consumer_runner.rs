//! Running durable consumers: each is bound to its durable JetStream consumer (created if
//! missing), its handler prepares once, and it consumes, bound again whenever its message
//! stream fails (NATS down, the consumer deleted by a replay), until the shutdown token is
//! cancelled; and the lag gauges of them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_nats::jetstream;
use store::{DatabaseProbe, PostgresDeadLetters};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::consumer_lag::report_consumer_lag;
use super::consumer_loop::{keep_consuming, unless_cancelled};
use super::consumer_settings::{durable_pull_consumer, ConsumerSettings};
use super::delivery::Deliveries;
use super::event_handler::EventHandler;
use super::handling::consume;
use crate::stream_contract::{ensure_stream, StreamSettings};

/// What every consumer of a process shares: the connection, the stream, the consumers'
/// settings, where dead letters go and the dependency whose outage must not count against
/// messages (Postgres).
#[derive(Clone)]
pub struct ConsumerRunner {
    client: async_nats::Client,
    stream: StreamSettings,
    settings: ConsumerSettings,
    dead_letters: PostgresDeadLetters,
    database: DatabaseProbe,
}

impl ConsumerRunner {
    pub fn new(
        client: async_nats::Client,
        stream: StreamSettings,
        settings: ConsumerSettings,
        dead_letters: PostgresDeadLetters,
        database: DatabaseProbe,
    ) -> Self {
        Self {
            client,
            stream,
            settings,
            dead_letters,
            database,
        }
    }

    /// The stream consumed (for the consumers' subject filters).
    pub fn stream(&self) -> &StreamSettings {
        &self.stream
    }

    /// Spawns the live loop of durable consumer `name`, taking `filter_subject`, into
    /// `tasks`: it stops pulling when `cancel` fires, settles the messages in hand and ends.
    pub fn spawn(
        &self,
        tasks: &mut JoinSet<()>,
        name: &str,
        filter_subject: String,
        handler: Arc<dyn EventHandler>,
        cancel: &CancellationToken,
    ) {
        let deliveries = Deliveries::new(
            name,
            self.settings.clone(),
            self.dead_letters.clone(),
            self.database.clone(),
            cancel.clone(),
            self.client.clone(),
        );
        let js = jetstream::new(self.client.clone());
        let (name, stream, settings, cancel) = (
            name.to_owned(),
            self.stream.clone(),
            self.settings.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            // The durable consumer is bound before the handler prepares (a read model
            // filling itself from history may take a while): it exists from the start, and
            // the stream keeps what arrives meanwhile for it.
            let prepared = AtomicBool::new(false);
            keep_consuming(&name, &cancel, || async {
                let bound = async {
                    let stream = ensure_stream(&js, &stream).await?;
                    durable_pull_consumer(&stream, &name, filter_subject.clone(), &settings).await
                };
                let Some(bound) = unless_cancelled(&cancel, bound).await else {
                    return Ok(());
                };
                let bound = bound?;
                if !prepared.load(Ordering::Relaxed) {
                    handler.prepare(&cancel).await;
                    prepared.store(true, Ordering::Relaxed);
                }
                consume(handler.as_ref(), &deliveries, bound).await
            })
            .await
        });
    }

    /// Spawns the lag gauges of the consumers `names` (`consumer_pending`,
    /// `consumer_ack_pending`) into `tasks`, until `cancel` fires.
    pub fn spawn_lag_gauges(
        &self,
        tasks: &mut JoinSet<()>,
        names: Vec<String>,
        cancel: &CancellationToken,
    ) {
        let (js, stream, cancel) = (
            jetstream::new(self.client.clone()),
            self.stream.name.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            tokio::select! {
                () = report_consumer_lag(js, stream, names) => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}
