//! Keeping tenants' CAs' delegated OCSP signers current: each registered responder key (the
//! api's, `ResponderCertificates`) certified by each tenant CA that answers OCSP (an active or
//! rotating issuing CA), renewed once a third of its validity is left. A revoked CA certifies
//! nothing more (its key is not to be used again): the api answers for it with the signer it
//! has until that ends.
//!
//! Must not: sign (`ResponderCertifier`: the worker's `pki`), or hold a responder's key.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{CaState, CertifiedCa};

use super::{ResponderCertificate, ResponderCertificates, ResponderKey, TenantCasCache};
use crate::{CaUnavailable, StoreError};

/// Port: a tenant CA's certificate of a responder key (may block: the CA's key is opened).
pub trait ResponderCertifier: Send + Sync + 'static {
    fn certify(
        &self,
        ca: &CertifiedCa,
        key: &ResponderKey,
        validity: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<ResponderCertificate, CaUnavailable>;
}

pub struct ResponderCertification {
    cas: Arc<TenantCasCache>,
    certificates: Arc<dyn ResponderCertificates>,
    certifier: Arc<dyn ResponderCertifier>,
    validity: chrono::Duration,
}

impl ResponderCertification {
    pub fn new(
        cas: Arc<TenantCasCache>,
        certificates: Arc<dyn ResponderCertificates>,
        certifier: Arc<dyn ResponderCertifier>,
        validity: chrono::Duration,
    ) -> Self {
        Self {
            cas,
            certificates,
            certifier,
            validity,
        }
    }

    /// Certifies every responder key a tenant CA has no current certificate of; how many it
    /// certified. A CA that cannot certify now is logged and tried again on the next pass.
    pub async fn certify_due(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let keys = self.certificates.keys().await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let mut certified = 0;
        for cas in self.cas.all().await? {
            for ca in cas.issuing() {
                let (CaState::Active | CaState::Rotating, Some(certified_ca)) =
                    (ca.state, &ca.certified)
                else {
                    continue;
                };
                for key in &keys {
                    let expiry = self
                        .certificates
                        .expiry(&certified_ca.certificate.id, &key.sha256)
                        .await?;
                    // Renewed once a third of its validity is left (never past the CA's end).
                    let renew_at = now + self.validity / 3;
                    let current = expiry.is_some_and(|end| {
                        end > renew_at || end >= certified_ca.certificate.not_after
                    });
                    if current {
                        continue;
                    }
                    let (certifier, ca, responder_key, validity) = (
                        self.certifier.clone(),
                        certified_ca.clone(),
                        key.clone(),
                        self.validity,
                    );
                    let made = tokio::task::spawn_blocking(move || {
                        certifier.certify(&ca, &responder_key, validity, now)
                    })
                    .await
                    .map_err(|e| CaUnavailable(format!("the certifying task failed: {e}")))
                    .and_then(|made| made);
                    match made {
                        Ok(certificate) => {
                            self.certificates.store(&key.sha256, &certificate).await?;
                            certified += 1;
                            tracing::info!(ca = %certificate.ca.as_str(), not_after = %certificate.not_after,
                                "a tenant CA certified the OCSP responder key");
                        }
                        Err(e) => {
                            tracing::warn!(ca = %certified_ca.certificate.id.as_str(), error = %e,
                            "cannot certify the OCSP responder key; trying again")
                        }
                    }
                }
            }
        }
        Ok(certified)
    }
}
