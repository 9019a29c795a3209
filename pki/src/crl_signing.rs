//! CRLs (RFC 5280 §5) encoded by rcgen and signed by the issuing CA's key: the issuing CA
//! as `app::pki::CrlSigner`, which `app::pki::CrlPublication` publishes with.

use app::pki::{CrlReason, CrlSigner, CrlSigningError, IssuingCaId, RevocationListContent};
use domain::{CaRevocationReason, RevocationReason};
use rcgen::{CertificateRevocationListParams, RevokedCertParams};

use crate::x509_time::to_time;
use crate::IssuingCa;

impl CrlSigner for IssuingCa {
    fn ca(&self) -> &IssuingCaId {
        self.id()
    }

    /// A full v2 CRL (RFC 5280 §5): CRL number, authority key identifier, and for each entry
    /// its serial, revocation time and reason code; signed with the CA's key.
    fn sign_crl(&self, content: &RevocationListContent) -> Result<Vec<u8>, CrlSigningError> {
        let time = |at| to_time(at).map_err(|e| CrlSigningError(e.into()));
        let revoked_certs = content
            .entries
            .iter()
            .map(|entry| {
                let serial = hex::decode(&entry.serial).map_err(|e| CrlSigningError(e.into()))?;
                Ok(RevokedCertParams {
                    serial_number: serial.into(),
                    revocation_time: time(entry.revoked_at)?,
                    reason_code: Some(crl_reason(entry.reason)),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CrlSigningError>>()?;
        let params = CertificateRevocationListParams {
            this_update: time(content.this_update)?,
            next_update: time(content.next_update)?,
            crl_number: content.number.into(),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(self.issuer())
            .map_err(|e| CrlSigningError(e.into()))?;
        Ok(crl.der().to_vec())
    }
}

/// RFC 5280's reason code for a domain reason; the same names, so one arm each.
fn crl_reason(reason: CrlReason) -> rcgen::RevocationReason {
    match reason {
        CrlReason::Certificate(reason) => certificate_reason(reason),
        CrlReason::Ca(reason) => ca_reason(reason),
    }
}

fn ca_reason(reason: CaRevocationReason) -> rcgen::RevocationReason {
    match reason {
        CaRevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
        CaRevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
        CaRevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
        CaRevocationReason::Superseded => rcgen::RevocationReason::Superseded,
        CaRevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
    }
}

fn certificate_reason(reason: RevocationReason) -> rcgen::RevocationReason {
    match reason {
        RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
    }
}
