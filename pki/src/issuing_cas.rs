//! The CAs the worker signs with: the platform's (`CA_CERT_PATH`, loaded at start) and the
//! tenants' CAs (issuing CAs for device certificates and CRLs, roots for their CRLs), each
//! opened from the key store (`CA_KEY_STORE`) the
//! first time it is asked for and kept. Which one signs a request is decided elsewhere
//! (`app::TenantIssuers`, from the tenants' CA events); this only turns the decision into a
//! CA that can sign. Anything that keeps a tenant's CA from signing (no key store, its key
//! not there, a token that does not answer) is an outage: the request waits.
//!
//! Must not: choose the CA, or run on the async runtime's threads (opening a key may block).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use app::pki::{
    CrlSigner, IssuingCaId, PublicBaseUrl, ResponderCertificate, ResponderCertifier, ResponderKey,
    TenantCaSigners,
};
use app::{CaUnavailable, Issuer};
use chrono::{DateTime, Utc};
use domain::CertifiedCa;

use crate::{CertificateProfile, IssuingCa, KeyStore};

/// How tenants' issuing CAs issue: their keys' store, and the same profile, status URLs and
/// validity as the platform's CA.
pub struct TenantCaSettings {
    pub key_store: KeyStore,
    pub base: PublicBaseUrl,
    pub profile: CertificateProfile,
    pub validity: chrono::Duration,
}

pub struct IssuingCas {
    platform: Arc<IssuingCa>,
    tenants: Option<TenantCaSettings>,
    opened: Mutex<HashMap<IssuingCaId, Arc<IssuingCa>>>,
}

impl IssuingCas {
    /// `tenants`: `None` when no key store is configured (then only the platform's CA signs).
    pub fn new(platform: Arc<IssuingCa>, tenants: Option<TenantCaSettings>) -> Self {
        Self {
            platform,
            tenants,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The CA that signs for `issuer`. Blocks the first time a tenant's CA is asked for.
    pub fn for_issuer(&self, issuer: &Issuer) -> Result<Arc<IssuingCa>, CaUnavailable> {
        match issuer {
            Issuer::Platform => Ok(self.platform.clone()),
            Issuer::Tenant { ca, .. } => self.tenant_ca(ca),
        }
    }

    /// A tenant's CA (a root or an issuing CA), opened once. Blocks the first time.
    fn tenant_ca(&self, ca: &CertifiedCa) -> Result<Arc<IssuingCa>, CaUnavailable> {
        let id = &ca.certificate.id;
        if let Some(opened) = self.lock().get(id) {
            return Ok(opened.clone());
        }
        let settings = self.tenants.as_ref().ok_or_else(|| {
            CaUnavailable(
                "a tenant's CA is to sign, and CA_KEY_STORE, where its key is, is not set".into(),
            )
        })?;
        let key = settings
            .key_store
            .open(&ca.key)
            .map_err(|e| CaUnavailable(format!("the tenant CA's key cannot be opened: {e}")))?;
        let opened = IssuingCa::new(&ca.certificate.pem, key, settings.validity)
            .map_err(|e| CaUnavailable(format!("the tenant's CA cannot be loaded: {e}")))?
            .with_profile(settings.profile)
            .with_status_urls(&settings.base);
        let opened = Arc::new(opened);
        self.lock().insert(id.clone(), opened.clone());
        Ok(opened)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IssuingCaId, Arc<IssuingCa>>> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TenantCaSigners for IssuingCas {
    fn crl_signer(&self, ca: &CertifiedCa) -> Result<Arc<dyn CrlSigner>, CaUnavailable> {
        Ok(self.tenant_ca(ca)?)
    }
}

impl ResponderCertifier for IssuingCas {
    fn certify(
        &self,
        ca: &CertifiedCa,
        key: &ResponderKey,
        validity: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<ResponderCertificate, CaUnavailable> {
        let issuing = self.tenant_ca(ca)?;
        let (chain_pem, not_after) =
            crate::signer_certificate::certify_responder_key(&issuing, &key.spki, validity, now)
                .map_err(|e| CaUnavailable(format!("cannot certify the responder key: {e}")))?;
        Ok(ResponderCertificate {
            ca: ca.certificate.id.clone(),
            chain_pem,
            not_after,
        })
    }
}
