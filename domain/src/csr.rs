//! A PKCS#10 certificate signing request, checked for syntax only.
//!
//! Verifying the request's signature and the key policy is CPU-heavy and belongs to the
//! provisioner in the worker; a CSR that parses here but fails there becomes a domain
//! outcome (`ProvisioningFailed`), not an HTTP error. What this type guarantees is that the
//! text is one PEM block labelled `CERTIFICATE REQUEST` whose DER decodes as PKCS#10, so
//! garbage is refused with a 400 at the edge and never reaches the event store.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::SerialNumber;

/// Why a CSR was refused. Messages never echo the submitted text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("must be at most {max} bytes of PEM")]
    TooLarge { max: usize },
    #[error("must be a PEM block labelled 'CERTIFICATE REQUEST'")]
    NotPem,
    /// The text is kept (and stored), and PEM parsers skip text around the block: a control
    /// character there (a U+0000, which the event store cannot hold) must not ride along.
    #[error("must not contain control characters other than line breaks and tabs")]
    ControlCharacter,
    #[error("must contain exactly one PEM block")]
    TrailingData,
    #[error("the PEM block does not decode as a PKCS#10 certification request")]
    NotPkcs10,
}

/// A syntactically valid CSR, kept as the normalised PEM text the client sent.
///
/// Deserialisation trusts its input (`transparent`): CSRs are only deserialised from the
/// public event envelope, whose CSR comes from a stored event, validated when its command was
/// accepted. (The event store reads stored CSRs with [`Self::recorded`].)
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, description = "A PKCS#10 certificate signing request, PEM; its subject CN is the device's serial number.", example = "-----BEGIN CERTIFICATE REQUEST-----\n...\n-----END CERTIFICATE REQUEST-----\n"))]
#[serde(transparent)]
pub struct CertificateSigningRequest(String);

impl CertificateSigningRequest {
    /// Generous for RSA-4096 with extensions, small enough to bound parsing work.
    pub const MAX_PEM_BYTES: usize = 16 * 1024;

    pub fn from_pem(raw: &str) -> Result<Self, CsrError> {
        if raw.len() > Self::MAX_PEM_BYTES {
            return Err(CsrError::TooLarge {
                max: Self::MAX_PEM_BYTES,
            });
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(CsrError::ControlCharacter);
        }
        let (rest, pem) =
            x509_parser::pem::parse_x509_pem(raw.as_bytes()).map_err(|_| CsrError::NotPem)?;
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::NotPem);
        }
        if !rest.iter().all(u8::is_ascii_whitespace) {
            return Err(CsrError::TrailingData);
        }
        match X509CertificationRequest::from_der(&pem.contents) {
            Ok(([], _)) => Ok(Self(raw.trim().to_owned())),
            _ => Err(CsrError::NotPkcs10),
        }
    }

    /// A CSR as DER (what EST carries, base64-decoded): the same checks as
    /// [`Self::from_pem`], kept as PEM like every other CSR.
    pub fn from_der(der: &[u8]) -> Result<Self, CsrError> {
        let body = STANDARD.encode(der);
        let mut pem = String::with_capacity(body.len() + body.len() / 64 + 80);
        pem.push_str("-----BEGIN CERTIFICATE REQUEST-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE REQUEST-----\n");
        Self::from_pem(&pem)
    }

    pub fn as_pem(&self) -> &str {
        &self.0
    }

    /// A CSR as an event recorded it, not checked again: it passed [`Self::from_pem`] when
    /// its command was accepted, and a recorded fact is read as it was, never re-judged (nor
    /// re-parsed on every load: the hot path). For the event store's schema, which reads
    /// stored events; input goes through [`Self::from_pem`] or [`Self::from_der`].
    pub fn recorded(pem: String) -> Self {
        Self(pem)
    }

    /// The request's SubjectPublicKeyInfo, DER: what a certificate issued for it carries.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.with_request(|csr| csr.certification_request_info.subject_pki.raw.to_vec())
    }

    /// The subject rule every certificate request must meet: exactly one CN, equal to the
    /// device's serial number. (The provisioner checks it with the key policy and the
    /// signature; the EST endpoints check it before registering a device.)
    pub fn check_subject(&self, serial: &SerialNumber) -> Result<(), SubjectMismatch> {
        let names: Vec<String> = self.with_request(|csr| {
            csr.certification_request_info
                .subject
                .iter_common_name()
                .map(|cn| cn.as_str().unwrap_or("").to_owned())
                .collect()
        });
        subject_rule(&names, serial)
    }

    /// The parsed request. The text was checked when this value was made (or comes from an
    /// event that was), so it parses.
    fn with_request<T>(&self, read: impl FnOnce(&X509CertificationRequest<'_>) -> T) -> T {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.0.as_bytes())
            .expect("a CertificateSigningRequest holds one PEM block");
        let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
            .expect("a CertificateSigningRequest holds a PKCS#10 request");
        read(&csr)
    }
}

