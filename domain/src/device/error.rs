//! Rejections: the command was understood but the device's state forbids it. These map to
//! 404/409 answers; infrastructure failures are a different type in another layer.

/// `PartialEq` so that tests can `then_expect_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No such device for the acting tenant (it may exist in another tenant; we never say).
    #[error("device not found")]
    NotFound,
    #[error("a device with this serial number is already registered")]
    AlreadyRegistered,
    #[error("the device's first certificate is still being issued")]
    ProvisioningInProgress,
    #[error("the device is decommissioned")]
    Decommissioned,
    #[error("the device has no certificate to revoke")]
    NoCertificate,
    #[error("the device's certificate is already revoked")]
    CertificateAlreadyRevoked,
    /// A request authenticated by a certificate that is not the device's current, unrevoked
    /// one: revoked, superseded by a renewal, or another CA's.
    #[error("the certificate presented is not the device's current certificate: it is revoked or superseded, or its CA is revoked")]
    CertificateNotCurrent,
    /// An enrollment with the group's credential for a device that holds a usable
    /// certificate: it renews with that certificate instead.
    #[error("the device holds a live certificate of a CA that is not revoked: it renews with that certificate")]
    StillCertified,
}
