//! Keeps the OCSP responder answering for tenants' CAs without a restart: registers the api's
//! responder key (the platform signer's, `OCSP_SIGNER_KEY_PATH`) by its public key, then every
//! few seconds takes the certificates tenant CAs made of it (the worker makes and renews them)
//! and what the CAs' events say of each CA (revoked: everything it issued answers `revoked`),
//! and hands the responder the signers that check out. A retired CA answers no more.
//!
//! Must not: make or hold any CA key; the responder key never leaves this process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use app::pki::{ResponderCertificates, TenantCasCache};
use domain::CaState;
use pki::ocsp::{CaResponder, DelegatedSigner, OcspResponder};

/// How often the tenants' signers and CA states are read again: a CA's revocation reaches
/// OCSP answers within this (and the status cache, `OCSP_STATUS_CACHE_MS`).
const REFRESH: Duration = Duration::from_millis(500);

/// Runs until the api stops (its caller's token ends it).
pub async fn refresh_tenant_responders(
    responder: Arc<OcspResponder>,
    certificates: Arc<dyn ResponderCertificates>,
    cas: Arc<TenantCasCache>,
) {
    let Some((key, signing_key)) = responder.responder_key() else {
        return;
    };
    let mut registered = false;
    loop {
        if !registered {
            match certificates.register(&key).await {
                Ok(()) => registered = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register the OCSP responder key; retrying")
                }
            }
        }
        if registered {
            match responders(&certificates, &cas, &key.sha256, &signing_key).await {
                Ok(responders) => responder.set_tenant_responders(responders),
                Err(e) => tracing::warn!(error = %e, "cannot read tenants' OCSP signers; retrying"),
            }
        }
        tokio::time::sleep(REFRESH).await;
    }
}

async fn responders(
    certificates: &Arc<dyn ResponderCertificates>,
    cas: &Arc<TenantCasCache>,
    key: &str,
    signing_key: &Arc<dyn pki::SigningKey>,
) -> Result<Vec<CaResponder>, app::StoreError> {
    let mut states = HashMap::new();
    for tenant_cas in cas.all().await? {
        for ca in tenant_cas.issuing() {
            if let Some(certified) = &ca.certified {
                states.insert(certified.certificate.id.clone(), (ca.state, ca.revoked));
            }
        }
    }
    let now = chrono::Utc::now();
    let mut responders = Vec::new();
    for certificate in certificates.of_key(key).await? {
        let Some((state, revoked)) = states.get(&certificate.ca) else {
            continue;
        };
        if !matches!(
            state,
            CaState::Active | CaState::Rotating | CaState::Revoked
        ) {
            continue;
        }
        match DelegatedSigner::new(&certificate.chain_pem, signing_key.clone(), now) {
            Ok(signer) => responders.push(CaResponder::tenant(
                signer,
                revoked.map(|(reason, at)| (at, reason)),
            )),
            Err(e) => tracing::warn!(ca = %certificate.ca.as_str(), error = %e,
                "a tenant CA's OCSP signer certificate is not usable"),
        }
    }
    Ok(responders)
}
