//! Where relying parties look for a certificate's status: the issuing CA's identifier and
//! the URL layout of its CRL and OCSP responder, one definition for the certificates the
//! worker signs and the routes the api serves. A CA is named in the URL so that per-tenant
//! issuing CAs can be added without changing any URL already written into a certificate;
//! and the port the OCSP responder reads certificates' status through.

mod cached_status_lookup;
mod certificate_serial_hex;
mod certificate_status_lookup;
mod crl_distribution;
mod crl_publication;
mod live_certificates;
mod public_base_url;
mod responder_certificates;
mod responder_certification;
mod revocation_list;
mod tenant_cas_cache;
mod tenant_crl_publication;

pub use cached_status_lookup::CachedStatusLookup;
pub use certificate_serial_hex::CertificateSerialHex;
pub use certificate_status_lookup::{CertificateStatusLookup, CertificateStatusRecord};
pub use crl_distribution::CrlDistribution;
pub use crl_publication::{CrlPublication, CrlPublicationError, CrlPublished};
pub use domain::IssuingCaId;
pub use live_certificates::LiveCertificates;
pub use public_base_url::{InvalidBaseUrl, PublicBaseUrl};
pub use responder_certificates::{ResponderCertificate, ResponderCertificates, ResponderKey};
pub use responder_certification::{ResponderCertification, ResponderCertifier};
pub use revocation_list::{
    CrlHeader, CrlReason, CrlRepository, CrlSigner, CrlSigningError, PublishedCrl,
    RevocationListContent, Revocations, RevokedCertificate,
};
pub use tenant_cas_cache::TenantCasCache;
pub use tenant_crl_publication::{
    IssuedRevocations, TenantCaSigners, TenantCrlPass, TenantCrlPublication,
};

/// The api's route of a CA's CRL (`{ca}` is its [`IssuingCaId`]).
pub const CRL_ROUTE: &str = "/pki/{ca}/crl";
/// The api's route of a CA's OCSP responder (`POST`); `GET` appends `/{request}`.
pub const OCSP_ROUTE: &str = "/pki/{ca}/ocsp";
