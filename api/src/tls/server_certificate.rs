//! The server's certificate and key, and the client CA: read from PEM files, checked (the key
//! must be the certificate's), and read again when the files change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::client_verifier::ClientCertificates;
use super::TenantClientCas;

/// `TLS_CERT_PATH`, `TLS_KEY_PATH`, `TLS_CLIENT_CA_PATH`, `TLS_RELOAD_SECONDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain, leaf first (PEM).
    pub cert_path: PathBuf,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key_path: PathBuf,
    /// The CA certificates client certificates must chain to (PEM); without it no client
    /// certificate is asked for.
    pub client_ca_path: Option<PathBuf>,
    /// How often the certificate and key files are checked for a change.
    pub reload_interval: Duration,
}

/// Why the TLS configuration could not be loaded. Names the file; never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: no PEM certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("{key} does not hold the private key of {cert}, or the key is not usable: {reason}")]
    KeyNotUsable {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// The server side of TLS: the rustls configuration, whose certificate can be replaced while
/// serving.
pub struct ServerTls {
    config: Arc<ServerConfig>,
    certificate: Arc<ReloadingCertificate>,
    reload_interval: Duration,
}

impl ServerTls {
    /// Reads and checks every file now: a configuration that cannot serve is refused at
    /// start-up, not at the first handshake. With a client CA, the certificates of
    /// `tenant_cas` are accepted too.
    pub fn load(
        settings: &TlsSettings,
        tenant_cas: Arc<TenantClientCas>,
    ) -> Result<Self, TlsLoadError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(ReloadingCertificate::load(
            &settings.cert_path,
            &settings.key_path,
            provider.clone(),
        )?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3");
        let builder = match &settings.client_ca_path {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let client_ca = |reason: String| TlsLoadError::ClientCa {
                    path: path.clone(),
                    reason,
                };
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(path)? {
                    roots.add(cert).map_err(|e| client_ca(e.to_string()))?;
                }
                let platform = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    // Optional: only the routes that need a device's certificate ask for it.
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| client_ca(e.to_string()))?;
                builder.with_client_cert_verifier(Arc::new(ClientCertificates {
                    platform,
                    tenants: tenant_cas,
                }))
            }
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        // The api speaks HTTP/1.1 only: say so, rather than let a client pick h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            certificate,
            reload_interval: settings.reload_interval,
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// Reads the certificate and key again if either file changed since they were last read;
    /// `Ok(true)` if a new certificate is now served. On an error the previous one stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsLoadError> {
        self.certificate.reload_if_changed()
    }

    /// Checks the files every `reload_interval`, for ever (run it beside the server: it ends
    /// with it). A file that cannot be read, or a key that does not match, is logged and
    /// counted (`tls_certificate_reload_failures_total`) and the previous certificate kept.
    pub async fn reload_periodically(&self) {
        let mut interval = tokio::time::interval(self.reload_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            match self.reload_if_changed() {
                Ok(true) => tracing::info!("TLS certificate reloaded"),
                Ok(false) => {}
                Err(error) => {
                    metrics::counter!("tls_certificate_reload_failures_total").increment(1);
                    tracing::warn!(%error, "TLS certificate not reloaded; the previous one stays");
                }
            }
        }
    }
}

/// The certificate and key served, and the files' state when they were read.
struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    read_at: Mutex<FilesState>,
}

/// What tells that a file changed: its modification time and length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FilesState(Vec<Option<(SystemTime, u64)>>);

impl FilesState {
    fn of(paths: &[&Path]) -> Self {
        Self(
            paths
                .iter()
                .map(|path| {
                    let meta = std::fs::metadata(path).ok()?;
                    Some((meta.modified().ok()?, meta.len()))
                })
                .collect(),
        )
    }
}

impl ReloadingCertificate {
    fn load(
        cert_path: &Path,
        key_path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsLoadError> {
        let read_at = FilesState::of(&[cert_path, key_path]);
        let key = certified_key(cert_path, key_path, &provider)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Arc::new(key)),
            read_at: Mutex::new(read_at),
        })
    }

    fn reload_if_changed(&self) -> Result<bool, TlsLoadError> {
        let now = FilesState::of(&[&self.cert_path, &self.key_path]);
        let mut read_at = self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        if *read_at == now {
            return Ok(false);
        }
        let key = certified_key(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        *read_at = now;
        Ok(true)
    }
}

impl fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsLoadError> {
    let chain = read_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsLoadError::Unreadable {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsLoadError::KeyNotUsable {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        reason: e.to_string(),
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsLoadError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsLoadError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsLoadError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}
