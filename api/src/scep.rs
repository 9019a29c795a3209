//! SCEP (RFC 8894) for devices: translates a `PKIOperation` message into the enrollment
//! service's calls and the outcome into a `CertRep`, at `/scep/<group>` (`http/scep.rs`).
//! The protocol's steps:
//!
//! - `GetCACaps` (what clients may use), `GetCACert` (the RA's certificate, to which devices
//!   encrypt and by which they check our answers, then the platform CA's);
//! - the message's signature is checked and its envelope opened with the RA key in its token
//!   (`pki::scep::ScepRa`; DES and SHA-1, which devices in the field still send whatever the
//!   capabilities say, are accepted and counted);
//! - **`PKCSReq`** enrolls the device: its CSR's challenge password is the device's key,
//!   derived from the group the path names (`DeviceEnrollmentService::authenticate`, the
//!   serial the CSR's one CN), and the request is kept only as a `VerifiedCsr`, without the
//!   challenge. A client polls by sending the same request again (micromdm's `scepclient`,
//!   certmonger): the same command, answered `PENDING`, then `SUCCESS` with the certificate.
//!   A `PKCSReq` signed with the device's current certificate is a renewal (certmonger
//!   renews so);
//! - **`RenewalReq`**, signed with the device's current certificate, renews it
//!   (`DeviceEnrollmentService::reenroll`: the device decides that it is its current one);
//! - **`CertPoll`** (GetCertInitial), signed with the requested key, says where the request
//!   stands (`DeviceEnrollmentService::poll_by_key`).
//!
//! Must not: keep or log a challenge password, hold a CA key, or decrypt outside the token.

use std::sync::Arc;

use app::{
    Correlation, DeviceEnrollmentService, EnrollmentError, EnrollmentProgress, EnrollmentProtocol,
    EnrollmentRefusal, PresentedCertificate,
};
use domain::{DeviceCredential, EnrollmentGroupName, SerialNumber, SigningRequest};
use pki::scep::{
    open_envelope, EnvelopeError, MessageType, ScepCertificateRequest, ScepFailInfo, ScepRa,
    ScepRequest, ScepStatus,
};

use crate::device_certificates::DeviceCertificates;

/// What `GetCACaps` says (RFC 8894 §3.5.2): POST for `PKIOperation`, SHA-256 and AES (which
/// certmonger picks in this order), renewal, and the standard's own capability set.
pub const CA_CAPS: &str = "POSTPKIOperation\nAES\nSHA-256\nSHA-1\nDES3\nRenewal\nSCEPStandard\n";

pub struct ScepServer {
    enrollment: Arc<DeviceEnrollmentService>,
    certificates: Arc<DeviceCertificates>,
    ra: Arc<ScepRa>,
}

/// What a `PKIOperation` came to.
pub enum ScepReply {
    /// A `CertRep` (`application/x-pki-message`), and how it is counted.
    CertRep {
        message: Vec<u8>,
        operation: &'static str,
        outcome: &'static str,
    },
    /// The message does not read: there is no transaction to answer (HTTP 400).
    Unreadable(String),
    /// The RA key's token does not answer (HTTP 503).
    Unavailable,
}

impl ScepServer {
    pub fn new(
        enrollment: Arc<DeviceEnrollmentService>,
        certificates: Arc<DeviceCertificates>,
        ra: Arc<ScepRa>,
    ) -> Self {
        Self {
            enrollment,
            certificates,
            ra,
        }
    }

    /// `GetCACert`'s body.
    pub fn ca_ra_certs(&self) -> Vec<u8> {
        self.ra.ca_ra_certs().to_vec()
    }

