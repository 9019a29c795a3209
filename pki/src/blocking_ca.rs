//! The issuing CAs as `app::CertificateAuthority`: each request checked and signed by the CA
//! its issuer names (`issuing_cas.rs`) on Tokio's blocking pool, at most `concurrency` at a
//! time, never on the async runtime's threads (signing is CPU-bound, and a key in a device may
//! block).

use std::sync::Arc;

use app::{CaUnavailable, CertificateAuthority, CertificateRequest, Issuer};
use async_trait::async_trait;
use chrono::Utc;
use domain::{IssuedCertificate, ProvisioningFailure};
use tokio::sync::Semaphore;

use crate::IssuingCas;

/// [`IssuingCas`] on the blocking pool, bounded.
pub struct BlockingCa {
    cas: Arc<IssuingCas>,
    permits: Arc<Semaphore>,
}

impl BlockingCa {
    pub fn new(cas: Arc<IssuingCas>, concurrency: usize) -> Self {
        Self {
            cas,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }
}

#[async_trait]
impl CertificateAuthority for BlockingCa {
    async fn issue(
        &self,
        request: CertificateRequest,
        issuer: Issuer,
    ) -> Result<Result<IssuedCertificate, ProvisioningFailure>, CaUnavailable> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CaUnavailable("the CA is shutting down".into()))?;
        let cas = self.cas.clone();
        tokio::task::spawn_blocking(move || {
            let ca = cas.for_issuer(&issuer)?;
            // The signing moment is the certificate's (its notBefore is five minutes before).
            let now = Utc::now();
            if let Issuer::Tenant { until, .. } = &issuer {
                if now >= *until {
                    // Decided too long ago: a newer CA may have taken over. Decide again.
                    return Err(CaUnavailable(
                        "the decision which CA signs is out of date; deciding again".into(),
                    ));
                }
            }
            ca.issue_verified(&request, now)
        })
        .await
        .map_err(|e| CaUnavailable(format!("the signing task failed: {e}")))?
    }
}
