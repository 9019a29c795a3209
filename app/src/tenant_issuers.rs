//! Which CA signs a tenant's certificate request at a moment: the tenant's own issuing CA, as
//! `domain::TenantCas::issuer_at` decides from the tenant's CA events, or the platform's CA for
//! a tenant without CAs of its own (what every tenant had before tenants had CAs, so nothing
//! already issued changes). A tenant whose CAs exist but none of which issues now (being made,
//! or a revoked one's replacement not yet certified) has no issuer: its requests wait.
//!
//! A view of a tenant's CAs is read from the event store at most `domain::VIEW_MAX_AGE`
//! before it is used (its age counted from before the read), which is what makes a rotation's
//! handover exact: a new CA issues `domain::HANDOVER` after its certification, by when every
//! provisioner's view holds it.
//!
//! Must not: read a read model (this is a security decision), or cache a view longer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use domain::{CaGeneration, CertifiedCa, TenantCas, TenantCasId, TenantId, HANDOVER, VIEW_MAX_AGE};

use crate::{EventStore, StoreError};

/// The CA that signs a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Issuer {
    /// The platform's CA (`CA_CERT_PATH`): for tenants without CAs of their own.
    Platform,
    /// The tenant's issuing CA of `generation`, as decided until `until`: the signature must
    /// be made before then, or the decision taken again (see [`TenantIssuers::issuer_for`]).
    Tenant {
        generation: CaGeneration,
        ca: CertifiedCa,
        until: DateTime<Utc>,
    },
}

/// Tenants' issuers, from their CA events.
pub struct TenantIssuers {
    store: Arc<dyn EventStore<TenantCas>>,
    views: Mutex<HashMap<TenantId, View>>,
}

struct View {
    read_at: Instant,
    /// The same moment, by the clock the CAs' times are on.
    read_at_utc: DateTime<Utc>,
    cas: Arc<TenantCas>,
}

impl TenantIssuers {
    pub fn new(store: Arc<dyn EventStore<TenantCas>>) -> Self {
        Self {
            store,
            views: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer of `tenant`'s requests at `now`; `None` while the tenant has CAs of its own
    /// but none issues.
    ///
    /// A tenant's issuer holds `until` the earlier of its successor's takeover, if the view
    /// knows of one, and the view's read plus `HANDOVER`: a successor certified after the read
    /// takes over no earlier than that. Signing after `until` would risk a CA signing after
    /// its successor took over, so the signer refuses (an outage, retried with a fresh
    /// decision) whatever the delay between this decision and the signature.
    ///
    /// `fresh`: read the tenant's CAs now rather than use a view up to `VIEW_MAX_AGE` old. A
    /// renewal asks for it: it may have been accepted because its certificate's CA was revoked
    /// a moment ago (a device recovering with its group credential), and a view from before
    /// that revocation would have the revoked CA sign again.
    pub async fn issuer_for(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        fresh: bool,
    ) -> Result<Option<Issuer>, StoreError> {
        let (cas, read_at) = self.view_of(tenant, fresh).await?;
        if cas.root().is_none() {
            return Ok(Some(Issuer::Platform));
        }
        let Some(ca) = cas.issuer_at(now) else {
            return Ok(None);
        };
        let successor_takes_over = cas
            .issuing()
            .iter()
            .filter(|next| next.generation > ca.generation)
            .filter_map(|next| next.issues_from)
            .min();
        let until = successor_takes_over
            .into_iter()
            .chain([read_at + HANDOVER])
            .min()
            .expect("one at least");
        Ok(ca.certified.clone().map(|certified| Issuer::Tenant {
            generation: ca.generation,
            ca: certified,
            until,
        }))
    }

    /// The tenant's CAs and when they were read.
    async fn view_of(
        &self,
        tenant: &TenantId,
        fresh: bool,
    ) -> Result<(Arc<TenantCas>, DateTime<Utc>), StoreError> {
        if let Some(view) = self.lock().get(tenant).filter(|_| !fresh) {
            if view.read_at.elapsed() < VIEW_MAX_AGE {
                return Ok((view.cas.clone(), view.read_at_utc));
            }
        }
        // Its age counts from before the read: what it shows was true by then.
        let (read_at, read_at_utc) = (Instant::now(), Utc::now());
        let cas = Arc::new(self.store.load(TenantCasId::of(tenant)).await?.aggregate);
        self.lock().insert(
            tenant.clone(),
            View {
                read_at,
                read_at_utc,
                cas: cas.clone(),
            },
        );
        Ok((cas, read_at_utc))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, View>> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }
}
