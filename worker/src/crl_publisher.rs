//! Keeps the CA's CRL current: re-issues it when revocations changed (at most once per
//! `min_interval`, however fast revocations arrive) and before its `nextUpdate` even when
//! nothing changed. Its cost is bounded as the list grows: after a CRL that took `d` to
//! make, the next waits at least `PAUSE_PER_WORK × d`, so that producing CRLs takes at most
//! a fifth of a core even when a million-entry list is re-signed on every change. The decision and the publication are `app::pki::CrlPublication`'s; this
//! is the loop around it, bounded and stopped by the shutdown token.

use std::time::{Duration, Instant};

use app::pki::{CrlPublication, CrlPublished};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

/// When CRLs are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlSchedule {
    /// `nextUpdate − thisUpdate`; a CRL is re-issued once half of it has passed.
    pub validity: Duration,
    /// At most one CRL per this interval; also how often revocations are checked.
    pub min_interval: Duration,
}

/// The rest after producing a CRL, per unit of time it took.
const PAUSE_PER_WORK: u32 = 4;

/// Runs [`CrlPublication::publish_if_due`] every `min_interval` until `cancel`.
pub struct CrlPublisher {
    publication: CrlPublication,
    schedule: CrlSchedule,
}

impl CrlPublisher {
    pub fn new(publication: CrlPublication, schedule: CrlSchedule) -> Self {
        Self {
            publication,
            schedule,
        }
    }

    /// Makes sure the CA has a current CRL before anything else happens: run before the
    /// provisioner starts, so that no certificate naming this CA's distribution point exists
    /// while the point answers 404 (relying parties checking CRLs would refuse every device
    /// of a fresh deployment). Retries until a CRL is there or `cancel`; whether it is.
    pub async fn publish_first(&self, cancel: &CancellationToken) -> bool {
        loop {
            if self.round().await.is_some() {
                return true;
            }
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(self.schedule.min_interval) => {}
            }
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let mut pause = self.schedule.min_interval;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let round = tokio::select! {
                _ = cancel.cancelled() => return,
                round = self.round() => round,
            };
            pause = self.schedule.min_interval;
            if let Some(took) = round {
                pause = pause.max(took * PAUSE_PER_WORK);
            }
        }
    }

    /// One round: publishes a CRL if one is due. `Some(time it took)` when the CA has a
    /// current CRL after it (published now or already there), `None` after a failure.
    async fn round(&self) -> Option<Duration> {
        // Signing a list of a million entries takes seconds: bound one round, so that a
        // stuck database cannot hold the loop (it is retried on the next tick).
        let bound = self.schedule.min_interval.max(Duration::from_secs(60));
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(bound, self.publication.publish_if_due(Utc::now())).await;
        match outcome {
            Ok(Ok(CrlPublished::Published(header))) => {
                let took = started.elapsed();
                let seconds = took.as_secs_f64();
                metrics::counter!("crl_published_total").increment(1);
                metrics::gauge!("crl_entries").set(header.entries as f64);
                metrics::gauge!("crl_number").set(header.number as f64);
                metrics::histogram!("crl_publish_seconds").record(seconds);
                tracing::info!(
                    crl_number = header.number,
                    entries = header.entries,
                    seconds,
                    "CRL published"
                );
                Some(took)
            }
            Ok(Ok(CrlPublished::NotDue | CrlPublished::Superseded)) => Some(Duration::ZERO),
            Ok(Err(e)) => {
                metrics::counter!("crl_publish_failures_total").increment(1);
                tracing::warn!(error = %e, "cannot publish the CRL; retrying");
                None
            }
            Err(_) => {
                metrics::counter!("crl_publish_failures_total").increment(1);
                tracing::warn!(
                    bound_seconds = bound.as_secs(),
                    "publishing the CRL timed out; retrying"
                );
                None
            }
        }
    }
}
