//! X.509 and its wire formats, for the worker (which signs) and the api (which answers
//! relying parties and devices): the issuing CA (`issuing_ca.rs`: key policy, certificate
//! profile, serial derivation) and its signing key behind a port (`signing_key.rs`; the key
//! file is its first implementation, `key_file.rs`, a key in a PKCS#11 token the second,
//! `pkcs11_key.rs`, chosen by the configured reference, `key_reference.rs`), CRL signing (`crl_signing.rs`), the OCSP
//! responder (`ocsp/`: request parsing, answers from the status read model, response
//! signing with a delegated key) and the certification of the api's delegated signers, for
//! OCSP, CMP and SCEP (`signer_certificate.rs`, their files checked in `signer_files.rs`),
//! EST's PKCS#7 and CSR-attribute bodies (`est_wire_format.rs`), CMP's messages (`cmp/`: the
//! password-based MAC, requests, CRMF proofs of possession, answers, the CMP signer),
//! SCEP's (`scep/`: requests, envelopes opened with the RA key in its token, `CertRep`s),
//! the CA's certificates as the api serves them and checks client certificates against
//! (`ca_certificates.rs`), and the development CA (`dev_ca.rs`).
//!
//! An adapter crate: it implements `app`'s ports (`CertificateAuthority`, `pki::CrlSigner`)
//! and uses `app::pki`'s relying-party vocabulary (`IssuingCaId`, `PublicBaseUrl`).
//!
//! Must not: know HTTP, SQL or NATS; read configuration from the environment (callers pass
//! paths and values); log or return key material. ASN.1 comes from rcgen, x509-parser and
//! RustCrypto's typed formats, never written by hand.

mod blocking_ca;
mod ca_certificates;
pub mod ca_certification;
mod certificate_profile;
mod certificate_serial;
pub mod cmp;
mod crl_signing;
mod csr_policy;
pub mod dev_ca;
pub mod est_wire_format;
mod issuing_ca;
mod issuing_cas;
mod key_file;
mod key_reference;
mod key_store;
pub mod ocsp;
mod pkcs11_key;
pub mod scep;
mod signature_check;
pub mod signer_certificate;
mod signer_files;
mod signing_key;
mod tenant_ca_maker;
mod x509_time;

pub use blocking_ca::BlockingCa;
pub use ca_certificates::{issued_by, CaCertificates, CaCertificatesError, NotIssuedHere};
pub use certificate_profile::CertificateProfile;
pub use issuing_ca::{CaLoadError, IssuingCa};
pub use issuing_cas::{IssuingCas, TenantCaSettings};
pub use key_file::{KeyFile, KeyFileError};
pub use key_reference::{KeyOpenError, KeyReference, KeyReferenceError, Pkcs11Access};
pub use key_store::{KeyStore, KeyStoreError};
pub use pkcs11_key::{
    CaCurve, NotAPkcs11Uri, Pkcs11Key, Pkcs11Module, Pkcs11SetupError, Pkcs11Uri,
};
pub use signing_key::{KeyUnavailable, RcgenKey, SigningKey};
pub use tenant_ca_maker::TenantCaMaker;
