//! `PKIFailureInfo` (RFC 4210 §5.2.3, with RFC 9480's additions): the reasons a CMP error
//! names, each a bit of a BIT STRING, numbered once here.

/// One reason a request is refused; its value is its bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PkiFailure {
    BadAlg = 0,
    BadMessageCheck = 1,
    BadRequest = 2,
    BadTime = 3,
    BadCertId = 4,
    BadDataFormat = 5,
    WrongAuthority = 6,
    IncorrectData = 7,
    BadPop = 9,
    CertRevoked = 10,
    BadRecipientNonce = 13,
    BadSenderNonce = 18,
    BadCertTemplate = 19,
    SignerNotTrusted = 20,
    TransactionIdInUse = 21,
    UnsupportedVersion = 22,
    NotAuthorized = 23,
    SystemUnavail = 24,
    SystemFailure = 25,
    DuplicateCertReq = 26,
}

impl PkiFailure {
    /// Its bit in `PKIFailureInfo`.
    pub fn bit(self) -> u8 {
        self as u8
    }
}
