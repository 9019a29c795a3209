//! Keeping one consumer's live loop going: bound again to its durable consumer whenever the
//! message stream fails (NATS down, consumer deleted by a replay), with backoff, until the
//! worker stops.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// `work`'s result, or `None` if the worker is cancelled first (for steps that hold no
/// message, such as binding to a consumer while NATS is down).
pub(crate) async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        () = cancel.cancelled() => None,
    }
}

/// Runs `consume` again whenever it ends with an error (NATS down, consumer deleted), with
/// backoff, until cancelled. `consume` must return soon after `cancel` fires, once the
/// messages it holds are settled.
pub(crate) async fn keep_consuming<F, Fut>(name: &str, cancel: &CancellationToken, mut consume: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), async_nats::Error>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    while !cancel.is_cancelled() {
        // Not raced against `cancel`: a consumer stops pulling when cancelled and finishes
        // (and acks) the messages in hand; dropping it would cancel them wherever they wait.
        // The shutdown grace period bounds how long that may take.
        let result = consume().await;
        if cancel.is_cancelled() {
            return;
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        match result {
            Ok(()) => tracing::info!(consumer = name, "message stream ended; resubscribing"),
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, ?delay, "consumer failed; retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return,
        }
    }
}
