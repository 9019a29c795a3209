//! Devices enrolling themselves (EST, RFC 7030): `authenticate` checks the credential a
//! device's enrollment group derives for its serial (`GroupCredentialVerifier`), and only its
//! proof, `AuthenticatedDevice`, lets `enroll` register the device through that group (the
//! api reads the request's body and takes a command slot in between: an unauthenticated
//! client never holds one); `reenroll` renews the certificate of the device whose current certificate authenticated
//! the request. Both go through the same command path as the HTTP API's register and renew
//! (`DeviceCommandService`), each with an idempotency key derived from the request, so a
//! device that repeats a request (as EST devices do while the answer is pending) repeats the
//! same command and never makes a second one. What the device gets back is read from the
//! device read model: pending until the certificate answering its request is there.
//!
//! Whether a presented certificate may renew is the device's decision, taken from its events
//! (`RenewCertificate::authenticated_by`): the read models trail the events, and a certificate
//! revoked a moment ago must renew nothing. The read model only says which device a
//! certificate belongs to, and where a request stands.
//!
//! Must not: say which of a serial, a key or a group was wrong to someone who holds none of
//! them (every failed credential is the same `InvalidCredential`), or keep a presented key.

use std::sync::Arc;

use domain::{
    CaState, CertificateCredential, DeviceCredential, DeviceError, DeviceId, DeviceKey,
    DeviceStatus, EnrollmentGroupName, IssuedCertificate, IssuingCaId, ProvisioningFailure,
    RenewalAuthority, RevocationAuthority, RevocationReason, SerialNumber, SigningRequest,
    SubjectMismatch, TenantCas, TenantCasId, TenantId,
};
use sha2::{Digest, Sha256};

use crate::group_credential_verifier::{AuthenticatedDevice, GroupCredentialVerifier};
use crate::pki::{CertificateSerialHex, CertificateStatusLookup};
use crate::{
    Accepted, CommandError, CommandMetadata, DeviceCommandService, DeviceReadModel, DeviceView,
    EnrollmentGroupStore, EventStore, IdempotencyClaim, IdempotencyKey, IdempotencyScope,
    RequestFingerprint, StoreError,
};

/// The request's correlation, carried into the command's events.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    pub request_id: String,
    pub traceparent: Option<String>,
}

/// Where an enrollment stands.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrollmentProgress {
    /// Accepted; the certificate is not issued yet: ask again later.
    Pending {
        device_id: DeviceId,
        tenant: TenantId,
    },
    /// The certificate issued for the request's key.
    Issued {
        device_id: DeviceId,
        tenant: TenantId,
        certificate: IssuedCertificate,
    },
}

/// Why an enrollment was refused: the device's to fix. (Outages are [`EnrollmentError`]'s
/// other variants.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnrollmentRefusal {
    #[error("the serial number and key are not a credential of an enrollment group")]
    InvalidCredential,
    /// There are more enrollment groups than a device that names none may be looked up in.
    #[error("name the device's enrollment group: in the URL, /.well-known/est/<group>/simpleenroll, or in the user name, <serial>@<group> (this server has too many groups to find it by its key)")]
    GroupNotNamed,
    #[error("the enrollment group is disabled")]
    GroupDisabled,
    #[error(transparent)]
    Subject(#[from] SubjectMismatch),
    #[error("the certificate request was refused: {}", .0.detail)]
    Refused(ProvisioningFailure),
    #[error("the device is already enrolled with another key: re-enroll (simplereenroll) with its certificate")]
    AlreadyEnrolled,
    #[error("the device is decommissioned")]
    Decommissioned,
    #[error("the client certificate is not one this service issued to a device")]
    UnknownCertificate,
    #[error("the client certificate is revoked or superseded: it is not the device's current certificate")]
    CertificateRevoked,
    #[error("a certificate request of this device is being processed: try again when it is done")]
    RequestInProgress,
    #[error("the device has made no certificate request")]
    NoRequest,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error(transparent)]
    Refused(#[from] EnrollmentRefusal),
    #[error(transparent)]
    Command(CommandError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError> for EnrollmentError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected {
                rejection: DeviceError::Decommissioned,
                ..
            } => EnrollmentRefusal::Decommissioned.into(),
            CommandError::Rejected {
                rejection: DeviceError::ProvisioningInProgress,
                ..
            } => EnrollmentRefusal::RequestInProgress.into(),
            CommandError::Rejected {
                rejection: DeviceError::CertificateNotCurrent,
                ..
            } => EnrollmentRefusal::CertificateRevoked.into(),
            CommandError::Rejected {
                rejection: DeviceError::StillCertified,
                ..
            } => EnrollmentRefusal::AlreadyEnrolled.into(),
            other => Self::Command(other),
        }
    }
}

