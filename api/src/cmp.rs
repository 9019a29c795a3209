//! CMP (RFC 4210, RFC 9483's lightweight profile, over HTTP as RFC 6712 carries it) for
//! devices: translates a `PKIMessage` into the enrollment service's calls and the outcome
//! into the answer, at `/.well-known/cmp/p/<group>` (`http/cmp.rs`). The protocol's steps:
//!
//! - **authentication**: a password-based MAC (`pki::cmp::PasswordBasedMac`) whose secret is
//!   the device's key as the factory burns it (HMAC-SHA256 of the group key and the serial,
//!   base64), named by `senderKID`, the device's serial number; checked by the enrollment
//!   service against the group the path names (an unknown group, serial or secret is one
//!   refusal). Answers to an authenticated device are protected with the same MAC; a
//!   message that does not read or whose sender is not authenticated is answered with an
//!   unprotected `error` (RFC 9483 §3.6.4);
//! - `ir` and `cr` (a CRMF request, its proof of possession checked here and again by the
//!   provisioner) and `p10cr` (a PKCS#10 request) enroll the device
//!   (`DeviceEnrollmentService::enroll`, as EST's `simpleenroll` does); the certificate when
//!   it is there, else `waiting`; `pollReq` then asks where the request stands
//!   (`DeviceEnrollmentService::poll`): `pollRep` with `checkAfter`, or the certificate;
//! - `certConf` is answered with `pkiConf` (the certificate is already published; a device
//!   that rejects it asks again), `implicitConfirm` is granted to whoever asks;
//! - `genm` with `id-it-caCerts`: the certificates the group's devices chain to;
//! - **a device with a certificate** signs its request with it, the certificate first in
//!   `extraCerts` (RFC 9483 §3.2): the signature is checked, the certificate must be one a CA
//!   of this service issued (`DeviceCertificates`) and within its validity, and the device
//!   decides whether it is its current one. `kur` renews it (a CRMF request, as
//!   `simplereenroll` does), `rr` revokes it (only the certificate that signs the request),
//!   `pollReq` and `certConf` follow a `kur`. Answers to signed requests are signed by the
//!   api's CMP signer (`CMP_SIGNER_CERT_PATH`, `id-kp-cmcRA`, made by `worker cmp-signer`),
//!   its chain in `extraCerts`; without one, signed requests are refused.
//!
//! Must not: hold a CA key, keep state between a transaction's messages (any api instance
//! answers any message; a poll carries what it needs, `CertAnswerKind::polled_by`), or log a
//! device's key.

mod cmp_failure;

use std::sync::Arc;
use std::time::Duration;

use app::{
    AuthenticatedDevice, Correlation, DeviceEnrollmentService, EnrollmentProgress,
    EnrollmentProtocol, PresentedCertificate,
};
use der::Decode;
use domain::{
    CertificateSigningRequest, DeviceKey, EnrollmentGroupName, RevocationReason, SerialNumber,
    SigningRequest,
};
use pki::cmp::{
    CertAnswerKind, CmpAnswer, CmpAnswerBody, CmpProtection, CmpRequest, CmpRequestBody, CmpSigner,
    CrmfCertificateRequest, PasswordBasedMac, PkiFailure, RevocationRequest,
};
use x509_cert::name::Name;

pub use cmp_failure::CmpFailure;

use crate::device_certificates::{DeviceCertificates, NotADeviceCertificate};

/// The CMP endpoint's service and what its answers carry, built once at start.
pub struct CmpServer {
    enrollment: Arc<DeviceEnrollmentService>,
    /// The certificates that authenticate a device, and what devices of tenants without CAs
    /// chain to.
    certificates: Arc<DeviceCertificates>,
    /// Signs the answers to signed requests; `None`: signed requests are refused.
    signer: Option<CmpSigner>,
    /// The `sender` of MAC-protected answers and of unprotected errors.
    name: Name,
    /// A waiting device's `checkAfter`.
    check_after: Duration,
}

/// What a request came to: the answer, and how it is counted in
/// `cmp_requests_total{operation, outcome}`.
pub struct CmpReply {
    pub message: Vec<u8>,
    pub operation: &'static str,
    pub outcome: &'static str,
}

/// The answer's sender: the service's CMP endpoint, not a CA (no CA key signs here).
const SENDER: &str = "CN=Device Provisioning CMP";

