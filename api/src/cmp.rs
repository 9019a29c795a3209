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
//! - `genm` with `id-it-caCerts`: the certificates the group's devices chain to.
//!
//! `kur` and `rr` (authenticated by the device's current certificate) are refused with
//! `notAuthorized` for now: they need the api's CMP signing certificate, which is not made
//! yet.
//!
//! Must not: hold a CA key, keep state between a transaction's messages (any api instance
//! answers any message; a poll carries what it needs, `CertAnswerKind::polled_by`), or log a
//! device's key.

mod cmp_failure;

use std::sync::Arc;
use std::time::Duration;

use app::{Correlation, DeviceEnrollmentService, EnrollmentProgress, EnrollmentProtocol};
use domain::{
    CertificateSigningRequest, DeviceKey, EnrollmentGroupName, SerialNumber, SigningRequest,
};
use pki::cmp::{
    CertAnswerKind, CmpAnswer, CmpAnswerBody, CmpProtection, CmpRequest, CmpRequestBody,
    CrmfCertificateRequest, PasswordBasedMac, PkiFailure,
};
use x509_cert::name::Name;

pub use cmp_failure::CmpFailure;

use crate::http::InFlight;

/// The CMP endpoint's service and what its answers carry, built once at start.
pub struct CmpServer {
    enrollment: Arc<DeviceEnrollmentService>,
    /// `CA_CERT_PATH`'s certificates, DER: what devices of tenants without CAs chain to.
    platform_chain: Vec<Vec<u8>>,
    /// The answers' `sender`.
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
        platform_chain: Vec<Vec<u8>>,
        check_after: Duration,
    ) -> Self {
        Self {
            enrollment,
            platform_chain,
            name: SENDER.parse().expect("a constant name"),
            check_after,
        }
    }

    /// The answer to `der`, a device's `PKIMessage`, sent to the path of group `label`.
    /// `admit` takes a command slot once the device is authenticated (`None`: none free).
    pub async fn answer(
        &self,
        label: &EnrollmentGroupName,
        der: &[u8],
        correlation: Correlation,
        admit: impl FnOnce() -> Option<InFlight>,
    ) -> CmpReply {
        let request = match CmpRequest::from_der(der) {
            Ok(request) => request,
            Err(error) => {
                let failure = CmpFailure::new(error.failure(), error.to_string());
                return self.unprotected(None, "unreadable", failure);
            }
        };
        let operation = request.body.name();
        let CmpProtection::PasswordBasedMac(mac) = &request.protection else {
            let failure = CmpFailure::new(
                PkiFailure::NotAuthorized,
                "this service takes requests protected by a password-based MAC: senderKID the device's serial number, the secret its key",
            );
            return self.unprotected(Some(&request), operation, failure);
        };
        let (device, key) = match self.authenticate(label, &request, mac).await {
            Ok(authenticated) => authenticated,
            Err(failure) => return self.unprotected(Some(&request), operation, failure),
        };
        let body = match self.step(&request, device, correlation, admit).await {
            Ok(body) => body,
            Err(failure) => CmpAnswerBody::Error {
                failure: failure.failure,
                text: failure.text,
            },
        };
        let outcome = match &body {
            CmpAnswerBody::Error { failure, text } => {
                CmpFailure::new(*failure, text.clone()).outcome()
            }
            CmpAnswerBody::Waiting { .. } | CmpAnswerBody::PollAgain { .. } => "pending",
            CmpAnswerBody::Certified { .. } => "issued",
            _ => "answered",
        };
        match self.protected(&request, mac, &key, &body) {
            Ok(message) => CmpReply {
                message,
                operation,
                outcome,
            },
            Err(error) => {
                tracing::error!(%error, "a CMP answer does not encode");
                let failure = CmpFailure::new(PkiFailure::SystemFailure, "internal error");
                self.unprotected(Some(&request), operation, failure)
            }
        }
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

    /// What an authenticated device's request comes to.
    async fn step(
        &self,
        request: &CmpRequest,
        device: app::AuthenticatedDevice,
        correlation: Correlation,
        admit: impl FnOnce() -> Option<InFlight>,
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
            CmpRequestBody::PollReq(_) => return self.poll(request, &device).await,
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
                        "a {} is not answered by this service yet",
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
        self.certificate_or(progress, &group, kind, cert_req_id, |kind, cert_req_id| {
            CmpAnswerBody::Waiting { kind, cert_req_id }
        })
        .await
    }

    /// A `pollReq`: the certificate the transaction waits for, or `pollRep`.
    async fn poll(
        &self,
        request: &CmpRequest,
        device: &app::AuthenticatedDevice,
    ) -> Result<CmpAnswerBody, CmpFailure> {
        let bad_poll = || {
            CmpFailure::new(
                PkiFailure::BadRequest,
                "a pollReq names one certReqId, and follows a waiting answer of this transaction",
            )
        };
        let cert_req_id = request.polled_cert_req_id().ok_or_else(bad_poll)?;
        let kind = CertAnswerKind::polled_by(request).ok_or_else(bad_poll)?;
        let progress = self.enrollment.poll(device).await?;
        let check_after_seconds = u32::try_from(self.check_after.as_secs()).unwrap_or(u32::MAX);
        let group = &device.group().name;
        self.certificate_or(progress, group, kind, cert_req_id, |kind, cert_req_id| {
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
        group: &EnrollmentGroupName,
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
        let ca_pubs = match kind {
            CertAnswerKind::Ip => self.chain(group).await?,
            CertAnswerKind::Cp | CertAnswerKind::Kup => Vec::new(),
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
            None => self.platform_chain.clone(),
        })
    }

    /// `body`, protected with the request's MAC parameters and the device's key.
    fn protected(
        &self,
        request: &CmpRequest,
        mac: &PasswordBasedMac,
        key: &DeviceKey,
        body: &CmpAnswerBody,
    ) -> Result<Vec<u8>, der::Error> {
        let grants_implicit_confirm =
            request.implicit_confirm && matches!(body, CmpAnswerBody::Certified { .. });
        let answer = CmpAnswer::new(
            request,
            self.name.clone(),
            mac.algorithm().clone(),
            None,
            grants_implicit_confirm,
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
