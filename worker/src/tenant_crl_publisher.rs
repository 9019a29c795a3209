//! The loop that keeps tenants' CAs answering relying parties: every tenant CA's CRL current
//! (`app::pki::TenantCrlPublication`) and the api's OCSP responder key certified by each of
//! them (`app::pki::ResponderCertification`), checked every `CRL_MIN_INTERVAL_MS` as the
//! platform CA's CRL is, a pass bounded in time and stopped by the shutdown token. Every
//! worker runs it: two at once is harmless (the CRL repository keeps one per number, a newer
//! signer certificate replaces an older one).

use std::sync::Arc;
use std::time::Duration;

use app::pki::{ResponderCertification, TenantCrlPublication};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

/// The longest one pass over the tenants' CAs may take.
const PASS_DEADLINE: Duration = Duration::from_secs(120);

pub struct TenantCrlPublisher {
    publication: Arc<TenantCrlPublication>,
    responders: Arc<ResponderCertification>,
    interval: Duration,
}

impl TenantCrlPublisher {
    pub fn new(
        publication: Arc<TenantCrlPublication>,
        responders: Arc<ResponderCertification>,
        interval: Duration,
    ) -> Self {
        Self {
            publication,
            responders,
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
            let certified = tokio::select! {
                () = cancel.cancelled() => return,
                certified = tokio::time::timeout(PASS_DEADLINE, self.responders.certify_due(Utc::now())) => certified,
            };
            match certified {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the OCSP responder keys; retrying")
                }
                Err(_) => tracing::warn!("certifying OCSP responder keys took too long; retrying"),
            }
        }
    }
}
