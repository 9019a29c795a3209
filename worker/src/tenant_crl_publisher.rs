//! The loop around `app::pki::TenantCrlPublication`: every tenant CA's CRL kept current, checked
//! every `CRL_MIN_INTERVAL_MS` as the platform CA's is, a pass bounded in time and stopped by
//! the shutdown token. Every worker runs it: two publishing at once is harmless (the CRL
//! repository keeps one per number).

use std::sync::Arc;
use std::time::Duration;

use app::pki::TenantCrlPublication;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

/// The longest one pass over the tenants' CAs may take.
const PASS_DEADLINE: Duration = Duration::from_secs(120);

pub struct TenantCrlPublisher {
    publication: Arc<TenantCrlPublication>,
    interval: Duration,
}

impl TenantCrlPublisher {
    pub fn new(publication: Arc<TenantCrlPublication>, interval: Duration) -> Self {
        Self {
            publication,
            interval,
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
            let pass = tokio::select! {
                () = cancel.cancelled() => return,
                pass = tokio::time::timeout(PASS_DEADLINE, self.publication.publish_due(Utc::now())) => pass,
            };
            match pass {
                Ok(Ok(pass)) => {
                    if pass.published > 0 {
                        metrics::counter!("crl_published_total").increment(pass.published as u64);
                    }
                    if pass.failed > 0 {
                        metrics::counter!("crl_publish_failures_total")
                            .increment(pass.failed as u64);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the tenants' CAs for their CRLs; retrying")
                }
                Err(_) => tracing::warn!("publishing the tenants' CRLs took too long; retrying"),
            }
        }
    }
}