impl CmpServer {
    pub fn new(
        enrollment: Arc<DeviceEnrollmentService>,
        certificates: Arc<DeviceCertificates>,
        signer: Option<CmpSigner>,
        check_after: Duration,
    ) -> Self {
        Self {
            enrollment,
            certificates,
            signer,
            name: SENDER.parse().expect("a constant name"),
            check_after,
        }
    }

    /// The answer to `der`, a device's `PKIMessage`, sent to the path of group `label`.
    /// `admit` takes a command slot once the device is authenticated (`None`: none free; the
    /// slot, `G`, is held while the command runs).
    pub async fn answer<G>(
        &self,
        label: &EnrollmentGroupName,
        der: &[u8],
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> CmpReply {
        let request = match CmpRequest::from_der(der) {
            Ok(request) => request,
            Err(error) => {
                let failure = CmpFailure::new(error.failure(), error.to_string());
                return self.unprotected(None, "unreadable", failure);
            }
        };
        let operation = request.body.name();
        match &request.protection {
            CmpProtection::PasswordBasedMac(mac) => {
                self.answer_mac_protected(label, &request, mac, correlation, admit)
                    .await
            }
            CmpProtection::Signature(_) => self.answer_signed(&request, correlation, admit).await,
        }
        .unwrap_or_else(|failure| self.unprotected(Some(&request), operation, failure))
    }

    /// A request protected by the device's group-derived key: answered with the same MAC.
    /// `Err`: the sender is not authenticated (answered unprotected).
    async fn answer_mac_protected<G>(
        &self,
        label: &EnrollmentGroupName,
        request: &CmpRequest,
        mac: &PasswordBasedMac,
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> Result<CmpReply, CmpFailure> {
        let (device, key) = self.authenticate(label, request, mac).await?;
        let body = self
            .step(request, device, correlation, admit)
            .await
            .unwrap_or_else(CmpFailure::into_body);
        let message = self
            .mac_protected(request, mac, &key, &body)
            .map_err(|error| {
                tracing::error!(%error, "a CMP answer does not encode");
                CmpFailure::new(PkiFailure::SystemFailure, "internal error")
            })?;
        Ok(reply(request, message, &body))
    }

    /// A request signed with the device's certificate: answered signed by the api's CMP
    /// signer, refusals included. `Err`: there is no signer (answered unprotected).
    async fn answer_signed<G>(
        &self,
        request: &CmpRequest,
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> Result<CmpReply, CmpFailure> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            CmpFailure::new(
                PkiFailure::NotAuthorized,
                "this server answers signed requests only with a CMP signer (CMP_SIGNER_CERT_PATH); use a password-based MAC",
            )
        })?;
        let body = match self.authenticate_signed(request) {
            Ok(presented) => {
                self.step_signed(request, &presented, correlation, admit)
                    .await
            }
            Err(failure) => Err(failure),
        }
        .unwrap_or_else(CmpFailure::into_body);
        let message = self.signed(request, signer, &body)?;
        Ok(reply(request, message, &body))
    }

    /// The device that `senderKID` names, if the request's MAC was made with its key.
    async fn authenticate(
        &self,
        label: &EnrollmentGroupName,
        request: &CmpRequest,
        mac: &PasswordBasedMac,
    ) -> Result<(app::AuthenticatedDevice, DeviceKey), CmpFailure> {
        let serial = request
            .sender_kid
            .as_deref()
            .and_then(|kid| std::str::from_utf8(kid).ok())
            .and_then(|kid| SerialNumber::parse(kid).ok())
            .ok_or_else(|| {
                CmpFailure::new(
                    PkiFailure::BadRequest,
                    "senderKID must be the device's serial number",
                )
            })?;
        let proof =
            |secret: &[u8]| mac.verifies(secret, &request.protected_part, &request.protection_bits);
        Ok(self
            .enrollment
            .authenticate_proof(label, &serial, &proof)
            .await?)
    }

