//! Carries out the dead-letter retries operators request (`POST /admin/dead-letters/{id}/retry`,
//! `api dead-letters retry`): claims them (each by exactly one worker), processes the stored
//! message as its consumer would, and records the result: `retried`, or `dead` again with the
//! new error. A discarded letter is never claimed. A claim is a lease
//! (`DEAD_LETTER_RETRY_LEASE_SECONDS`): if this worker dies or cannot record the outcome, the
//! retry is taken up again once the lease has expired.
//!
//! Processing is the consumers' own (`ConsumerRegistry::handle_again`), and as idempotent: a
//! retried registration that was settled meanwhile issues nothing, and the projector only
//! moves rows forward.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use nats::recording_retries;

use store::PostgresDeadLetters;
use tokio_util::sync::CancellationToken;

use crate::consumer_registry::ConsumerRegistry;
use bootstrap::describe;

/// How often requested retries are looked for.
const POLL: Duration = Duration::from_secs(1);
const CLAIM: usize = 16;

pub struct DeadLetterRetrier {
    dead_letters: PostgresDeadLetters,
    consumers: Arc<ConsumerRegistry>,
    /// How long a claim is held: past it, another worker takes the retry up again.
    lease: Duration,
}

impl DeadLetterRetrier {
    pub fn new(
        dead_letters: PostgresDeadLetters,
        consumers: Arc<ConsumerRegistry>,
        lease: Duration,
    ) -> Self {
        Self {
            dead_letters,
            consumers,
            lease,
        }
    }

    pub async fn run(&self, cancel: &CancellationToken) {
        let names = self.consumers.names();
        let consumers: Vec<&str> = names.iter().map(String::as_str).collect();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
            let claims = match self
                .dead_letters
                .claim_retries(&consumers, CLAIM, self.lease)
                .await
            {
                Ok(claims) => claims,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for dead-letter retries");
                    continue;
                }
            };
            for claim in claims {
                let outcome = self
                    .consumers
                    .handle_again(&claim.consumer, &claim.payload)
                    .await
                    .map_err(|e| describe(&e));
                match &outcome {
                    Ok(()) => tracing::info!(
                        dead_letter = %claim.id,
                        consumer = %claim.consumer,
                        subject = %claim.subject,
                        "dead letter retried"
                    ),
                    Err(e) => tracing::warn!(
                        dead_letter = %claim.id,
                        consumer = %claim.consumer,
                        subject = %claim.subject,
                        error = %e,
                        "dead letter failed again"
                    ),
                }
                let label = if outcome.is_ok() { "retried" } else { "failed" };
                metrics::counter!("dead_letter_retries_total", "consumer" => claim.consumer.clone(), "outcome" => label)
                    .increment(1);
                let recorded = (|| self.dead_letters.finish_retry(&claim, outcome.clone()))
                    .retry(recording_retries())
                    .await;
                match recorded {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        dead_letter = %claim.id,
                        "the retry's claim expired before its outcome was recorded; another worker takes it up"
                    ),
                    // Still `retrying`: the claim expires and the retry is taken up again.
                    Err(e) => {
                        tracing::error!(dead_letter = %claim.id, error = %e, "could not record a retry's outcome; it will be retried when its claim expires")
                    }
                }
            }
        }
    }
}
