//! What the CA accepts in a device's certificate request, PKCS#10 or CRMF (a refusal is a
//! domain outcome, `ProvisioningFailed` with a code, never a retry):
//! - the key is ECDSA P-256 or P-384, Ed25519, or RSA of 2048 to 4096 bits
//!   (`key_policy_violation`);
//! - the request proves possession of its key: a CSR's self-signature, a CRMF request's
//!   signature proof (`cmp::CrmfCertificateRequest::verified`), verifies
//!   (`invalid_signature`); a `VerifiedCsr`'s was verified where it arrived (`scep/`);
//! - the subject has exactly one CN and it is the device's serial number
//!   (`subject_mismatch`, `domain::SigningRequest::check_subject`).
//!
//! Must not: look at requested extensions (the certificate carries only what the CA
//! decides), or sign anything.

use app::CertificateRequest;
use domain::{
    CertificateSigningRequest, CrmfRequest, FailureCode, ProvisioningFailure, SigningRequest,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::cmp::CrmfCertificateRequest;

/// Verifies the request and the policy; returns the DER of its SubjectPublicKeyInfo.
pub(crate) fn check_csr(request: &CertificateRequest) -> Result<Vec<u8>, ProvisioningFailure> {
    let spki = match &request.request {
        SigningRequest::Pkcs10(csr) => check_pkcs10(csr)?,
        SigningRequest::Crmf(crmf) => check_crmf(crmf)?,
        // Its signature was verified where it arrived (SCEP's request is not kept whole:
        // it holds the device's key); its key meets the policy like any other.
        SigningRequest::VerifiedPkcs10(verified) => check_key(verified.public_key_der())?,
    };
    request
        .request
        .check_subject(&request.serial_number)
        .map_err(|e| failure(FailureCode::SubjectMismatch, &e.to_string()))?;
    Ok(spki)
}

fn check_pkcs10(csr: &CertificateSigningRequest) -> Result<Vec<u8>, ProvisioningFailure> {
    let malformed = || failure(FailureCode::MalformedCsr, "the CSR cannot be decoded");
    let pem = ::pem::parse(csr.as_pem()).map_err(|_| malformed())?;
    let (_, csr) = X509CertificationRequest::from_der(pem.contents()).map_err(|_| malformed())?;
    let info = &csr.certification_request_info;
    // Policy first: it is cheap, and keys we refuse may be ones the verifier cannot handle.
    check_key_policy(&info.subject_pki)?;
    csr.verify_signature().map_err(|_| {
        failure(
            FailureCode::InvalidSignature,
            "the CSR's signature does not verify with its own public key",
        )
    })?;
    Ok(info.subject_pki.raw.to_vec())
}

/// `key` (SPKI, DER) if it meets the policy.
fn check_key(key: &[u8]) -> Result<Vec<u8>, ProvisioningFailure> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(key).map_err(|_| {
        failure(
            FailureCode::MalformedCsr,
            "the request's public key cannot be decoded",
        )
    })?;
    check_key_policy(&spki)?;
    Ok(key.to_vec())
}

fn check_crmf(request: &CrmfRequest) -> Result<Vec<u8>, ProvisioningFailure> {
    let key = check_key(&request.public_key_der())?;
    CrmfCertificateRequest::verified(request.clone()).map_err(|_| {
        failure(
            FailureCode::InvalidSignature,
            "the request's proof of possession does not verify with its own public key",
        )
    })?;
    Ok(key)
}

fn check_key_policy(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<(), ProvisioningFailure> {
    let refuse = |detail: &str| failure(FailureCode::KeyPolicyViolation, detail);
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 || c == OID_NIST_EC_P384 => Ok(()),
            _ => Err(refuse("EC keys must be on P-256 or P-384")),
        };
    }
    if *algorithm == OID_SIG_ED25519 {
        return Ok(());
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if (2048..=4096).contains(&rsa.key_size()) => Ok(()),
            _ => Err(refuse("RSA keys must be 2048 to 4096 bits")),
        };
    }
    Err(refuse(
        "the key type is not allowed (ECDSA P-256/P-384, Ed25519 or RSA 2048-4096)",
    ))
}

pub(crate) fn failure(code: FailureCode, detail: &str) -> ProvisioningFailure {
    ProvisioningFailure {
        code,
        detail: detail.to_owned(),
    }
}