/// The client certificate a re-enrollment was authenticated with (TLS verified its chain and
/// dates; the api checked that `issuer` signed it).
#[derive(Debug, Clone)]
pub struct PresentedCertificate {
    pub serial: CertificateSerialHex,
    pub issuer: IssuingCaId,
}

pub struct DeviceEnrollmentService {
    commands: Arc<DeviceCommandService>,
    devices: Arc<dyn DeviceReadModel>,
    /// Tenants' CAs, whose revoked issuing CAs the device's decisions take into account, and
    /// whose chains a group's `cacerts` serves.
    cas: Arc<dyn EventStore<TenantCas>>,
    groups: Arc<dyn EnrollmentGroupStore>,
    credentials: GroupCredentialVerifier,
    certificates: Arc<dyn CertificateStatusLookup>,
}

/// The protocol a device enrolls with: every protocol's requests go through the same rules
/// here, and differ only in the names their commands are recorded and claimed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentProtocol {
    /// EST (RFC 7030): `simpleenroll`, `simplereenroll`.
    Est,
    /// CMP (RFC 9483): `ir`, `cr`, `p10cr`, `kur`.
    Cmp,
    /// SCEP (RFC 8894): `PKCSReq`, `RenewalReq`.
    Scep,
}

/// What an enrollment's command is: its route's name in idempotency scopes (a device's
/// requests never share keys with the HTTP API's, nor one protocol's with another's).
#[derive(Debug, Clone, Copy)]
enum EnrollmentStep {
    Enroll,
    EnrollAgain,
    Reenroll,
    Revoke,
}

impl EnrollmentProtocol {
    /// Lowercase: the prefix of the commands' actors (`est:<group>`, `cmp:device:<serial>`)
    /// and of their idempotency keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Est => "est",
            Self::Cmp => "cmp",
            Self::Scep => "scep",
        }
    }

    fn route(self, step: EnrollmentStep) -> &'static str {
        match (self, step) {
            (Self::Est, EnrollmentStep::Enroll) => "EST simpleenroll",
            (Self::Est, EnrollmentStep::EnrollAgain) => "EST simpleenroll after a failure",
            (Self::Est, EnrollmentStep::Reenroll) => "EST simplereenroll",
            (Self::Cmp, EnrollmentStep::Enroll) => "CMP enrollment",
            (Self::Cmp, EnrollmentStep::EnrollAgain) => "CMP enrollment after a failure",
            (Self::Cmp, EnrollmentStep::Reenroll) => "CMP key update",
            (Self::Cmp, EnrollmentStep::Revoke) => "CMP revocation",
            (Self::Est, EnrollmentStep::Revoke) => "EST revocation",
            (Self::Scep, EnrollmentStep::Enroll) => "SCEP PKCSReq",
            (Self::Scep, EnrollmentStep::EnrollAgain) => "SCEP PKCSReq after a failure",
            (Self::Scep, EnrollmentStep::Reenroll) => "SCEP renewal",
            (Self::Scep, EnrollmentStep::Revoke) => "SCEP revocation",
        }
    }
}

impl DeviceEnrollmentService {
    /// `label_less_max_groups`: without a group named, at most this many enabled groups are
    /// tried (`GroupCredentialVerifier`).
    pub fn new(
        commands: Arc<DeviceCommandService>,
        devices: Arc<dyn DeviceReadModel>,
        cas: Arc<dyn EventStore<TenantCas>>,
        groups: Arc<dyn EnrollmentGroupStore>,
        certificates: Arc<dyn CertificateStatusLookup>,
        label_less_max_groups: usize,
    ) -> Self {
        Self {
            commands,
            devices,
            cas,
            groups: groups.clone(),
            credentials: GroupCredentialVerifier::new(groups, label_less_max_groups),
            certificates,
        }
    }

