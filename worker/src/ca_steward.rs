//! The loop around `app::CaStewardship`: tenants' CAs made, rotated on schedule and retired,
//! by one worker process at a time (the one holding the `ca-stewardship` lease: keys are made
//! in the key store, and a PKCS#11 token must not be asked for one key twice at once). The
//! others wait for the lease. Stops through the cancellation token; a pass has a deadline.

use std::sync::Arc;
use std::time::Duration;

use app::CaStewardship;
use store::{ExclusiveLease, ExclusiveLeases};
use tokio_util::sync::CancellationToken;

/// The longest one pass may take (each CA made within its own deadline inside).
const PASS_DEADLINE: Duration = Duration::from_secs(120);

pub struct CaSteward {
    stewardship: Arc<CaStewardship>,
    leases: ExclusiveLeases,
    interval: Duration,
}

impl CaSteward {
    pub fn new(
        stewardship: Arc<CaStewardship>,
        leases: ExclusiveLeases,
        interval: Duration,
    ) -> Self {
        Self {
            stewardship,
            leases,
            interval,
        }
    }

    pub async fn run(self, cancel: CancellationToken) {
        let mut lease: Option<ExclusiveLease> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
            let held = match lease.as_mut() {
                Some(held) => held.still_held().await,
                None => false,
            };
            if !held {
                lease = match self.leases.try_acquire().await {
                    Ok(Some(acquired)) => {
                        tracing::info!("this worker tends the tenants' CAs");
                        Some(acquired)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ask for the CA stewardship lease");
                        None
                    }
                };
                if lease.is_none() {
                    continue;
                }
            }
            let pass = tokio::select! {
                () = cancel.cancelled() => break,
                pass = tokio::time::timeout(PASS_DEADLINE, self.stewardship.tend()) => pass,
            };
            match pass {
                Ok(Ok(0)) => {}
                Ok(Ok(acted)) => tracing::info!(commands = acted, "tended the tenants' CAs"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the tenants' CAs; trying again")
                }
                Err(_) => {
                    tracing::warn!("a pass over the tenants' CAs took too long; trying again")
                }
            }
        }
        if let Some(lease) = lease {
            lease.release().await;
        }
    }
}
