//! OCSP responses as bytes (RFC 6960 §4.2): a BasicOCSPResponse built from `x509-ocsp`'s
//! types and signed with the delegated key, or an error status without a body.
//!
//! The response names the responder by its key hash, carries the signer certificate in
//! `certs` (relying parties check it was issued by the CA for OCSP signing) and echoes the
//! request's nonce extension unchanged.

use chrono::{DateTime, Utc};
use der::asn1::{BitString, GeneralizedTime};
use der::oid::db::rfc5912::ECDSA_WITH_SHA_256;
use der::Encode;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, OcspGeneralizedTime, OcspResponse, OcspResponseStatus, ResponderId,
    ResponseData, SingleResponse, Version,
};

use super::delegated_signer::DelegatedSigner;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot encode the response")]
    Encode(#[from] der::Error),
    #[error("cannot sign the response")]
    Sign(#[from] crate::KeyUnavailable),
}

/// A `successful` OCSPResponse with `responses`, produced at `produced_at`, signed by
/// `signer`, DER.
pub fn signed(
    signer: &DelegatedSigner,
    responses: Vec<SingleResponse>,
    nonce: Option<Extension>,
    produced_at: DateTime<Utc>,
) -> Result<Vec<u8>, SignError> {
    let tbs_response_data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(signer.responder_key_hash().clone()),
        produced_at: ocsp_time(produced_at)?,
        responses,
        response_extensions: nonce.map(|n| vec![n]),
    };
    let signature = signer.sign(&tbs_response_data.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data,
        signature_algorithm: AlgorithmIdentifierOwned {
            // RFC 5758 §3.2: ECDSA's AlgorithmIdentifier has no parameters.
            oid: ECDSA_WITH_SHA_256,
            parameters: None,
        },
        signature: BitString::from_bytes(&signature)?,
        certs: Some(vec![signer.certificate().clone()]),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?)
}

/// An OCSPResponse with an error `status` (no responseBytes), DER.
pub fn unsigned(status: OcspResponseStatus) -> Vec<u8> {
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .expect("an OCSPResponse of one ENUMERATED encodes")
}

/// `at` as OCSP's GeneralizedTime (whole seconds, UTC).
pub fn ocsp_time(at: DateTime<Utc>) -> Result<OcspGeneralizedTime, der::Error> {
    let seconds = u64::try_from(at.timestamp()).map_err(|_| der::ErrorKind::DateTime)?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        std::time::Duration::from_secs(seconds),
    )?))
}
