//! SCEP (RFC 8894) wire formats, on RustCrypto's `cms` types: what a device's `PKIOperation`
//! message says and whether its signer signed it (`pki_message.rs`), its content opened with
//! the registration authority's key (`envelope.rs`: RSA key transport in the RA's token, then
//! DES, 3DES or AES in CBC mode, the ciphers devices send), and our answers, `CertRep`
//! messages signed by the RA and, with a certificate, encrypted to the requester
//! (`cert_rep.rs`), and the CSR inside, its signature verified and its challenge password
//! handed over apart (`certificate_request.rs`).
//!
//! Must not: know HTTP, decide whether a request may be granted (the challenge password, the
//! group, the device: the api's and the enrollment service's), log a request's content (a
//! PKCSReq's CSR holds the device's key as its challenge password), or decrypt with the `rsa`
//! crate (its decryption is not constant-time: the RA key decrypts in its token).

mod cert_rep;
mod certificate_request;
mod envelope;
mod pki_message;
mod registration_authority;

pub use cert_rep::{CertRep, CertRepError, ScepFailInfo, ScepStatus};
pub use certificate_request::{ChallengePassword, ScepCertificateRequest, ScepCsrError};
pub use envelope::{open_envelope, ContentCipher, EnvelopeError, OpenedEnvelope};
pub use pki_message::{
    polled_common_name, signer_certificate_pem, MessageType, ScepMessageError, ScepRequest,
};
pub use registration_authority::{ScepRa, ScepRaError};
