//! Certifying a tenant's CAs: its root's certificate, self-signed, and each issuing CA's,
//! signed by the root, both through the signing-key port (wherever the keys are held). What
//! a relying party needs of them: the root a trust anchor (CA, path length 1), an issuing CA
//! able to certify devices only (path length 0), both signing CRLs; every certificate names its
//! subject's tenant (O) and the CA's name (CN); an issuing CA's certificate names the root's
//! CRL (where its revocation is published) and never outlives the root.
//!
//! Must not: decide which CA to certify or when (the worker, from the CAs' events), or log key
//! material.

use std::sync::Arc;

use app::pki::{IssuingCaId, PublicBaseUrl};
use chrono::{DateTime, Utc};
use domain::{CaCertificate, CaSpec, TenantId};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType, IsCa,
    KeyUsagePurpose,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::signing_key::{is_key_failure, RcgenKey, SigningKey};
use crate::x509_time::{to_time, truncate_to_seconds};
use crate::{certificate_serial, IssuingCa, KeyUnavailable};

#[derive(Debug, thiserror::Error)]
pub enum CaCertificationError {
    #[error(transparent)]
    KeyUnavailable(#[from] KeyUnavailable),
    #[error("cannot make the CA certificate: {0}")]
    Encoding(rcgen::Error),
    #[error("the CA certificate made does not decode")]
    Undecodable,
}

impl From<rcgen::Error> for CaCertificationError {
    fn from(error: rcgen::Error) -> Self {
        if is_key_failure(&error) {
            Self::KeyUnavailable(KeyUnavailable("the CA key did not sign".into()))
        } else {
            Self::Encoding(error)
        }
    }
}

/// The tenant's root CA certificate for `key`, valid from `now` for the spec's days.
pub fn certify_root(
    tenant: &TenantId,
    spec: &CaSpec,
    key: Arc<dyn SigningKey>,
    now: DateTime<Utc>,
) -> Result<CaCertificate, CaCertificationError> {
    let not_after = now + chrono::Duration::days(spec.validity_days.into());
    let params = ca_params(tenant, spec, 1, now, not_after)?;
    let certificate = params.self_signed(&RcgenKey(key))?;
    facts(&certificate.pem(), certificate.der())
}

/// An issuing CA's certificate for `key`, signed by the tenant's `root`: valid from `now` for
/// the spec's days, never past the root's end; it names the root's CRL under `base`.
pub fn certify_issuing(
    root: &IssuingCa,
    root_not_after: DateTime<Utc>,
    tenant: &TenantId,
    spec: &CaSpec,
    key: Arc<dyn SigningKey>,
    base: &PublicBaseUrl,
    now: DateTime<Utc>,
) -> Result<CaCertificate, CaCertificationError> {
    let not_after = (now + chrono::Duration::days(spec.validity_days.into())).min(root_not_after);
    let mut params = ca_params(tenant, spec, 0, now, not_after)?;
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![base.crl_url(root.id())],
    }];
    let certificate = params.signed_by(&RcgenKey(key), root.issuer())?;
    facts(&certificate.pem(), certificate.der())
}

fn ca_params(
    tenant: &TenantId,
    spec: &CaSpec,
    path_length: u8,
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, tenant.as_str());
    subject.push(DnType::CommonName, spec.common_name.as_str());
    params.distinguished_name = subject;
    params.serial_number = Some(certificate_serial::random().into());
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_length));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // A few minutes of tolerance for relying parties' clocks.
    params.not_before = to_time(now - chrono::Duration::minutes(5))?;
    params.not_after = to_time(not_after)?;
    Ok(params)
}

/// What the CA's events record of a certificate: its PEM, its id and its validity, read back
/// from the certificate itself.
fn facts(pem: &str, der: &[u8]) -> Result<CaCertificate, CaCertificationError> {
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|_| CaCertificationError::Undecodable)?;
    let validity = certificate.validity();
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0).ok_or(CaCertificationError::Undecodable)
    };
    Ok(CaCertificate {
        pem: pem.to_owned(),
        serial: hex::encode(certificate.raw_serial()),
        id: IssuingCaId::of_public_key(certificate.public_key().raw),
        not_before: truncate_to_seconds(time(validity.not_before)?),
        not_after: truncate_to_seconds(time(validity.not_after)?),
    })
}
