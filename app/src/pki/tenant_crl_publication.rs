//! Keeping every tenant CA's CRL current: each tenant root's (listing the tenant's revoked
//! issuing CAs, from the CAs' events) and each issuing CA's that still answers for what it
//! issued (active or rotating: listing its revoked certificates, from the status read model).
//! A revoked issuing CA publishes no more CRLs (its signature is worth nothing now; its root's
//! CRL revokes it and everything under it), a retired one has nothing left to list. Each CRL
//! is made as the platform CA's is (`CrlPublication`: when revocations changed, and before half
//! its validity has passed).
//!
//! Must not: sign (`TenantCaSigners`: the worker's `pki`), or read CA state from anything but
//! the CAs' events.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{CaState, CertifiedCa, TenantCas};

use super::{
    CrlPublication, CrlPublicationError, CrlPublished, CrlReason, CrlRepository, CrlSigner,
    IssuingCaId, Revocations, RevokedCertificate, TenantCasCache,
};
use crate::{CaUnavailable, StoreError};

/// Port: a tenant CA as a CRL signer (its key opened from the key store; may block).
pub trait TenantCaSigners: Send + Sync + 'static {
    fn crl_signer(&self, ca: &CertifiedCa) -> Result<Arc<dyn CrlSigner>, CaUnavailable>;
}

/// Port: where an issuing CA's revocations are read (the status read model).
pub trait IssuedRevocations: Send + Sync + 'static {
    fn of(&self, ca: &IssuingCaId) -> Arc<dyn Revocations>;
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TenantCrlPass {
    pub published: usize,
    pub failed: usize,
}

pub struct TenantCrlPublication {
    cas: Arc<TenantCasCache>,
    signers: Arc<dyn TenantCaSigners>,
    revocations: Arc<dyn IssuedRevocations>,
    repository: Arc<dyn CrlRepository>,
    validity: Duration,
}

impl TenantCrlPublication {
    pub fn new(
        cas: Arc<TenantCasCache>,
        signers: Arc<dyn TenantCaSigners>,
        revocations: Arc<dyn IssuedRevocations>,
        repository: Arc<dyn CrlRepository>,
        validity: Duration,
    ) -> Self {
        Self {
            cas,
            signers,
            revocations,
            repository,
            validity,
        }
    }

    /// Publishes every tenant CA's CRL that is due at `now`. A CA whose CRL cannot be made
    /// now (its key's token away) is counted and tried again on the next pass; it does not
    /// hold back the others.
    pub async fn publish_due(&self, now: DateTime<Utc>) -> Result<TenantCrlPass, StoreError> {
        let mut pass = TenantCrlPass::default();
        for cas in self.cas.all().await? {
            for (ca, revocations) in self.publishers_of(&cas) {
                let signer = {
                    let (signers, ca) = (self.signers.clone(), ca.clone());
                    tokio::task::spawn_blocking(move || signers.crl_signer(&ca))
                        .await
                        .map_err(|e| CaUnavailable(format!("the signer task failed: {e}")))
                        .and_then(|signer| signer)
                };
                let published = match signer {
                    Ok(signer) => {
                        CrlPublication::new(
                            revocations,
                            signer,
                            self.repository.clone(),
                            self.validity,
                        )
                        .publish_if_due(now)
                        .await
                    }
                    Err(unavailable) => Err(CrlPublicationError::Signing(super::CrlSigningError(
                        Box::new(unavailable),
                    ))),
                };
                match published {
                    Ok(CrlPublished::Published(header)) => {
                        pass.published += 1;
                        tracing::info!(ca = %ca.certificate.id.as_str(), crl_number = header.number,
                            entries = header.entries, "tenant CA's CRL published");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        pass.failed += 1;
                        tracing::warn!(ca = %ca.certificate.id.as_str(), error = %e,
                            "cannot publish a tenant CA's CRL; trying again");
                    }
                }
            }
        }
        Ok(pass)
    }

    /// The tenant's CAs that publish CRLs, each with where its revocations come from.
    fn publishers_of(&self, cas: &Arc<TenantCas>) -> Vec<(CertifiedCa, Arc<dyn Revocations>)> {
        let mut publishers = Vec::new();
        if let Some(root) = cas.root().and_then(|root| root.certified.clone()) {
            let revoked: Arc<dyn Revocations> = Arc::new(RevokedIssuingCas(cas.clone()));
            publishers.push((root, revoked));
        }
        for ca in cas.issuing() {
            if let (CaState::Active | CaState::Rotating, Some(certified)) =
                (ca.state, &ca.certified)
            {
                let revocations = self.revocations.of(&certified.certificate.id);
                publishers.push((certified.clone(), revocations));
            }
        }
        publishers
    }
}

/// A tenant root's revocations: its revoked issuing CAs, as the CAs' events record them.
struct RevokedIssuingCas(Arc<TenantCas>);

impl RevokedIssuingCas {
    fn entries(&self) -> impl Iterator<Item = (RevokedCertificate, DateTime<Utc>)> + '_ {
        self.0.issuing().iter().filter_map(|ca| {
            let (reason, revoked_at) = ca.revoked?;
            let certificate = &ca.certified.as_ref()?.certificate;
            Some((
                RevokedCertificate {
                    serial: certificate.serial.clone(),
                    revoked_at,
                    reason: CrlReason::Ca(reason),
                },
                certificate.not_after,
            ))
        })
    }
}

#[async_trait]
impl Revocations for RevokedIssuingCas {
    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.entries().count() as u64)
    }

    async fn unexpired_at(&self, at: DateTime<Utc>) -> Result<Vec<RevokedCertificate>, StoreError> {
        let mut entries: Vec<RevokedCertificate> = self
            .entries()
            .filter(|(_, not_after)| *not_after > at)
            .map(|(entry, _)| entry)
            .collect();
        entries.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(entries)
    }
}
