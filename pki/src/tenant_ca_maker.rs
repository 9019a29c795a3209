//! `app::CaMaker` with the key store and `ca_certification`: a tenant CA's key made (or found
//! again by its name) in `CA_KEY_STORE`, and its certificate: the root's self-signed, an
//! issuing CA's signed by the tenant's root (its key opened from the store by the reference
//! its events recorded). On Tokio's blocking pool, within a deadline: a token may block.
//!
//! Must not: decide which CA to make (the stewardship, from the CAs' events).

use std::time::Duration;

use app::pki::PublicBaseUrl;
use app::{CaMaker, CaUnavailable};
use async_trait::async_trait;
use chrono::Utc;
use domain::{CaCertificate, CaKeyReference, TenantCa, TenantCas};

use crate::ca_certification::{certify_issuing, certify_root};
use crate::{IssuingCa, KeyStore};

/// How long making one CA may take (a key generated in an HSM included).
const DEADLINE: Duration = Duration::from_secs(30);

pub struct TenantCaMaker {
    key_store: KeyStore,
    base: PublicBaseUrl,
}

impl TenantCaMaker {
    pub fn new(key_store: KeyStore, base: PublicBaseUrl) -> Self {
        Self { key_store, base }
    }
}

#[async_trait]
impl CaMaker for TenantCaMaker {
    async fn make(
        &self,
        cas: &TenantCas,
        ca: &TenantCa,
        key_name: String,
    ) -> Result<(CaKeyReference, CaCertificate), CaUnavailable> {
        let (key_store, base) = (self.key_store.clone(), self.base.clone());
        let (cas, ca) = (cas.clone(), ca.clone());
        let making =
            tokio::task::spawn_blocking(move || make(&key_store, &base, &cas, &ca, &key_name));
        match tokio::time::timeout(DEADLINE, making).await {
            Ok(Ok(made)) => made,
            Ok(Err(e)) => Err(CaUnavailable(format!("making the CA failed: {e}"))),
            Err(_) => Err(CaUnavailable(format!(
                "making the CA took longer than {DEADLINE:?}"
            ))),
        }
    }
}

fn make(
    key_store: &KeyStore,
    base: &PublicBaseUrl,
    cas: &TenantCas,
    ca: &TenantCa,
    key_name: &str,
) -> Result<(CaKeyReference, CaCertificate), CaUnavailable> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| CaUnavailable(format!("{what}: {e}"));
    let tenant = cas
        .tenant()
        .ok_or_else(|| CaUnavailable("the tenant's CAs were never created".into()))?;
    let (reference, key) = key_store
        .make_or_open(key_name, ca.spec.curve)
        .map_err(|e| unavailable("the CA's key", &e))?;
    let now = Utc::now();
    let certificate = if ca.generation.is_root() {
        certify_root(tenant, &ca.spec, key, now)
    } else {
        let root = cas
            .root()
            .and_then(|root| root.certified.as_ref())
            .ok_or_else(|| CaUnavailable("the tenant's root is not certified yet".into()))?;
        let root_key = key_store
            .open(&root.key)
            .map_err(|e| unavailable("the root's key", &e))?;
        // The root signs here only: nothing it issues is a device's (hence no validity).
        let root_ca = IssuingCa::new(&root.certificate.pem, root_key, chrono::Duration::zero())
            .map_err(|e| unavailable("the root", &e))?;
        certify_issuing(
            &root_ca,
            root.certificate.not_after,
            tenant,
            &ca.spec,
            key,
            base,
            now,
        )
    }
    .map_err(|e| unavailable("the CA's certificate", &e))?;
    Ok((reference, certificate))
}
