//! Why a command on a tenant's CAs is refused: the command was understood, the CAs' state
//! forbids it (404/409 answers; infrastructure failures are another layer's type).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantCasError {
    /// The tenant has no CAs of its own (or the command names another tenant's).
    #[error("the tenant has no certificate authorities of its own")]
    NotFound,
    #[error("the tenant's certificate authorities exist already")]
    AlreadyCreated,
    #[error("the tenant has no such certificate authority")]
    UnknownCa,
    #[error("the certificate authority is certified already")]
    AlreadyCertified,
    #[error("the tenant's root certificate authority is not certified yet")]
    RootNotCertified,
    #[error("the certificate has expired already")]
    CertificateExpired,
    #[error("no issuing certificate authority is certified yet: there is nothing to rotate")]
    NothingToRotate,
    #[error("a rotation is under way: the next issuing certificate authority is being made")]
    RotationInProgress,
    #[error("the certificate authority still issues, or has not been rotated out")]
    StillIssuing,
    #[error("the certificate authority is revoked")]
    AlreadyRevoked,
    #[error("the certificate authority has no certificate to revoke yet")]
    NotCertified,
    /// Revoking a tenant's root would leave its relying parties without a trust anchor; it is
    /// replaced by creating the tenant's CAs anew, not by a command here.
    #[error("a tenant's root certificate authority cannot be revoked here; only an issuing one")]
    RootNotRevocable,
}
