//! The relay: publishes every committed event to JetStream, in commit order, exactly as
//! Postgres has it. There are no dual writes: the api only appends; this is what makes the
//! append visible to workers and analysts, even if the api died right after its commit.
//!
//! - **One active relay per database**: whoever holds the lease (`store::RelayLeases`, an
//!   advisory lock on a dedicated connection). Standbys retry every `takeover_interval`, so
//!   when the active relay dies another takes over within about that time.
//! - **Gap-safe**: it reads only events whose transaction is below the snapshot's xmin, so
//!   an event that commits late is never skipped (it is published when it becomes safe).
//! - **At least once, deduplicated**: a batch is published (pipelined), its acks awaited,
//!   then the checkpoint saved. A crash in between republishes the batch with the same
//!   `Nats-Msg-Id`s, which JetStream drops within its duplicate window.
//! - **Woken** by append notifications, with a fallback poll; when events are held back by
//!   an open older transaction it asks again soon, backing off.
//! - **Retries with backoff** (backon) while NATS or Postgres is down, and catches up after.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use app::{RecordedEvent, StoreError};
use async_nats::jetstream;
use backon::{BackoffBuilder, ExponentialBuilder};
use store::{AppendListener, RelayLease, RelayLeases};

use crate::stream_contract::{ensure_stream, message_for, StreamSettings};

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events read and published per round.
    pub batch_size: usize,
    /// Longest wait without a notification before looking for new events anyway.
    pub poll_interval: Duration,
    /// How often a standby tries to take the lease over.
    pub takeover_interval: Duration,
    /// How long to wait for JetStream to acknowledge a batch.
    pub publish_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            takeover_interval: Duration::from_secs(1),
            publish_timeout: Duration::from_secs(5),
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
        let mut stream_ready = false;
        let mut held_back_rounds = 0u32;
        loop {
            if listener.is_none() {
                // Without a listener the relay still works, on the fallback poll.
                listener = self.leases.listen().await.ok();
            }
            let batch = lease
                .committed_after(checkpoint, self.settings.batch_size)
                .await?;
            if let Some(last) = batch.events.last() {
                if !stream_ready {
                    self.retry_until_ok(|| async {
                        ensure_stream(&self.js, &self.stream)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                    .await;
                    stream_ready = true;
                }
                self.retry_until_ok(|| self.publish(&batch.events)).await;
                checkpoint = last.position;
                lease.save_checkpoint(checkpoint).await?;
                metrics::counter!("relay_published_total").increment(batch.events.len() as u64);
                let lag = chrono::Utc::now() - last.recorded_at;
                metrics::gauge!("relay_lag_seconds")
                    .set(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
                if batch.events.len() == self.settings.batch_size {
                    continue;
                }
            }
            if batch.held_back {
                // An older transaction is still open; it will end soon (appends are one
                // statement), and it may not notify (it may not be an append at all).
                held_back_rounds += 1;
                let delay = Duration::from_millis(2u64 << held_back_rounds.min(5));
                tokio::time::sleep(delay).await;
                continue;
            }
            held_back_rounds = 0;
            match listener.as_mut() {
                Some(listener) => listener.wait(self.settings.poll_interval).await,
                None => tokio::time::sleep(self.settings.poll_interval).await,
            }
        }
    }

    /// Publishes the batch pipelined (JetStream keeps one connection's publishes in order),
    /// then waits for every acknowledgement.
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), String> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let (subject, message) = message_for(&self.stream, event)
                .map_err(|e| format!("cannot serialise event {}: {e}", event.event_id()))?
                .into_publish();
            let ack = self
                .js
                .send_publish(subject, message)
                .await
                .map_err(|e| format!("publish: {e}"))?;
            acks.push(ack);
        }
        let all = async {
            for ack in acks {
                ack.await.map_err(|e| format!("publish ack: {e}"))?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(self.settings.publish_timeout, all)
            .await
            .map_err(|_| "timed out waiting for publish acks".to_owned())?
    }

    /// NATS being down is not a reason to give up the lease: keep it and keep trying, so the
    /// relay catches up as soon as NATS is back.
    async fn retry_until_ok<F, Fut>(&self, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut delays = backoff();
        loop {
            match attempt().await {
                Ok(()) => return,
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

/// Unbounded, jittered exponential backoff from 50 ms up to 5 s.
fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}
