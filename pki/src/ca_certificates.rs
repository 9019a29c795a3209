//! A CA's certificates as the api holds them, without any key (`CA_CERT_PATH`: the issuing
//! CA's certificate first, then any chain above it): what EST's `cacerts` serves, and which
//! client certificates that CA issued (the only ones that re-enroll a device); CMP gives the
//! same certificates.
//!
//! Must not: hold or load a key, or trust a certificate for anything but naming its serial.

use app::pki::{CertificateSerialHex, IssuingCaId};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::est_wire_format;

/// The certificates of one PEM file, the issuing CA's first.
pub struct CaCertificates {
    /// Each certificate, DER, in the file's order.
    chain: Vec<Vec<u8>>,
    issuing_ca_id: IssuingCaId,
}

/// The file cannot serve as the CA's certificates.
#[derive(Debug, thiserror::Error)]
pub enum CaCertificatesError {
    #[error("{0}")]
    Pem(#[from] ::pem::PemError),
    #[error("holds no PEM CERTIFICATE")]
    NoCertificate,
    #[error("its first certificate does not parse: {0}")]
    Unparsable(String),
}

/// Why a presented certificate names no device of this CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIssuedHere {
    /// It is not a DER X.509 certificate.
    Unreadable,
    /// Another CA issued it (TLS may trust more CAs than the one that issues devices').
    OtherIssuer,
}

impl CaCertificates {
    pub fn from_pem(text: &str) -> Result<Self, CaCertificatesError> {
        let chain: Vec<Vec<u8>> = ::pem::parse_many(text)?
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| block.into_contents())
            .collect();
        let first = chain.first().ok_or(CaCertificatesError::NoCertificate)?;
        let (_, issuing_ca) = X509Certificate::from_der(first)
            .map_err(|e| CaCertificatesError::Unparsable(e.to_string()))?;
        let issuing_ca_id = IssuingCaId::of_public_key(issuing_ca.public_key().raw);
        Ok(Self {
            chain,
            issuing_ca_id,
        })
    }

    /// The issuing CA's id, as its certificates' URLs name it.
    pub fn issuing_ca_id(&self) -> &IssuingCaId {
        &self.issuing_ca_id
    }

    /// Every certificate, DER, the issuing CA's first (CMP's `caPubs` and `genp`).
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain.clone()
    }

    /// EST's `cacerts` body: every certificate as certs-only PKCS#7, DER.
    pub fn certs_only(&self) -> Result<Vec<u8>, der::Error> {
        let certificates: Vec<&[u8]> = self.chain.iter().map(Vec::as_slice).collect();
        est_wire_format::certs_only(&certificates)
    }

    /// The serial of `der` if the issuing CA signed it.
    pub fn issued(&self, der: &[u8]) -> Result<CertificateSerialHex, NotIssuedHere> {
        issued_by(der, &self.chain[0])
    }
}

/// The serial of the certificate `der` if the CA whose certificate is `ca_der` signed it
/// (its issuer is that CA's subject and the CA's key verifies its signature).
pub fn issued_by(der: &[u8], ca_der: &[u8]) -> Result<CertificateSerialHex, NotIssuedHere> {
    let (_, certificate) = X509Certificate::from_der(der).map_err(|_| NotIssuedHere::Unreadable)?;
    let Ok((_, issuer)) = X509Certificate::from_der(ca_der) else {
        return Err(NotIssuedHere::OtherIssuer);
    };
    let signed_by_issuer = certificate.issuer() == issuer.subject()
        && certificate
            .verify_signature(Some(issuer.public_key()))
            .is_ok();
    if !signed_by_issuer {
        return Err(NotIssuedHere::OtherIssuer);
    }
    Ok(CertificateSerialHex::from_bytes(certificate.raw_serial()))
}
