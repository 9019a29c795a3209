//! CMP (RFC 4210, RFC 9483's lightweight profile) wire formats, on RustCrypto's `cmpv2` and
//! `crmf` types: what a request's protection covers and how a password-based MAC (RFC 4210
//! §5.1.3.1) is checked and made (`password_based_mac.rs`), and what a request says
//! (`request.rs`: its transaction, nonces, sender, protection and kind), its certificate
//! request with its proof of possession (`certificate_request.rs`), and our answers
//! (`answer.rs`: certificates, waiting, polls, revocations, CA certificates, confirmations,
//! errors, and the message around them).
//!
//! Must not: know HTTP, a device's credential beyond the secret it is handed, or log a secret.

mod answer;
mod certificate_request;
mod cmp_signer;
mod failure_info;
mod password_based_mac;
mod request;
mod revocation_request;

pub use answer::{CertAnswerKind, CmpAnswer, CmpAnswerBody};
pub use certificate_request::{CrmfCertificateRequest, CrmfRefusal};
pub use cmp_signer::CmpSigner;
pub use failure_info::PkiFailure;
pub use password_based_mac::{protected_part, PasswordBasedMac, PbmRefusal};
pub use request::{CmpProtection, CmpRequest, CmpRequestBody, CmpRequestError, SignatureRefusal};
pub use revocation_request::{RevocationRefusal, RevocationRequest};
