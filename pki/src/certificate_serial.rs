//! Certificate serial numbers: 16 bytes, high bit clear (a positive DER INTEGER) and the
//! first byte non-zero (16 significant bytes, as RFC 5280 §4.1.2.2 and the CA/Browser
//! Forum's 64 bits of entropy ask).

use app::CertificateRequest;
use sha2::{Digest, Sha256};

/// A device certificate's serial: derived from the certificate request id, so signing one
/// request twice (two racing deliveries) yields the same serial.
pub(crate) fn of_request(request: &CertificateRequest) -> Vec<u8> {
    positive(Sha256::digest(request.request_id.as_uuid().as_bytes())[..16].to_vec())
}

/// A random serial, for certificates no request names (OCSP signers).
pub(crate) fn random() -> Vec<u8> {
    positive(uuid::Uuid::new_v4().into_bytes().to_vec())
}

fn positive(mut serial: Vec<u8>) -> Vec<u8> {
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1; // keep 16 significant bytes
    }
    serial
}
