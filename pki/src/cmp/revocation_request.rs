//! What a CMP `rr` asks (RFC 9483 §4.2): the one certificate to revoke, named in its
//! `RevDetails`' template by serial number (and issuer), and the reason, if the
//! `crlEntryDetails` give one (`reasonCode`, RFC 5280 §5.3.1).
//!
//! The template is read field by field with `der`'s reader: every field of a `CertTemplate`
//! is optional and context-tagged, and only two are needed here.
//!
//! Must not: decide whether the sender may revoke it (the device decides, from its events).

use app::pki::CertificateSerialHex;
use der::asn1::AnyRef;
use der::{Class, Decode, Reader, SliceReader, Tagged};
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::Extensions;

use super::failure_info::PkiFailure;

/// `id-ce-cRLReasons`.
const REASON_CODE: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.29.21");

/// An `rr`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRequest {
    /// The certificate's serial number, as the read models key it.
    pub serial: CertificateSerialHex,
    /// The `CRLReason` code, if one was given.
    pub reason_code: Option<u8>,
}

/// Why an `rr` is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationRefusal {
    #[error("the rr is not a DER RevReqContent")]
    Malformed,
    #[error("exactly one certificate is revoked per message")]
    NotOne,
    #[error("the rr's template names no serial number")]
    NoSerial,
}

impl RevocationRefusal {
    pub fn failure(&self) -> PkiFailure {
        match self {
            Self::Malformed => PkiFailure::BadDataFormat,
            Self::NotOne => PkiFailure::BadRequest,
            Self::NoSerial => PkiFailure::BadCertId,
        }
    }
}

#[derive(der::Sequence)]
struct RevDetails<'a> {
    cert_details: AnyRef<'a>,
    #[asn1(optional = "true")]
    crl_entry_details: Option<Extensions>,
}

impl RevocationRequest {
    /// An `rr`'s content, DER.
    pub fn from_rr(content: &[u8]) -> Result<Self, RevocationRefusal> {
        let malformed = |_| RevocationRefusal::Malformed;
        let details = <Vec<RevDetails<'_>> as Decode>::from_der(content).map_err(malformed)?;
        let [details] = details.as_slice() else {
            return Err(RevocationRefusal::NotOne);
        };
        if details.cert_details.tag() != der::Tag::Sequence {
            return Err(RevocationRefusal::Malformed);
        }
        let mut fields = SliceReader::new(details.cert_details.value()).map_err(malformed)?;
        let mut serial = None;
        while !fields.is_finished() {
            let field = AnyRef::decode(&mut fields).map_err(malformed)?;
            let tag = field.tag();
            // serialNumber [1] IMPLICIT INTEGER: its content octets are the certificate's.
            if tag.class() == Class::ContextSpecific && tag.number().value() == 1 {
                if field.value().is_empty() {
                    return Err(RevocationRefusal::Malformed);
                }
                serial = Some(CertificateSerialHex::from_bytes(field.value()));
            }
        }
        let serial = serial.ok_or(RevocationRefusal::NoSerial)?;
        let reason = details
            .crl_entry_details
            .iter()
            .flatten()
            .find(|extension| extension.extn_id == REASON_CODE)
            .map(|extension| CrlReason::from_der(extension.extn_value.as_bytes()))
            .transpose()
            .map_err(malformed)?;
        Ok(Self {
            serial,
            reason_code: reason.map(|reason| reason as u8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmp::{CmpRequest, CmpRequestBody};

    #[test]
    fn openssl_s_rr_names_the_certificate_and_its_reason() {
        let der = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/cmp/rr-signed.der"),
        )
        .unwrap();
        let CmpRequestBody::Rr(content) = CmpRequest::from_der(&der).unwrap().body else {
            panic!("an rr");
        };
        let request = RevocationRequest::from_rr(&content).unwrap();
        assert!(!request.serial.as_str().is_empty());
        assert_eq!(request.reason_code, Some(1), "-revreason 1: keyCompromise");
        for end in 0..content.len() {
            let _ = RevocationRequest::from_rr(&content[..end]);
        }
        assert_eq!(
            RevocationRequest::from_rr(b"garbage"),
            Err(RevocationRefusal::Malformed)
        );
    }
}
