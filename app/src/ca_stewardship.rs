//! Tending tenants' CAs, the worker's side of their life: a CA that waits for its key and
//! certificate gets them (`CaMaker`, the key made in the key store under a name derived from
//! the CA's events, so a crashed attempt finds its key again) and is certified; an issuing CA
//! whose end is nearer than the rotation lead (its certificates would be cut short) is
//! rotated; a rotated-out CA whose own end has passed, so nothing it issued is still valid, is
//! retired. Every decision is the aggregate's (`TenantCaService`), taken from its events.
//!
//! One pass is [`CaStewardship::tend`]; the worker runs it in a loop, in one process at a time.
//! A tenant's CAs are looked at again when their events changed, and every `recheck` for the
//! rules that depend on time.
//!
//! Must not: make keys or certificates itself (`CaMaker`: `pki`), or hold key material.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    CaCertificate, CaKeyReference, CaState, TenantCa, TenantCas, TenantCasError, TenantCasId,
};

use crate::{
    CaCommandError, CaUnavailable, CommandMetadata, RunError, StoreError, TenantCaService,
};

/// Port: every tenant's CAs and their versions.
#[async_trait]
pub trait TenantCaDirectory: Send + Sync + 'static {
    async fn versions(&self) -> Result<Vec<(TenantCasId, u64)>, StoreError>;
}

/// Port: makes a CA's key (or finds it, by name) and certificate: a root's self-signed, an
/// issuing CA's signed by its tenant's root.
#[async_trait]
pub trait CaMaker: Send + Sync + 'static {
    async fn make(
        &self,
        cas: &TenantCas,
        ca: &TenantCa,
        key_name: String,
    ) -> Result<(CaKeyReference, CaCertificate), CaUnavailable>;
}

/// Why a pass stopped early: what it could not read. A CA that could not be made is logged
/// and tried again on the next pass; it does not stop the others.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StewardshipError(#[from] StoreError);

pub struct CaStewardship {
    directory: Arc<dyn TenantCaDirectory>,
    service: Arc<TenantCaService>,
    maker: Arc<dyn CaMaker>,
    /// An issuing CA is rotated once less than this is left of it.
    rotation_lead: chrono::Duration,
    recheck: Duration,
    /// The version each tenant's CAs were last tended at, and when.
    tended: Mutex<HashMap<TenantCasId, (u64, Instant)>>,
}

impl CaStewardship {
    pub fn new(
        directory: Arc<dyn TenantCaDirectory>,
        service: Arc<TenantCaService>,
        maker: Arc<dyn CaMaker>,
        rotation_lead: chrono::Duration,
        recheck: Duration,
    ) -> Self {
        Self {
            directory,
            service,
            maker,
            rotation_lead,
            recheck,
            tended: Mutex::new(HashMap::new()),
        }
    }

    /// One pass over every tenant's CAs; returns how many commands it had accepted.
    pub async fn tend(&self) -> Result<usize, StewardshipError> {
        let mut acted = 0;
        for (id, version) in self.directory.versions().await? {
            if !self.is_due(id, version) {
                continue;
            }
            let loaded = self.service.load(id).await?;
            let done = self.tend_one(&loaded.aggregate, Utc::now()).await;
            acted += done;
            // Tended at this version: a CA it could not make (done = 0 and work left) is tried
            // again on the next pass, not after `recheck`.
            if done > 0 || loaded.aggregate.next_to_certify().is_none() {
                self.lock().insert(id, (loaded.version, Instant::now()));
            }
        }
        Ok(acted)
    }

    fn is_due(&self, id: TenantCasId, version: u64) -> bool {
        match self.lock().get(&id) {
            Some((seen, at)) => *seen != version || at.elapsed() >= self.recheck,
            None => true,
        }
    }

    /// Acts on one tenant's CAs; how many commands were accepted.
    async fn tend_one(&self, cas: &TenantCas, now: DateTime<Utc>) -> usize {
        let Some(tenant) = cas.tenant() else {
            return 0;
        };
        let metadata = CommandMetadata {
            tenant: tenant.clone(),
            actor: "worker".to_owned(),
            request_id: "ca-stewardship".to_owned(),
            traceparent: None,
        };
        let mut acted = 0;
        if let Some(ca) = cas.next_to_certify() {
            let key_name = TenantCasId::of(tenant).key_name(ca.generation);
            match self.maker.make(cas, ca, key_name).await {
                Ok((key, certificate)) => {
                    let certified = self
                        .service
                        .certify(metadata.clone(), ca.generation, key, certificate)
                        .await;
                    acted += accepted("certify", tenant.as_str(), certified);
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant.as_str(), generation = ca.generation.get(), error = %e,
                        "cannot make the CA's key or certificate yet; trying again");
                }
            }
            // Rotations and retirements wait until the CAs being made are made.
            return acted;
        }
        if self.rotation_due(cas, now) {
            let rotated = self.service.rotate_on_schedule(metadata.clone()).await;
            acted += accepted("rotate", tenant.as_str(), rotated);
        }
        for ca in cas.issuing() {
            let ended = ca
                .certified
                .as_ref()
                .is_some_and(|c| c.certificate.not_after <= now);
            if ca.state == CaState::Rotating && ended {
                let retired = self.service.retire(metadata.clone(), ca.generation).await;
                acted += accepted("retire", tenant.as_str(), retired);
            }
        }
        acted
    }

    /// Whether the newest certified issuing CA (the one that issues, or is about to) ends
    /// within the rotation lead, and a successor made now would end meaningfully later (it
    /// cannot outlive the root: a root near its end is the operator's to replace).
    fn rotation_due(&self, cas: &TenantCas, now: DateTime<Utc>) -> bool {
        let Some(newest) = cas
            .issuing()
            .iter()
            .rev()
            .find(|ca| ca.certified.is_some() && ca.state != CaState::Revoked)
        else {
            return false;
        };
        let (Some(current), Some(root)) = (
            &newest.certified,
            cas.root().and_then(|r| r.certified.as_ref()),
        ) else {
            return false;
        };
        let ends = current.certificate.not_after;
        if ends - now >= self.rotation_lead {
            return false;
        }
        let successor_ends = (now + chrono::Duration::days(newest.spec.validity_days.into()))
            .min(root.certificate.not_after);
        let helps = successor_ends > ends + chrono::Duration::days(1);
        if !helps {
            tracing::warn!(
                tenant = %cas.tenant().map(|t| t.as_str()).unwrap_or_default(),
                "the tenant's issuing CA ends within the rotation lead, and a successor would not \
                 last longer (its root ends first, or its validity is shorter than the lead)"
            );
        }
        helps
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantCasId, (u64, Instant)>> {
        self.tended.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 1 if the command was accepted and did something; a refusal the state explains (another
/// worker got there first) is 0, anything else is logged.
fn accepted(
    what: &'static str,
    tenant: &str,
    result: Result<crate::Decision<TenantCas>, CaCommandError>,
) -> usize {
    match result {
        Ok(decision) => usize::from(decision.events_appended > 0),
        Err(RunError::Rejected(
            TenantCasError::RotationInProgress
            | TenantCasError::AlreadyCertified
            | TenantCasError::StillIssuing,
        )) => 0,
        Err(e) => {
            tracing::warn!(tenant, command = what, error = ?e, "a CA command failed; trying again");
            0
        }
    }
}