    /// The device that `credential` authenticates, through the group `label` names, or the
    /// one the credential names (`<serial>@<group>`), or else the one enabled group whose key
    /// derives it: what [`DeviceEnrollmentService::enroll`] needs.
    pub async fn authenticate(
        &self,
        label: Option<&EnrollmentGroupName>,
        credential: &DeviceCredential,
    ) -> Result<AuthenticatedDevice, EnrollmentError> {
        self.credentials.authenticate(label, credential).await
    }

    /// The device `serial` of the group `label` names, when `proof` was made with the key
    /// the group derives for it, and that key (`GroupCredentialVerifier::authenticate_proof`).
    pub async fn authenticate_proof(
        &self,
        label: &EnrollmentGroupName,
        serial: &SerialNumber,
        proof: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<(AuthenticatedDevice, DeviceKey), EnrollmentError> {
        self.credentials
            .authenticate_proof(label, serial, proof)
            .await
    }

    /// Where the authenticated device's latest certificate request stands, for a protocol
    /// whose client asks without repeating its request (CMP's `pollReq`): pending while its
    /// events hold an open request, or until the read model has caught up with them; then
    /// its certificate, or why the request failed. Devices make one request at a time, so
    /// the latest is the one asked about.
    #[tracing::instrument(skip_all, fields(serial = %device.serial(), group = %device.group().name), err(level = "info"))]
    pub async fn poll(
        &self,
        device: &AuthenticatedDevice,
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        let tenant = device.group().tenant.clone();
        let device_id = DeviceId::derive(&tenant, device.serial());
        self.latest_request(tenant, device_id).await
    }

    /// As [`Self::poll`], for the device that `presented` was issued to (a key update, polled
    /// with the certificate it renews).
    #[tracing::instrument(skip_all, fields(certificate = %presented.serial), err(level = "info"))]
    pub async fn poll_presented(
        &self,
        presented: &PresentedCertificate,
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        let device = self.device_of(presented).await?;
        self.latest_request(device.tenant, device.id).await
    }

    /// Where the latest request of the device `serial` of the group `label` names stands, for
    /// a client that proves only that it holds the requested key (SCEP's `CertPoll`, signed
    /// with it): answered only when `public_key` (SPKI, DER) is that request's key, or the
    /// key of the certificate it was answered with; anyone else learns nothing.
    #[tracing::instrument(skip_all, fields(serial = %serial, group = %label), err(level = "info"))]
    pub async fn poll_by_key(
        &self,
        label: &EnrollmentGroupName,
        serial: &SerialNumber,
        public_key: &[u8],
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        let Some(group) = self.groups.get(label).await?.filter(|group| group.enabled) else {
            return Err(EnrollmentRefusal::NoRequest.into());
        };
        let device_id = DeviceId::derive(&group.tenant, serial);
        let current = self.commands.current(device_id).await?;
        let requested = current
            .aggregate
            .open_request()
            .map(|open| open.request.public_key_der());
        let progress = self.latest_request(group.tenant, device_id).await?;
        let ours = match &progress {
            EnrollmentProgress::Pending { .. } => requested.as_deref() == Some(public_key),
            EnrollmentProgress::Issued { certificate, .. } => {
                certificate.public_key_der().as_deref() == Some(public_key)
            }
        };
        if ours {
            Ok(progress)
        } else {
            Err(EnrollmentRefusal::NoRequest.into())
        }
    }

    /// Revokes the certificate the device presented, at its own request (CMP's `rr`): the
    /// device decides, from its events, that it is its live certificate. A request repeated
    /// (the same certificate, the same reason) is answered as the first was.
    #[tracing::instrument(skip_all, fields(certificate = %presented.serial), err(level = "info"))]
    pub async fn revoke(
        &self,
        protocol: EnrollmentProtocol,
        presented: &PresentedCertificate,
        reason: RevocationReason,
        correlation: Correlation,
    ) -> Result<(), EnrollmentError> {
        let device = self.device_of(presented).await?;
        let metadata = CommandMetadata {
            tenant: device.tenant.clone(),
            actor: format!("{}:device:{}", protocol.name(), device.serial_number),
            request_id: correlation.request_id,
            traceparent: correlation.traceparent,
        };
        let claim = claim_of(
            &metadata,
            protocol,
            EnrollmentStep::Revoke,
            &[
                presented.issuer.as_str(),
                presented.serial.as_str(),
                reason.as_str(),
            ],
        );
        let authority = RevocationAuthority::Certificate(CertificateCredential {
            serial: presented.serial.as_str().to_owned(),
            issuer: presented.issuer.clone(),
        });
        self.commands
            .revoke_certificate(metadata, claim, device.id, reason, authority)
            .await?;
        Ok(())
    }

    /// The device a presented certificate was issued to, as the read model knows it (a
    /// certificate it does not know yet is answered like a stranger's; the device retries).
    async fn device_of(
        &self,
        presented: &PresentedCertificate,
    ) -> Result<DeviceView, EnrollmentError> {
        let record = self
            .certificates
            .statuses_of(std::slice::from_ref(&presented.serial))
            .await?
            .into_iter()
            .next()
            .ok_or(EnrollmentRefusal::UnknownCertificate)?;
        Ok(self
            .devices
            .device(record.device_id)
            .await?
            .filter(|device| device.tenant == record.tenant)
            .ok_or(EnrollmentRefusal::UnknownCertificate)?)
    }

    /// Where the latest request of the device `device_id` of `tenant` stands (see
    /// [`Self::poll`]).
    async fn latest_request(
        &self,
        tenant: TenantId,
        device_id: DeviceId,
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        let current = self.commands.current(device_id).await?;
        if current.aggregate.tenant() != Some(&tenant) {
            return Err(EnrollmentRefusal::NoRequest.into());
        }
        let pending = || {
            Ok(EnrollmentProgress::Pending {
                device_id,
                tenant: tenant.clone(),
            })
        };
        if current.aggregate.open_request().is_some() {
            return pending();
        }
        let Some(view) = self.devices.device(device_id).await? else {
            return pending();
        };
        if view.version < current.version {
            return pending();
        }
        match (view.status, view.failure.clone()) {
            (DeviceStatus::Failed, Some(failure)) => {
                return Err(EnrollmentRefusal::Refused(failure).into())
            }
            (DeviceStatus::Decommissioned, _) => {
                return Err(EnrollmentRefusal::Decommissioned.into())
            }
            _ => {}
        }
        match &view.certificate {
            Some(certificate) if certificate.revocation.is_none() => Ok(issued(view)),
            _ => Err(EnrollmentRefusal::CertificateRevoked.into()),
        }
    }

    /// Registers the authenticated device through its group, with the group's model and
    /// labels; or, when this request was made before, answers where it stands. A device left
    /// without a usable certificate (its request failed, or its tenant revoked the CA that
    /// issued it) enrolls again with its group's credential (the renewal path; the device
    /// decides).
    #[tracing::instrument(skip_all, fields(serial = %device.serial(), group = %device.group().name), err(level = "info"))]
    pub async fn enroll(
        &self,
        protocol: EnrollmentProtocol,
        device: AuthenticatedDevice,
        csr: SigningRequest,
        correlation: Correlation,
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        let (serial, group) = (device.serial(), device.group());
        csr.check_subject(serial).map_err(EnrollmentRefusal::from)?;
        let metadata = CommandMetadata {
            tenant: group.tenant.clone(),
            actor: format!("{}:{}", protocol.name(), group.name),
            request_id: correlation.request_id,
            traceparent: correlation.traceparent,
        };
        let claim = enroll_claim(&metadata, protocol, EnrollmentStep::Enroll, serial, &csr);
        let registered = self
            .commands
            .register(
                metadata.clone(),
                claim,
                serial.clone(),
                group.model.clone(),
                group.labels.clone(),
                csr.clone(),
            )
            .await;
        let accepted = match registered {
            Ok(accepted) => accepted,
            Err(CommandError::Rejected {
                device_id,
                rejection: DeviceError::AlreadyRegistered,
            }) => {
                let revoked_cas = self.revoked_cas(&group.tenant).await?;
                let device = self.devices.device(device_id).await?;
                let of_revoked_ca = |device: &DeviceView| {
                    device.certificate.as_ref().is_some_and(|certificate| {
                        certificate
                            .issued
                            .issuer
                            .as_ref()
                            .is_some_and(|issuer| revoked_cas.contains(issuer))
                    })
                };
                match device {
                    // This request's certificate (unless its CA was revoked since).
                    Some(device) if issued_for(&device, &csr) && !of_revoked_ca(&device) => {
                        return Ok(issued(device));
                    }
                    // A device left without a usable certificate (its request failed, or its
                    // CA was revoked) enrolls again with its group's credential, as a renewal
                    // the device decides on; one with a usable certificate is refused there.
                    Some(_) => {
                        let step = EnrollmentStep::EnrollAgain;
                        let claim = enroll_claim(&metadata, protocol, step, serial, &csr);
                        self.commands
                            .renew_certificate(
                                metadata,
                                claim,
                                device_id,
                                csr.clone(),
                                RenewalAuthority::EnrollmentGroup,
                                revoked_cas,
                            )
                            .await?
                    }
                    None => return Err(EnrollmentRefusal::AlreadyEnrolled.into()),
                }
            }
            Err(other) => return Err(other.into()),
        };
        self.progress(group.tenant.clone(), accepted, &csr, None)
            .await
    }

    /// Renews the certificate of the device that `presented` was issued to, for `csr`
    /// (whose subject must stay `CN = <serial>`; its key may be the current one); or, when
    /// this very request (this certificate, this CSR) was made before, answers where it
    /// stands, even once its certificate has superseded the presented one. The device refuses
    /// any other request with a certificate that is not its current, unrevoked one.
    #[tracing::instrument(skip_all, fields(certificate = %presented.serial), err(level = "info"))]
    pub async fn reenroll(
        &self,
        protocol: EnrollmentProtocol,
        presented: &PresentedCertificate,
        csr: SigningRequest,
        correlation: Correlation,
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        // Which device: the read model knows whom a certificate was issued to.
        let device = self.device_of(presented).await?;
        csr.check_subject(&device.serial_number)
            .map_err(EnrollmentRefusal::from)?;
        let metadata = CommandMetadata {
            tenant: device.tenant.clone(),
            actor: format!("{}:device:{}", protocol.name(), device.serial_number),
            request_id: correlation.request_id,
            traceparent: correlation.traceparent,
        };
        let claim = reenroll_claim(&metadata, protocol, presented, &csr);
        // Whether it may: the device decides, from its events (and its tenant's CAs').
        let authenticated_by = CertificateCredential {
            serial: presented.serial.as_str().to_owned(),
            issuer: presented.issuer.clone(),
        };
        let revoked_cas = self.revoked_cas(&device.tenant).await?;
        let accepted = self
            .commands
            .renew_certificate(
                metadata,
                claim,
                device.id,
                csr.clone(),
                RenewalAuthority::Certificate(authenticated_by),
                revoked_cas,
            )
            .await?;
        self.progress(device.tenant, accepted, &csr, Some(&presented.serial))
            .await
    }

    /// The CA certificates (PEM) the devices of the group `label` chain to, when its tenant
    /// has CAs of its own: the issuing CAs in use (both during a rotation), newest first, then
    /// the root. `None` for the platform's CA: a tenant without CAs, and a group that does not
    /// exist or is disabled (answered alike).
    pub async fn ca_chain(
        &self,
        label: &EnrollmentGroupName,
    ) -> Result<Option<Vec<String>>, EnrollmentError> {
        let Some(group) = self.groups.get(label).await?.filter(|group| group.enabled) else {
            return Ok(None);
        };
        let cas = self
            .cas
            .load(TenantCasId::of(&group.tenant))
            .await?
            .aggregate;
        let Some(root) = cas.root().and_then(|root| root.certified.as_ref()) else {
            return Ok(None);
        };
        let mut chain: Vec<String> = cas
            .issuing()
            .iter()
            .rev()
            .filter(|ca| matches!(ca.state, CaState::Active | CaState::Rotating))
            .filter_map(|ca| ca.certified.as_ref().map(|c| c.certificate.pem.clone()))
            .collect();
        chain.push(root.certificate.pem.clone());
        Ok(Some(chain))
    }

    /// The tenant's revoked issuing CAs, as their events say now.
    async fn revoked_cas(&self, tenant: &TenantId) -> Result<Vec<IssuingCaId>, StoreError> {
        let cas = self.cas.load(TenantCasId::of(tenant)).await?.aggregate;
        Ok(cas
            .issuing()
            .iter()
            .filter(|ca| ca.state == CaState::Revoked)
            .filter_map(|ca| ca.certified.as_ref().map(|c| c.certificate.id.clone()))
            .collect())
    }

    /// Where the request for `csr`, accepted as `accepted`, stands on the read side: the
    /// outcome is judged only once the read model has reached the request's version. The
    /// answer is a certificate for `csr`'s key issued after the request, never the one the
    /// request renews (`renewing`), which may be for the same key.
    async fn progress(
        &self,
        tenant: TenantId,
        accepted: Accepted,
        csr: &SigningRequest,
        renewing: Option<&CertificateSerialHex>,
    ) -> Result<EnrollmentProgress, EnrollmentError> {
        let Accepted {
            device_id, version, ..
        } = accepted;
        let pending = |tenant| Ok(EnrollmentProgress::Pending { device_id, tenant });
        let Some(device) = self.devices.device(device_id).await? else {
            return pending(tenant);
        };
        if device.version < version {
            return pending(tenant);
        }
        let answers = |device: &DeviceView| {
            device.version > version
                && issued_for(device, csr)
                && device.certificate.as_ref().is_some_and(|certificate| {
                    renewing.is_none_or(|renewed| certificate.issued.serial != renewed.as_str())
                })
        };
        if answers(&device) {
            return Ok(issued(device));
        }
        match (device.status, device.failure) {
            (DeviceStatus::Failed, Some(failure)) => {
                Err(EnrollmentRefusal::Refused(failure).into())
            }
            (DeviceStatus::Decommissioned, _) => Err(EnrollmentRefusal::Decommissioned.into()),
            _ => pending(tenant),
        }
    }
}

/// Whether the device's current certificate is for `csr`'s key.
fn issued_for(device: &DeviceView, csr: &SigningRequest) -> bool {
    device
        .certificate
        .as_ref()
        .is_some_and(|certificate| certificate.issued.certifies_key_of(csr))
}

fn issued(device: DeviceView) -> EnrollmentProgress {
    EnrollmentProgress::Issued {
        device_id: device.id,
        tenant: device.tenant,
        certificate: device
            .certificate
            .expect("the caller saw the certificate")
            .issued,
    }
}

/// The idempotency claim of an enrollment: its key and its fingerprint both derive from the
/// serial number and the request, so the same request repeated is the same command, and
/// another request is another command.
fn enroll_claim(
    metadata: &CommandMetadata,
    protocol: EnrollmentProtocol,
    step: EnrollmentStep,
    serial: &SerialNumber,
    request: &SigningRequest,
) -> IdempotencyClaim {
    let request = request_text(request);
    claim_of(
        metadata,
        protocol,
        step,
        &[serial.as_str(), request.as_ref()],
    )
}

/// A re-enrollment's claim: the presented certificate (issuer and serial) and the request, so
/// that only the very request that renewed a certificate is answered as a repeat once that
/// certificate is superseded.
fn reenroll_claim(
    metadata: &CommandMetadata,
    protocol: EnrollmentProtocol,
    presented: &PresentedCertificate,
    request: &SigningRequest,
) -> IdempotencyClaim {
    let request = request_text(request);
    claim_of(
        metadata,
        protocol,
        EnrollmentStep::Reenroll,
        &[
            presented.issuer.as_str(),
            presented.serial.as_str(),
            request.as_ref(),
        ],
    )
}

/// A request as a claim's part: a CSR's PEM (as EST's claims always were), a CRMF request's
/// DER in hex, a verified CSR's digest (the same request sent again has the same one).
fn request_text(request: &SigningRequest) -> std::borrow::Cow<'_, str> {
    match request {
        SigningRequest::Pkcs10(csr) => csr.as_pem().into(),
        SigningRequest::Crmf(crmf) => hex::encode(crmf.as_der()).into(),
        SigningRequest::VerifiedPkcs10(verified) => {
            format!("verified:{}", hex::encode(verified.sha256())).into()
        }
    }
}

/// A claim whose key and fingerprint derive from `parts` (each ended by a NUL, so that parts
/// cannot run into each other).
fn claim_of(
    metadata: &CommandMetadata,
    protocol: EnrollmentProtocol,
    step: EnrollmentStep,
    parts: &[&str],
) -> IdempotencyClaim {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let canonical = digest.finalize();
    IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: metadata.tenant.clone(),
            route: protocol.route(step).to_owned(),
            key: IdempotencyKey::parse(&format!("{}-{}", protocol.name(), hex::encode(canonical)))
                .expect("a hex digest is a valid idempotency key"),
        },
        fingerprint: RequestFingerprint::of(&canonical),
    }
}
