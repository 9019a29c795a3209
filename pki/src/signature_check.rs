//! One signature check for the enrollment protocols' messages: a CMP request's protection, a
//! CRMF proof of possession and a SCEP message's signer are each a signature over DER as
//! sent, by a key given as its `SubjectPublicKeyInfo`. Through x509-parser's verification
//! (ring), as certificates and CSRs are checked elsewhere.

use der::asn1::BitString;
use x509_parser::asn1_rs;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// The signature does not verify, or its key or algorithm does not parse.
#[derive(Debug)]
pub(crate) struct BadSignature;

/// Whether `signature` (by `algorithm`, DER) over `data` verifies with `public_key` (SPKI
/// DER).
pub(crate) fn verify(
    public_key: &[u8],
    algorithm: &[u8],
    signature: &BitString,
    data: &[u8],
) -> Result<(), BadSignature> {
    let (_, key) = SubjectPublicKeyInfo::from_der(public_key).map_err(|_| BadSignature)?;
    let (_, algorithm) = AlgorithmIdentifier::from_der(algorithm).map_err(|_| BadSignature)?;
    let signature = asn1_rs::BitString::new(signature.unused_bits(), signature.raw_bytes());
    x509_parser::verify::verify_signature(&key, &algorithm, &signature, data)
        .map_err(|_| BadSignature)
}
