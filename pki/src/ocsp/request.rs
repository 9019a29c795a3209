//! An OCSP request (RFC 6960 §4.1) decoded with `x509-ocsp`'s types, and what makes one
//! malformed here: not DER, trailing bytes, no CertID, more CertIDs than the responder answers
//! at once, or a nonce that RFC 8954 does not allow (empty, or longer than 32 octets).
//! A request signature, when there is one, is not checked: the responder answers anyone.

use der::oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::Decode;
use x509_cert::ext::Extension;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{CertId, OcspRequest};

/// CertIDs answered in one response, at most; more is `malformedRequest`. OpenSSL sends one
/// per `-cert`; a bound keeps each request's work (one lookup, one signature) small.
pub const MAX_CERT_IDS: usize = 16;

/// RFC 8954 §2.1: a nonce is 1 to 32 octets.
const MAX_NONCE_LEN: usize = 32;

/// What the responder answers: the CertIDs asked about, and the nonce extension to echo.
#[derive(Debug)]
pub struct DecodedRequest {
    pub cert_ids: Vec<CertId>,
    /// The request's nonce extension, as sent (echoed unchanged in the response).
    pub nonce: Option<Extension>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not a DER OCSPRequest")]
    NotDer,
    #[error("the request names no certificate")]
    NoCertIds,
    #[error("the request names more than {MAX_CERT_IDS} certificates")]
    TooManyCertIds,
    #[error("the nonce is not an OCTET STRING of 1 to 32 octets")]
    BadNonce,
}

pub fn decode(der: &[u8]) -> Result<DecodedRequest, Malformed> {
    // `from_der` refuses trailing bytes.
    let request = OcspRequest::from_der(der).map_err(|_| Malformed::NotDer)?;
    let tbs = request.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(Malformed::NoCertIds);
    }
    if tbs.request_list.len() > MAX_CERT_IDS {
        return Err(Malformed::TooManyCertIds);
    }
    let nonce = tbs
        .request_extensions
        .into_iter()
        .flatten()
        .find(|extension| extension.extn_id == ID_PKIX_OCSP_NONCE);
    if let Some(extension) = &nonce {
        let value =
            Nonce::from_der(extension.extn_value.as_bytes()).map_err(|_| Malformed::BadNonce)?;
        if !(1..=MAX_NONCE_LEN).contains(&value.0.as_bytes().len()) {
            return Err(Malformed::BadNonce);
        }
    }
    Ok(DecodedRequest {
        cert_ids: tbs.request_list.into_iter().map(|r| r.req_cert).collect(),
        nonce,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use der::asn1::{Null, OctetString};
    use der::Encode;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::AlgorithmIdentifierOwned;
    use x509_ocsp::{Request, TbsRequest};

    /// id-sha1.
    pub(crate) const SHA1: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

    pub(crate) fn cert_id(name_hash: &[u8], key_hash: &[u8], serial: &[u8]) -> CertId {
        CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(name_hash).unwrap(),
            issuer_key_hash: OctetString::new(key_hash).unwrap(),
            serial_number: SerialNumber::new(serial).unwrap(),
        }
    }

    pub(crate) fn nonce_extension(bytes: &[u8]) -> Extension {
        Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(bytes).unwrap().to_der().unwrap())
                .unwrap(),
        }
    }

    pub(crate) fn request_der(cert_ids: Vec<CertId>, nonce: Option<Extension>) -> Vec<u8> {
        OcspRequest {
            tbs_request: TbsRequest {
                version: Default::default(),
                requestor_name: None,
                request_list: cert_ids
                    .into_iter()
                    .map(|req_cert| Request {
                        req_cert,
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: nonce.map(|n| vec![n]),
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn a_request_gives_its_cert_ids_and_its_nonce() {
        let id = cert_id(&[1; 20], &[2; 20], &[0x42]);
        let nonce = nonce_extension(&[9; 16]);
        let decoded = decode(&request_der(vec![id.clone()], Some(nonce.clone()))).unwrap();
        assert_eq!(decoded.cert_ids, std::slice::from_ref(&id));
        assert_eq!(decoded.nonce, Some(nonce));
        assert_eq!(decode(&request_der(vec![id], None)).unwrap().nonce, None);
    }

    #[test]
    fn what_is_not_a_request_or_asks_too_much_is_malformed() {
        let id = cert_id(&[1; 20], &[2; 20], &[0x42]);
        let good = request_der(vec![id.clone()], None);
        assert_eq!(decode(&[]).unwrap_err(), Malformed::NotDer);
        assert_eq!(decode(b"random bytes").unwrap_err(), Malformed::NotDer);
        assert_eq!(
            decode(&good[..good.len() - 1]).unwrap_err(),
            Malformed::NotDer
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing).unwrap_err(), Malformed::NotDer);
        assert_eq!(
            decode(&request_der(vec![], None)).unwrap_err(),
            Malformed::NoCertIds
        );
        assert_eq!(
            decode(&request_der(vec![id.clone(); MAX_CERT_IDS + 1], None)).unwrap_err(),
            Malformed::TooManyCertIds
        );
        assert!(decode(&request_der(vec![id.clone(); MAX_CERT_IDS], None)).is_ok());
        for bad in [vec![], vec![7; 33]] {
            assert_eq!(
                decode(&request_der(vec![id.clone()], Some(nonce_extension(&bad)))).unwrap_err(),
                Malformed::BadNonce
            );
        }
    }
}
