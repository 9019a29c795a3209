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

    pub async fn run(self, cancel: CancellationToken) {
        let mut pause = self.schedule.min_interval;
        // Signing a list of a million entries takes seconds: bound one round, so that a
        // stuck database cannot hold the loop (it is retried on the next tick).
        let bound = self.schedule.min_interval.max(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let started = Instant::now();
            let round = tokio::time::timeout(bound, self.publication.publish_if_due(Utc::now()));
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                outcome = round => outcome,
            };
            pause = self.schedule.min_interval;
            match outcome {
                Ok(Ok(CrlPublished::Published(header))) => {
                    let took = started.elapsed();
                    pause = pause.max(took * PAUSE_PER_WORK);
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
                }
                Ok(Ok(CrlPublished::NotDue | CrlPublished::Superseded)) => {}
                Ok(Err(e)) => {
                    metrics::counter!("crl_publish_failures_total").increment(1);
                    tracing::warn!(error = %e, "cannot publish the CRL; retrying");
                }
                Err(_) => {
                    metrics::counter!("crl_publish_failures_total").increment(1);
                    tracing::warn!(
                        bound_seconds = bound.as_secs(),
                        "publishing the CRL timed out; retrying"
                    );
                }
            }
        }
    }
}
