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

    fn rotation_due(&self, cas: &TenantCas, now: DateTime<Utc>) -> bool {
        rotation_due(cas, now, self.rotation_lead)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantCasId, (u64, Instant)>> {
        self.tended.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether the newest certified issuing CA of `cas` (the one that issues, or is about to)
/// ends within `lead` of `now`, and a successor made now would end meaningfully later (it
/// cannot outlive the root: a root near its end is the operator's to replace).
fn rotation_due(cas: &TenantCas, now: DateTime<Utc>, lead: chrono::Duration) -> bool {
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
    if ends - now >= lead {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cqrs_es::Aggregate;
    use domain::{
        CaCertificate, CaCommonName, CaGeneration, CaKeyCurve, CaSpec, IssuingCaId, TenantCasEvent,
        TenantId,
    };

    fn at(days: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(days)
    }

    fn spec(days: u32) -> CaSpec {
        CaSpec {
            curve: CaKeyCurve::P256,
            common_name: CaCommonName::parse("CA").unwrap(),
            validity_days: days,
        }
    }

    fn certified(generation: u32, from: i64, days: i64) -> TenantCasEvent {
        TenantCasEvent::CaCertified {
            generation: CaGeneration::new(generation),
            key: CaKeyReference::recorded(format!("file:ca-{generation}")),
            certificate: CaCertificate {
                pem: String::new(),
                serial: format!("{generation:02x}"),
                id: IssuingCaId::recorded(format!("{generation:016x}")),
                not_before: at(from),
                not_after: at(from + days),
            },
            issues_from: at(from),
        }
    }

    /// A root of ten years and an issuing CA of `issuing_days`, both certified on day 0.
    fn cas(issuing_days: u32) -> TenantCas {
        let mut cas = TenantCas::default();
        for event in [
            TenantCasEvent::TenantCasCreated {
                tenant: TenantId::parse("acme").unwrap(),
                root: spec(3650),
                issuing: spec(issuing_days),
            },
            certified(0, 0, 3650),
            certified(1, 0, issuing_days.into()),
        ] {
            cas.apply(event);
        }
        cas
    }

    #[test]
    fn an_issuing_ca_is_rotated_once_less_than_the_lead_is_left() {
        let lead = chrono::Duration::days(365);
        let cas = cas(730);
        assert!(!rotation_due(&cas, at(364), lead), "366 days left");
        assert!(rotation_due(&cas, at(366), lead), "364 days left");
    }

    #[test]
    fn no_rotation_that_would_not_last_longer() {
        // Its successor would be as short-lived as the lead allows no good of.
        let lead = chrono::Duration::days(365);
        assert!(!rotation_due(&cas(200), at(1), lead));
        // A root that ends first: nothing a successor could gain.
        let mut near_root = TenantCas::default();
        for event in [
            TenantCasEvent::TenantCasCreated {
                tenant: TenantId::parse("acme").unwrap(),
                root: spec(400),
                issuing: spec(730),
            },
            certified(0, 0, 400),
            certified(1, 0, 400),
        ] {
            near_root.apply(event);
        }
        assert!(!rotation_due(&near_root, at(100), lead));
    }
}
