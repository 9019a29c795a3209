//! Tenants' issuing CAs as issuers of client certificates: a device whose certificate its
//! tenant's CA issued authenticates with it over mutual TLS (EST re-enrollment) as a device of
//! the platform's CA does. The set is read again from the CAs' events every `REFRESH`, so a
//! tenant's new CA (made, rotated in, or replacing a revoked one) is trusted without a restart.
//!
//! A revoked CA stays in the set: its certificates still finish the handshake and name their
//! device, whose aggregate then refuses them (a clear EST refusal rather than a failed
//! handshake). A retired CA's certificates have all expired, which TLS checks.
//!
//! Must not: decide whether a certificate may re-enroll (the device decides, from its events),
//! send the tenants' CA names to clients that have not authenticated (no CA hints of theirs),
//! or hold any key.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use app::pki::TenantCasCache;
use app::PresentedCertificate;
use domain::{CaState, IssuingCaId};
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// How often the set is read again: a tenant's new CA re-enrolls its devices within this.
const REFRESH: Duration = Duration::from_millis(500);

/// The tenants' issuing CAs that client certificates may chain to, as of the last refresh.
#[derive(Default)]
pub struct TenantClientCas {
    current: RwLock<Arc<Snapshot>>,
}

#[derive(Default)]
struct Snapshot {
    cas: Vec<ClientCa>,
    /// A verifier trusting exactly `cas` (none while there are none).
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

struct ClientCa {
    id: IssuingCaId,
    der: Vec<u8>,
}

impl std::fmt::Debug for TenantClientCas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantClientCas")
            .field("cas", &self.snapshot().cas.len())
            .finish()
    }
}

impl TenantClientCas {
    /// The verifier of client certificates issued by a tenant's CA, if any tenant has one.
    pub fn verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        self.snapshot().verifier.clone()
    }

    /// The certificate `der` as the tenant CA that signed it presents it, if one did.
    pub fn presented(&self, der: &[u8]) -> Option<PresentedCertificate> {
        self.snapshot().cas.iter().find_map(|ca| {
            pki::issued_by(der, &ca.der)
                .ok()
                .map(|serial| PresentedCertificate {
                    serial,
                    issuer: ca.id.clone(),
                })
        })
    }

    /// Trusts exactly `cas` (id, certificate DER) from now on. The verifier is built again
    /// only when the set changed.
    fn replace(&self, cas: Vec<(IssuingCaId, Vec<u8>)>) {
        let ids = |cas: &[ClientCa]| -> BTreeSet<String> {
            cas.iter().map(|ca| ca.id.as_str().to_owned()).collect()
        };
        let cas: Vec<ClientCa> = cas
            .into_iter()
            .map(|(id, der)| ClientCa { id, der })
            .collect();
        if ids(&cas) == ids(&self.snapshot().cas) {
            return;
        }
        let verifier = verifier_of(&cas);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Snapshot { cas, verifier });
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A verifier with `cas` as its trust anchors: a device sends its own certificate only, and its
/// issuing CA is the anchor (the tenant's root adds nothing the api needs to check).
fn verifier_of(cas: &[ClientCa]) -> Option<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        if let Err(error) = roots.add(CertificateDer::from(ca.der.as_slice()).into_owned()) {
            tracing::warn!(ca = %ca.id, %error, "a tenant CA's certificate is no trust anchor");
        }
    }
    if roots.is_empty() {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .allow_unauthenticated()
        .build()
    {
        Ok(verifier) => Some(verifier),
        Err(error) => {
            tracing::warn!(%error, "cannot trust tenants' CAs for client certificates");
            None
        }
    }
}

/// Keeps `trusted` to the tenants' issuing CAs that are active, rotating or revoked, as their
/// events say. Runs until the api stops (its caller's token ends it).
pub async fn refresh_tenant_client_cas(trusted: Arc<TenantClientCas>, cas: Arc<TenantCasCache>) {
    loop {
        match cas.all().await {
            Ok(all) => trusted.replace(
                all.iter()
                    .flat_map(|tenant| tenant.issuing())
                    .filter(|ca| {
                        matches!(
                            ca.state,
                            CaState::Active | CaState::Rotating | CaState::Revoked
                        )
                    })
                    .filter_map(|ca| ca.certified.as_ref())
                    .filter_map(|certified| {
                        let der = ::pem::parse(&certified.certificate.pem).ok()?;
                        Some((certified.certificate.id.clone(), der.into_contents()))
                    })
                    .collect(),
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot read tenants' CAs for client certificates; retrying")
            }
        }
        tokio::time::sleep(REFRESH).await;
    }
}