    /// The device whose certificate signed `request`: the first of `extraCerts` (RFC 9483
    /// §3.2), its signature over the message verified, issued by a CA of this service and
    /// within its validity. Whether it may still act for the device, the device decides.
    fn authenticate_signed(
        &self,
        request: &CmpRequest,
    ) -> Result<PresentedCertificate, CmpFailure> {
        let certificate = request.extra_certs.first().ok_or_else(|| {
            CmpFailure::new(
                PkiFailure::BadMessageCheck,
                "a signed request carries the certificate that signs it first in extraCerts",
            )
        })?;
        request
            .signed_by(certificate)
            .map_err(|refusal| CmpFailure::new(PkiFailure::BadMessageCheck, refusal.to_string()))?;
        let presented =
            self.certificates
                .presented(certificate)
                .map_err(|not_ours| match not_ours {
                    NotADeviceCertificate::Unreadable => CmpFailure::new(
                        PkiFailure::BadDataFormat,
                        "the signer's certificate is not an X.509 certificate",
                    ),
                    NotADeviceCertificate::OtherIssuer => CmpFailure::new(
                        PkiFailure::NotAuthorized,
                        "the signer's certificate is not one this service issued to a device",
                    ),
                })?;
        let validity = x509_cert::Certificate::from_der(certificate)
            .map(|certificate| certificate.tbs_certificate.validity)
            .map_err(|_| {
                CmpFailure::new(
                    PkiFailure::BadDataFormat,
                    "the signer's certificate does not decode",
                )
            })?;
        let now = std::time::SystemTime::now();
        if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
            return Err(CmpFailure::new(
                PkiFailure::NotAuthorized,
                "the signer's certificate is not valid now",
            ));
        }
        Ok(presented)
    }

    /// What a signed request comes to.
    async fn step_signed<G>(
        &self,
        request: &CmpRequest,
        presented: &PresentedCertificate,
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> Result<CmpAnswerBody, CmpFailure> {
        match &request.body {
            CmpRequestBody::Kur(content) => {
                let crmf = CrmfCertificateRequest::from_cert_req_messages(content)
                    .map_err(|refusal| CmpFailure::new(refusal.failure(), refusal.to_string()))?;
                let _admitted = admit().ok_or_else(CmpFailure::unavailable)?;
                let progress = self
                    .enrollment
                    .reenroll(
                        EnrollmentProtocol::Cmp,
                        presented,
                        SigningRequest::Crmf(crmf.request),
                        correlation,
                    )
                    .await?;
                self.certificate_or(progress, None, CertAnswerKind::Kup, crmf.cert_req_id, |kind, cert_req_id| {
                    CmpAnswerBody::Waiting { kind, cert_req_id }
                })
                .await
            }
            CmpRequestBody::Rr(content) => {
                let revocation = RevocationRequest::from_rr(content)
                    .map_err(|refusal| CmpFailure::new(refusal.failure(), refusal.to_string()))?;
                if revocation.serial != presented.serial {
                    return Err(CmpFailure::new(
                        PkiFailure::BadCertId,
                        "an rr revokes the certificate that signs it",
                    ));
                }
                let reason = revocation_reason(revocation.reason_code)?;
                let _admitted = admit().ok_or_else(CmpFailure::unavailable)?;
                self.enrollment
                    .revoke(EnrollmentProtocol::Cmp, presented, reason, correlation)
                    .await?;
                Ok(CmpAnswerBody::Revoked)
            }
            CmpRequestBody::PollReq(_) => {
                let progress = self.enrollment.poll_presented(presented).await;
                self.polled(request, None, progress).await
            }
            CmpRequestBody::CertConf(_) => Ok(CmpAnswerBody::Confirmed),
            CmpRequestBody::Ir(_) | CmpRequestBody::Cr(_) | CmpRequestBody::P10cr(_) => {
                Err(CmpFailure::new(
                    PkiFailure::NotAuthorized,
                    "a device with a certificate renews it with kur; a new device enrolls with its group's MAC credential",
                ))
            }
            CmpRequestBody::Genm(_) => Err(CmpFailure::new(
                PkiFailure::BadRequest,
                "ask for the CA certificates with the group's MAC credential",
            )),
        }
    }

    /// What an authenticated device's request comes to.
    async fn step<G>(
        &self,
        request: &CmpRequest,
        device: AuthenticatedDevice,
        correlation: Correlation,
        admit: impl FnOnce() -> Option<G>,
    ) -> Result<CmpAnswerBody, CmpFailure> {
        let (kind, cert_req_id, signing_request) = match &request.body {
            CmpRequestBody::Ir(content) | CmpRequestBody::Cr(content) => {
                let crmf = CrmfCertificateRequest::from_cert_req_messages(content)
                    .map_err(|refusal| CmpFailure::new(refusal.failure(), refusal.to_string()))?;
                let kind = match request.body {
                    CmpRequestBody::Ir(_) => CertAnswerKind::Ip,
                    _ => CertAnswerKind::Cp,
                };
                (kind, crmf.cert_req_id, SigningRequest::Crmf(crmf.request))
            }
            CmpRequestBody::P10cr(content) => {
                let csr = CertificateSigningRequest::from_der(content).map_err(|error| {
                    CmpFailure::new(
                        PkiFailure::BadDataFormat,
                        format!("the p10cr is not a certificate request: {error}"),
                    )
                })?;
                (CertAnswerKind::Cp, 0, SigningRequest::Pkcs10(csr))
            }
            CmpRequestBody::PollReq(_) => {
                let progress = self.enrollment.poll(&device).await;
                return self
                    .polled(request, Some(&device.group().name), progress)
                    .await;
            }
            CmpRequestBody::CertConf(_) => return Ok(CmpAnswerBody::Confirmed),
            CmpRequestBody::Genm(_) if request.asks_for_ca_certificates() => {
                let chain = self.chain(&device.group().name).await?;
                return Ok(CmpAnswerBody::CaCertificates(chain));
            }
            CmpRequestBody::Genm(_) => {
                return Err(CmpFailure::new(
                    PkiFailure::BadRequest,
                    "a genm is answered only for id-it-caCerts",
                ))
            }
            CmpRequestBody::Kur(_) | CmpRequestBody::Rr(_) => {
                return Err(CmpFailure::new(
                    PkiFailure::NotAuthorized,
                    format!(
                        "a {} is signed with the device's current certificate",
                        request.body.name()
                    ),
                ))
            }
        };
        let _admitted = admit().ok_or_else(CmpFailure::unavailable)?;
        let group = device.group().name.clone();
        let progress = self
            .enrollment
            .enroll(
                EnrollmentProtocol::Cmp,
                device,
                signing_request,
                correlation,
            )
            .await?;
        self.certificate_or(
            progress,
            Some(&group),
            kind,
            cert_req_id,
            |kind, cert_req_id| CmpAnswerBody::Waiting { kind, cert_req_id },
        )
        .await
    }

    /// A `pollReq` answered from `progress`: the certificate the transaction waits for, or
    /// `pollRep`. `group`: whose CA certificates an `ip` carries.
    async fn polled(
        &self,
        request: &CmpRequest,
        group: Option<&EnrollmentGroupName>,
        progress: Result<EnrollmentProgress, app::EnrollmentError>,
    ) -> Result<CmpAnswerBody, CmpFailure> {
        let bad_poll = || {
            CmpFailure::new(
                PkiFailure::BadRequest,
                "a pollReq names one certReqId, and follows a waiting answer of this transaction",
            )
        };
        let cert_req_id = request.polled_cert_req_id().ok_or_else(bad_poll)?;
        let kind = CertAnswerKind::polled_by(request).ok_or_else(bad_poll)?;
        let check_after_seconds = u32::try_from(self.check_after.as_secs()).unwrap_or(u32::MAX);
        self.certificate_or(progress?, group, kind, cert_req_id, |kind, cert_req_id| {
            CmpAnswerBody::PollAgain {
                kind,
                cert_req_id,
                check_after_seconds,
            }
        })
        .await
    }

    /// The certificate, with (in an `ip`) the CA certificates the device of `group` should
    /// trust, or, while it is being issued, `pending`'s answer.
    async fn certificate_or(
        &self,
        progress: EnrollmentProgress,
        group: Option<&EnrollmentGroupName>,
        kind: CertAnswerKind,
        cert_req_id: i64,
        pending: impl FnOnce(CertAnswerKind, i64) -> CmpAnswerBody,
    ) -> Result<CmpAnswerBody, CmpFailure> {
        let certificate = match progress {
            EnrollmentProgress::Pending { .. } => return Ok(pending(kind, cert_req_id)),
            EnrollmentProgress::Issued { certificate, .. } => certificate,
        };
        let der = ::pem::parse(&certificate.pem)
            .map_err(|_| CmpFailure::new(PkiFailure::SystemFailure, "internal error"))?
            .into_contents();
        // RFC 9483 §4.1.1: an `ip` may carry the trust anchor a new device lacks.
        let ca_pubs = match (kind, group) {
            (CertAnswerKind::Ip, Some(group)) => self.chain(group).await?,
            _ => Vec::new(),
        };
        Ok(CmpAnswerBody::Certified {
            kind,
            cert_req_id,
            certificate: der,
            ca_pubs,
        })
    }

    /// The certificates the group's devices chain to: its tenant's CAs, or the platform's.
    async fn chain(&self, group: &EnrollmentGroupName) -> Result<Vec<Vec<u8>>, CmpFailure> {
        let tenant_chain = self.enrollment.ca_chain(group).await?;
        Ok(match tenant_chain {
            Some(pems) => pems
                .iter()
                .filter_map(|pem| ::pem::parse(pem).ok())
                .map(|block| block.into_contents())
                .collect(),
            None => self.certificates.platform_chain(),
        })
    }

    /// `body`, signed by the api's CMP signer, its chain in `extraCerts`.
    fn signed(
        &self,
        request: &CmpRequest,
        signer: &CmpSigner,
        body: &CmpAnswerBody,
    ) -> Result<Vec<u8>, CmpFailure> {
        let internal = |error: der::Error| {
            tracing::error!(%error, "a CMP answer does not encode");
            CmpFailure::new(PkiFailure::SystemFailure, "internal error")
        };
        let answer = CmpAnswer::new(
            request,
            signer.subject().clone(),
            signer.algorithm(),
            None,
            grants_implicit_confirm(request, body),
            body,
        )
        .map_err(internal)?;
        let signature = signer
            .sign(&answer.protected_part().map_err(internal)?)
            .map_err(|unavailable| {
                tracing::warn!(error = %unavailable, "the CMP signer did not sign");
                CmpFailure::unavailable()
            })?;
        answer
            .into_message(&signature, signer.chain())
            .map_err(internal)
    }

    /// `body`, protected with the request's MAC parameters and the device's key.
    fn mac_protected(
        &self,
        request: &CmpRequest,
        mac: &PasswordBasedMac,
        key: &DeviceKey,
        body: &CmpAnswerBody,
    ) -> Result<Vec<u8>, der::Error> {
        let answer = CmpAnswer::new(
            request,
            self.name.clone(),
            mac.algorithm().clone(),
            None,
            grants_implicit_confirm(request, body),
            body,
        )?;
        let protection = mac.protect(key.to_base64().as_bytes(), &answer.protected_part()?);
        answer.into_message(&protection, &[])
    }

    /// An `error` without protection, to a request that did not read or whose sender is not
    /// authenticated.
    fn unprotected(
        &self,
        request: Option<&CmpRequest>,
        operation: &'static str,
        failure: CmpFailure,
    ) -> CmpReply {
        let message = CmpAnswer::unprotected_error(
            request,
            self.name.clone(),
            failure.failure,
            &failure.text,
        )
        .unwrap_or_else(|error| {
            // Ours to fix: the handler answers an empty message with a 500.
            tracing::error!(%error, "a CMP error message does not encode");
            Vec::new()
        });
        CmpReply {
            message,
            operation,
            outcome: failure.outcome(),
        }
    }
}