    /// The answer to `der`, a `PKIOperation` message sent to the path of group `label`.
    /// `admit` takes a command slot once the device is authenticated (`None`: none free; the
    /// slot, `G`, is held while the command runs).
    pub async fn answer<G>(
        &self,
        label: &EnrollmentGroupName,
        der: &[u8],
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> ScepReply {
        let request = match ScepRequest::from_der(der) {
            Ok(request) => request,
            Err(error) => return ScepReply::Unreadable(error.to_string()),
        };
        if request.signed_with_sha1 {
            metrics::counter!("scep_legacy_algorithms_total", "algorithm" => "sha1").increment(1);
        }
        let operation = request.message_type.name();
        let ra = self.ra.clone();
        let envelope = request.envelope.clone();
        let opened = tokio::task::spawn_blocking(move || {
            open_envelope(&envelope, &ra.answers().recipient(), |ct| ra.decrypt(ct))
        })
        .await;
        let status = match opened {
            Ok(Ok(opened)) => {
                let cipher = opened.cipher;
                if matches!(
                    cipher,
                    pki::scep::ContentCipher::DesCbc | pki::scep::ContentCipher::DesEde3Cbc
                ) {
                    metrics::counter!("scep_legacy_algorithms_total", "algorithm" => cipher.name())
                        .increment(1);
                }
                self.step(label, &request, &opened.content, correlation, admit)
                    .await
            }
            Ok(Err(EnvelopeError::KeyUnavailable(unavailable))) => {
                tracing::warn!(error = %unavailable, "the SCEP RA key did not decrypt");
                return ScepReply::Unavailable;
            }
            Ok(Err(EnvelopeError::Cipher)) => Err(ScepFailInfo::BadAlg),
            Ok(Err(_)) => Err(ScepFailInfo::BadMessageCheck),
            Err(_) => return ScepReply::Unavailable,
        };
        let status = match status {
            Ok(status) => status,
            Err(info) => ScepStatus::Failure(info),
        };
        let outcome = match &status {
            ScepStatus::Success { .. } => "issued",
            ScepStatus::Pending => "pending",
            ScepStatus::Failure(ScepFailInfo::BadMessageCheck) => "unauthorized",
            ScepStatus::Failure(_) => "refused",
        };
        let ra = self.ra.clone();
        match tokio::task::spawn_blocking(move || ra.answers().answer(&request, &status)).await {
            Ok(Ok(message)) => ScepReply::CertRep {
                message,
                operation,
                outcome,
            },
            Ok(Err(pki::scep::CertRepError::RequesterKey)) => ScepReply::Unreadable(
                "the request's signer key is not RSA: the answer cannot be encrypted to it".into(),
            ),
            Ok(Err(error)) => {
                tracing::warn!(%error, "a SCEP answer could not be signed");
                ScepReply::Unavailable
            }
            Err(_) => ScepReply::Unavailable,
        }
    }

    /// What the request, its envelope's `content` opened, comes to.
    async fn step<G>(
        &self,
        label: &EnrollmentGroupName,
        request: &ScepRequest,
        content: &[u8],
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> Result<ScepStatus, ScepFailInfo> {
        // Signed with a certificate this service issued: the device renews (RenewalReq, or
        // certmonger's PKCSReq), authenticated by it.
        let presented = self.presented(request);
        match (request.message_type, presented) {
            (MessageType::CertPoll, _) => self.poll(label, request, content).await,
            (MessageType::RenewalReq | MessageType::PkcsReq, Some(presented)) => {
                let csr = certificate_request(content)?;
                let _admitted = admit().ok_or(ScepFailInfo::BadRequest)?;
                let progress = self
                    .enrollment
                    .reenroll(
                        EnrollmentProtocol::Scep,
                        &presented,
                        SigningRequest::VerifiedPkcs10(csr.request),
                        correlation,
                    )
                    .await;
                status_of(progress)
            }
            (MessageType::RenewalReq, None) => Err(ScepFailInfo::BadMessageCheck),
            (MessageType::PkcsReq, None) => {
                let csr = certificate_request(content)?;
                let serial = match csr.request.common_names() {
                    [one] => SerialNumber::parse(one).map_err(|_| ScepFailInfo::BadRequest)?,
                    _ => return Err(ScepFailInfo::BadRequest),
                };
                let challenge = csr
                    .challenge_password
                    .as_ref()
                    .ok_or(ScepFailInfo::BadMessageCheck)?;
                let credential = DeviceCredential::parse(serial.as_str(), challenge.expose())
                    .map_err(|_| ScepFailInfo::BadMessageCheck)?;
                let device = self
                    .enrollment
                    .authenticate(Some(label), &credential)
                    .await
                    .map_err(fail_info)?;
                let _admitted = admit().ok_or(ScepFailInfo::BadRequest)?;
                let progress = self
                    .enrollment
                    .enroll(
                        EnrollmentProtocol::Scep,
                        device,
                        SigningRequest::VerifiedPkcs10(csr.request),
                        correlation,
                    )
                    .await;
                status_of(progress)
            }
        }
    }

    /// A `CertPoll`: its `IssuerAndSubject` names the device by its subject's CN; only the
    /// holder of the requested key (the message's signer) learns where it stands.
    async fn poll(
        &self,
        label: &EnrollmentGroupName,
        request: &ScepRequest,
        content: &[u8],
    ) -> Result<ScepStatus, ScepFailInfo> {
        let serial = pki::scep::polled_common_name(content).ok_or(ScepFailInfo::BadRequest)?;
        let serial = SerialNumber::parse(&serial).map_err(|_| ScepFailInfo::BadRequest)?;
        let key = request
            .signer_public_key()
            .ok_or(ScepFailInfo::BadMessageCheck)?;
        let progress = self.enrollment.poll_by_key(label, &serial, &key).await;
        status_of(progress)
    }

    /// The request's signer as a device certificate, when this service issued it and it is
    /// valid now.
    fn presented(&self, request: &ScepRequest) -> Option<PresentedCertificate> {
        let presented = self
            .certificates
            .presented(&request.signer_certificate)
            .ok()?;
        request.signer_valid_now().then_some(presented)
    }
}

/// The CSR an envelope held, its signature verified.
fn certificate_request(content: &[u8]) -> Result<ScepCertificateRequest, ScepFailInfo> {
    ScepCertificateRequest::from_der(content).map_err(|error| match error {
        pki::scep::ScepCsrError::NotPkcs10 => ScepFailInfo::BadRequest,
        pki::scep::ScepCsrError::Signature => ScepFailInfo::BadMessageCheck,
    })
}

/// Where an enrollment stands, as a `CertRep` says it.
fn status_of(
    progress: Result<EnrollmentProgress, EnrollmentError>,
) -> Result<ScepStatus, ScepFailInfo> {
    match progress.map_err(fail_info)? {
        EnrollmentProgress::Pending { .. } => Ok(ScepStatus::Pending),
        EnrollmentProgress::Issued { certificate, .. } => ::pem::parse(&certificate.pem)
            .map(|block| ScepStatus::Success {
                certificate: block.into_contents(),
            })
            .map_err(|_| ScepFailInfo::BadRequest),
    }
}

/// The one place enrollment outcomes become SCEP's `failInfo` (RFC 8894 §3.2.1.4 has only
/// five; clients stop at others): a credential or certificate that does not authenticate is
/// `badMessageCheck`, a request that cannot be granted `badRequest`, an outage too (SCEP has
/// no "try later" for it; the client asks again).
fn fail_info(error: EnrollmentError) -> ScepFailInfo {
    use EnrollmentRefusal as R;
    match error {
        EnrollmentError::Refused(
            R::InvalidCredential | R::UnknownCertificate | R::CertificateRevoked,
        ) => ScepFailInfo::BadMessageCheck,
        EnrollmentError::Refused(R::NoRequest) => ScepFailInfo::BadCertId,
        EnrollmentError::Refused(_) => ScepFailInfo::BadRequest,
        other => {
            tracing::warn!(error = %other, "SCEP enrollment failed");
            ScepFailInfo::BadRequest
        }
    }
}
