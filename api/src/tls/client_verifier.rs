//! Which client certificates a handshake accepts: those that chain to `TLS_CLIENT_CA_PATH`,
//! and those a tenant's issuing CA issued ([`TenantClientCas`], whose set changes while the api
//! runs). A client without a certificate is served as before; one whose certificate neither
//! trusts fails the handshake.
//!
//! Must not: tell unauthenticated clients the tenants' CA names (the hints are
//! `TLS_CLIENT_CA_PATH`'s only; clients send their certificate whatever the hints).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::TenantClientCas;

#[derive(Debug)]
pub(super) struct ClientCertificates {
    /// `TLS_CLIENT_CA_PATH`'s verifier; its signature checks serve both.
    pub(super) platform: Arc<dyn ClientCertVerifier>,
    pub(super) tenants: Arc<TenantClientCas>,
}

impl ClientCertVerifier for ClientCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.platform.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let refused = match self
            .platform
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        match self.tenants.verifier() {
            Some(tenants) => tenants
                .verify_client_cert(end_entity, intermediates, now)
                .map_err(|_| refused),
            None => Err(refused),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}
