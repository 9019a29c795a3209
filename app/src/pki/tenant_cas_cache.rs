//! Every tenant's CAs as their events say, for the loops that keep tenants' PKI current (CRLs,
//! OCSP signers) and the api's OCSP responders: the directory of tenant CAs read each time,
//! each tenant's CAs read again only when their version moved.
//!
//! Must not: serve a security decision that needs a fresher view than its caller's pass (the
//! provisioner's issuer is `TenantIssuers`', with its own bound).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::{TenantCas, TenantCasId};

use crate::{EventStore, StoreError, TenantCaDirectory};

pub struct TenantCasCache {
    directory: Arc<dyn TenantCaDirectory>,
    store: Arc<dyn EventStore<TenantCas>>,
    known: Mutex<HashMap<TenantCasId, (u64, Arc<TenantCas>)>>,
}

impl TenantCasCache {
    pub fn new(
        directory: Arc<dyn TenantCaDirectory>,
        store: Arc<dyn EventStore<TenantCas>>,
    ) -> Self {
        Self {
            directory,
            store,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Every tenant's CAs, as of now.
    pub async fn all(&self) -> Result<Vec<Arc<TenantCas>>, StoreError> {
        let mut all = Vec::new();
        for (id, version) in self.directory.versions().await? {
            let known = self
                .lock()
                .get(&id)
                .filter(|(known, _)| *known == version)
                .map(|(_, cas)| cas.clone());
            let cas = match known {
                Some(cas) => cas,
                None => {
                    let loaded = self.store.load(id).await?;
                    let cas = Arc::new(loaded.aggregate);
                    self.lock().insert(id, (loaded.version, cas.clone()));
                    cas
                }
            };
            all.push(cas);
        }
        Ok(all)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantCasId, (u64, Arc<TenantCas>)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}