/// The subject rule of every certificate request, whatever its form: its CNs (`names`) are
/// exactly one, the serial number.
pub(crate) fn subject_rule(names: &[String], serial: &SerialNumber) -> Result<(), SubjectMismatch> {
    if names.len() == 1 && names[0] == serial.as_str() {
        return Ok(());
    }
    Err(SubjectMismatch {
        serial: serial.as_str().to_owned(),
        found: describe_common_names(names),
    })
}

/// A CSR whose subject is not exactly `CN = <serial number>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CSR's subject must have exactly one CN, equal to the device's serial number {serial:?}; it has {found}")]
pub struct SubjectMismatch {
    serial: String,
    found: String,
}

/// The CNs a CSR's subject holds, for a refusal's detail: quoted, each cut to 64 characters
/// (a CN's limit in RFC 5280), at most three named.
fn describe_common_names(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .take(3)
        .map(|cn| format!("{:?}", cn.chars().take(64).collect::<String>()))
        .collect();
    match names.len() {
        0 => "none".to_owned(),
        1 => format!("CN {}", quoted[0]),
        n if n <= 3 => format!("{n} CNs: {}", quoted.join(", ")),
        n => format!("{n} CNs: {}, …", quoted.join(", ")),
    }
}

/// CSRs are public, but they are long and say nothing useful in a log line.
impl fmt::Debug for CertificateSigningRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateSigningRequest({} bytes)", self.0.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn csr_for(common_name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_csr_in_der_is_the_same_request_as_in_pem() {
        let pem = csr_for("SN-1");
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let from_der = CertificateSigningRequest::from_der(&der).unwrap();
        let from_pem = CertificateSigningRequest::from_pem(&pem).unwrap();
        assert_eq!(from_der.public_key_der(), from_pem.public_key_der());
        assert_eq!(
            CertificateSigningRequest::from_der(b"not der"),
            Err(CsrError::NotPkcs10)
        );
    }

    #[test]
    fn the_subject_must_be_exactly_the_serial_number() {
        let serial = SerialNumber::parse("SN-1").unwrap();
        let csr = |cn: &str| CertificateSigningRequest::from_pem(&csr_for(cn)).unwrap();
        assert_eq!(csr("SN-1").check_subject(&serial), Ok(()));
        let refused = csr("SN-2").check_subject(&serial).unwrap_err().to_string();
        assert!(
            refused.contains("\"SN-1\"") && refused.contains("CN \"SN-2\""),
            "{refused}"
        );
    }

    #[test]
    fn accepts_a_real_csr() {
        let pem = csr_for("SN-1");
        assert_eq!(
            CertificateSigningRequest::from_pem(&pem).unwrap().as_pem(),
            pem.trim()
        );
    }

    #[test]
    fn refuses_text_that_is_not_a_csr() {
        assert_eq!(
            CertificateSigningRequest::from_pem("hello"),
            Err(CsrError::NotPem)
        );
        let wrong_label = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            CertificateSigningRequest::from_pem(wrong_label),
            Err(CsrError::NotPem)
        );
        let not_der =
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            CertificateSigningRequest::from_pem(not_der),
            Err(CsrError::NotPkcs10)
        );
    }

    #[test]
    fn refuses_two_blocks_and_oversized_input() {
        let pem = csr_for("SN-1");
        assert_eq!(
            CertificateSigningRequest::from_pem(&format!("{pem}{pem}")),
            Err(CsrError::TrailingData)
        );
        assert!(matches!(
            CertificateSigningRequest::from_pem(&"A".repeat(20_000)),
            Err(CsrError::TooLarge { .. })
        ));
    }
}

#[cfg(test)]
mod stored_text {
    use super::tests::csr_for;
    use super::*;

    /// What is kept is stored in the event's `jsonb` payload, which holds no U+0000: text
    /// around the PEM block (which PEM parsers skip) must not smuggle one in.
    #[test]
    fn text_around_the_block_with_a_nul_is_refused() {
        let pem = csr_for("SN-1");
        for raw in [
            format!("\u{0}\n{pem}"),
            format!("note \u{0}\n{pem}"),
            format!("{pem}\u{0}"),
        ] {
            assert_eq!(
                CertificateSigningRequest::from_pem(&raw),
                Err(CsrError::ControlCharacter)
            );
        }
    }
}