/// Whether an answer grants the waiver of `certConf` its request asked for: only with the
/// certificate.
fn grants_implicit_confirm(request: &CmpRequest, body: &CmpAnswerBody) -> bool {
    request.implicit_confirm && matches!(body, CmpAnswerBody::Certified { .. })
}

/// The reply to `request` with `message`, counted by what `body` says.
fn reply(request: &CmpRequest, message: Vec<u8>, body: &CmpAnswerBody) -> CmpReply {
    let outcome = match body {
        CmpAnswerBody::Error { failure, text } => CmpFailure::new(*failure, text.clone()).outcome(),
        CmpAnswerBody::Waiting { .. } | CmpAnswerBody::PollAgain { .. } => "pending",
        CmpAnswerBody::Certified { .. } => "issued",
        CmpAnswerBody::Revoked => "revoked",
        _ => "answered",
    };
    CmpReply {
        message,
        operation: request.body.name(),
        outcome,
    }
}

/// An `rr`'s `CRLReason` code as the device's revocation reason (RFC 5280 §5.3.1); none
/// given is `unspecified`. Codes for CAs (`cACompromise`) or holds are not a device's to give.
fn revocation_reason(code: Option<u8>) -> Result<RevocationReason, CmpFailure> {
    Ok(match code {
        None | Some(0) => RevocationReason::Unspecified,
        Some(1) => RevocationReason::KeyCompromise,
        Some(3) => RevocationReason::AffiliationChanged,
        Some(4) => RevocationReason::Superseded,
        Some(5) => RevocationReason::CessationOfOperation,
        Some(9) => RevocationReason::PrivilegeWithdrawn,
        Some(_) => {
            return Err(CmpFailure::new(
                PkiFailure::BadRequest,
                "a device revokes its certificate for unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn",
            ))
        }
    })
}
