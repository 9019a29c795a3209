//! Given/when/then tests of the Device aggregate: every command in every state.

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::csr::tests::csr_for;
use crate::{
    CertificateCredential, CertificateSigningRequest, DecommissionReason, DeviceModel, FailureCode,
    IssuedCertificate, IssuingCaId, Labels, ProvisioningFailure, Revocation, RevocationReason,
    SerialNumber,
};

type DeviceTest = TestFramework<Device>;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn other_tenant() -> TenantId {
    TenantId::parse("globex").unwrap()
}

fn request(n: u128) -> CertificateRequestId {
    CertificateRequestId::from_uuid(Uuid::from_u128(n))
}

fn csr() -> SigningRequest {
    // One key per test process is enough: the aggregate never looks inside the CSR.
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CertificateSigningRequest::from_pem(PEM.get_or_init(|| csr_for("SN-1")))
        .unwrap()
        .into()
}

fn register_cmd() -> RegisterDevice {
    RegisterDevice {
        tenant: tenant(),
        serial_number: SerialNumber::parse("SN-1").unwrap(),
        model: DeviceModel::parse("X1").unwrap(),
        labels: Labels::default(),
        request: csr(),
        request_id: request(1),
    }
}

fn registered() -> DeviceEvent {
    let c = register_cmd();
    DeviceEvent::DeviceRegistered {
        tenant: c.tenant,
        serial_number: c.serial_number,
        model: c.model,
        labels: c.labels,
        request: c.request,
        request_id: c.request_id,
    }
}

fn certificate(serial: &str) -> IssuedCertificate {
    IssuedCertificate {
        pem: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----".into(),
        serial: serial.into(),
        fingerprint_sha256: "00".repeat(32),
        not_before: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        not_after: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        issuer: Some(ca()),
    }
}

/// The CA that issues the tests' certificates.
fn ca() -> IssuingCaId {
    IssuingCaId::of_public_key(b"the tests' CA key")
}

fn issued(req: u128, serial: &str) -> DeviceEvent {
    DeviceEvent::CertificateIssued {
        request_id: request(req),
        certificate: certificate(serial),
    }
}

fn failure() -> ProvisioningFailure {
    ProvisioningFailure {
        code: FailureCode::SubjectMismatch,
        detail: "CN is SN-2, expected SN-1".into(),
    }
}

fn failed(req: u128) -> DeviceEvent {
    DeviceEvent::ProvisioningFailed {
        request_id: request(req),
        failure: failure(),
    }
}

fn renewal_requested(req: u128) -> DeviceEvent {
    DeviceEvent::CertificateRenewalRequested {
        request: csr(),
        request_id: request(req),
    }
}

fn reason() -> DecommissionReason {
    DecommissionReason::parse("end of life").unwrap()
}

fn decommissioned() -> DeviceEvent {
    DeviceEvent::DeviceDecommissioned { reason: reason() }
}

/// When commands happen in these tests (the application passes the clock's time).
fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn revoked(serial: &str, reason: RevocationReason) -> DeviceEvent {
    DeviceEvent::CertificateRevoked {
        revocation: Revocation {
            serial: serial.into(),
            reason,
            revoked_at: now(),
        },
    }
}

fn revoke(reason: RevocationReason) -> DeviceCommand {
    revoke_by(reason, RevocationAuthority::Tenant)
}

fn revoke_by(reason: RevocationReason, authority: RevocationAuthority) -> DeviceCommand {
    DeviceCommand::RevokeCertificate(RevokeCertificate {
        tenant: tenant(),
        reason,
        at: now(),
        authority,
    })
}

/// A revocation the device asked for itself, with its certificate `serial` of `issuer`.
fn revoke_as(serial: &str, issuer: IssuingCaId) -> DeviceCommand {
    let credential = CertificateCredential {
        serial: serial.into(),
        issuer,
    };
    revoke_by(
        RevocationReason::KeyCompromise,
        RevocationAuthority::Certificate(credential),
    )
}

fn renew(req: u128) -> DeviceCommand {
    renew_by(req, RenewalAuthority::Tenant, vec![])
}

/// A renewal the device asked for itself, authenticated by its certificate `serial` of `issuer`.
fn renew_as(req: u128, serial: &str, issuer: IssuingCaId) -> DeviceCommand {
    let credential = CertificateCredential {
        serial: serial.into(),
        issuer,
    };
    renew_by(req, RenewalAuthority::Certificate(credential), vec![])
}

/// A renewal by `authority`, the tenant's `revoked_cas` revoked.
fn renew_by(
    req: u128,
    authority: RenewalAuthority,
    revoked_cas: Vec<IssuingCaId>,
) -> DeviceCommand {
    DeviceCommand::RenewCertificate(RenewCertificate {
        tenant: tenant(),
        request: csr(),
        request_id: request(req),
        authority,
        revoked_cas,
    })
}

fn decommission() -> DeviceCommand {
    DeviceCommand::Decommission(DecommissionDevice {
        tenant: tenant(),
        reason: reason(),
        at: now(),
    })
}

fn complete(req: u128, serial: &str) -> DeviceCommand {
    DeviceCommand::CompleteProvisioning(CompleteProvisioning {
        tenant: tenant(),
        request_id: request(req),
        certificate: certificate(serial),
        at: now(),
    })
}

fn fail(req: u128) -> DeviceCommand {
    DeviceCommand::FailProvisioning(FailProvisioning {
        tenant: tenant(),
        request_id: request(req),
        failure: failure(),
    })
}

// --- no device yet -------------------------------------------------------------------

#[test]
fn registering_a_new_device_records_it() {
    DeviceTest::with(())
        .given_no_previous_events()
        .when(DeviceCommand::Register(register_cmd()))
        .then_expect_events(vec![registered()]);
}

#[test]
fn commands_for_an_unknown_device_are_not_found() {
    for command in [
        renew(2),
        decommission(),
        complete(1, "01"),
        fail(1),
        revoke(RevocationReason::KeyCompromise),
    ] {
        DeviceTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(DeviceError::NotFound);
    }
}

// --- pending -------------------------------------------------------------------------

#[test]
fn registering_again_is_a_conflict_whatever_the_state() {
    for history in [
        vec![registered()],
        vec![registered(), issued(1, "01")],
        vec![registered(), failed(1)],
        vec![registered(), decommissioned()],
    ] {
        DeviceTest::with(())
            .given(history)
            .when(DeviceCommand::Register(register_cmd()))
            .then_expect_error(DeviceError::AlreadyRegistered);
    }
}

#[test]
fn a_pending_device_cannot_be_renewed() {
    DeviceTest::with(())
        .given(vec![registered()])
        .when(renew(2))
        .then_expect_error(DeviceError::ProvisioningInProgress);
}

#[test]
fn a_pending_device_can_be_decommissioned() {
    DeviceTest::with(())
        .given(vec![registered()])
        .when(decommission())
        .then_expect_events(vec![decommissioned()]);
}

#[test]
fn completing_the_open_request_issues_the_certificate() {
    DeviceTest::with(())
        .given(vec![registered()])
        .when(complete(1, "01"))
        .then_expect_events(vec![issued(1, "01")]);
}

#[test]
fn failing_the_open_request_records_the_failure() {
    DeviceTest::with(())
        .given(vec![registered()])
        .when(fail(1))
        .then_expect_events(vec![failed(1)]);
}

#[test]
fn outcomes_for_an_unknown_request_change_nothing() {
    for command in [complete(99, "01"), fail(99)] {
        DeviceTest::with(())
            .given(vec![registered()])
            .when(command)
            .then_expect_events(vec![]);
    }
}

// --- provisioned ---------------------------------------------------------------------

#[test]
fn a_redelivered_outcome_never_issues_a_second_certificate() {
    // The worker crashed after the first completion and the message came back, possibly
    // with a certificate signed again (another serial): the first one stands.
    for command in [complete(1, "01"), complete(1, "02"), fail(1)] {
        DeviceTest::with(())
            .given(vec![registered(), issued(1, "01")])
            .when(command)
            .then_expect_events(vec![]);
    }
}

#[test]
fn a_provisioned_device_can_request_renewal() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01")])
        .when(renew(2))
        .then_expect_events(vec![renewal_requested(2)]);
}

#[test]
fn a_newer_renewal_supersedes_an_open_one() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01"), renewal_requested(2)])
        .when(renew(3))
        .then_expect_events(vec![renewal_requested(3)]);
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            renewal_requested(2),
            renewal_requested(3),
        ])
        .when(complete(2, "02"))
        .then_expect_events(vec![]);
}

#[test]
fn completing_a_renewal_issues_the_new_certificate() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01"), renewal_requested(2)])
        .when(complete(2, "02"))
        .then_expect_events(vec![
            issued(2, "02"),
            revoked("01", RevocationReason::Superseded),
        ]);
}

#[test]
fn a_failed_renewal_keeps_the_device_provisioned() {
    let mut device = Device::default();
    for event in [
        registered(),
        issued(1, "01"),
        renewal_requested(2),
        failed(2),
    ] {
        device.apply(event);
    }
    assert_eq!(device.status(), Some(DeviceStatus::Provisioned));
}

#[test]
fn a_provisioned_device_can_be_decommissioned_which_revokes_its_certificate() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01")])
        .when(decommission())
        .then_expect_events(vec![
            revoked("01", RevocationReason::CessationOfOperation),
            decommissioned(),
        ]);
}

// --- revocation ----------------------------------------------------------------------

#[test]
fn a_provisioned_device_s_certificate_can_be_revoked_for_any_reason() {
    for reason in [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ] {
        DeviceTest::with(())
            .given(vec![registered(), issued(1, "01")])
            .when(revoke(reason))
            .then_expect_events(vec![revoked("01", reason)]);
    }
}

#[test]
fn a_device_without_a_certificate_has_nothing_to_revoke() {
    for history in [vec![registered()], vec![registered(), failed(1)]] {
        DeviceTest::with(())
            .given(history)
            .when(revoke(RevocationReason::KeyCompromise))
            .then_expect_error(DeviceError::NoCertificate);
    }
}

#[test]
fn a_revoked_certificate_cannot_be_revoked_again() {
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            revoked("01", RevocationReason::KeyCompromise),
        ])
        .when(revoke(RevocationReason::Unspecified))
        .then_expect_error(DeviceError::CertificateAlreadyRevoked);
}

#[test]
fn a_revoked_device_stays_provisioned_and_can_renew() {
    let history = vec![
        registered(),
        issued(1, "01"),
        revoked("01", RevocationReason::KeyCompromise),
    ];
    let mut device = Device::default();
    for event in history.clone() {
        device.apply(event);
    }
    assert_eq!(device.status(), Some(DeviceStatus::Provisioned));
    DeviceTest::with(())
        .given(history)
        .when(renew(2))
        .then_expect_events(vec![renewal_requested(2)]);
}

#[test]
fn a_renewal_after_a_revocation_supersedes_nothing() {
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            revoked("01", RevocationReason::KeyCompromise),
            renewal_requested(2),
        ])
        .when(complete(2, "02"))
        .then_expect_events(vec![issued(2, "02")]);
}

#[test]
fn a_revoked_device_whose_renewal_fails_is_failed() {
    // Its certificate is revoked: nothing is left to keep it provisioned.
    let mut device = Device::default();
    for event in [
        registered(),
        issued(1, "01"),
        revoked("01", RevocationReason::KeyCompromise),
        renewal_requested(2),
        failed(2),
    ] {
        device.apply(event);
    }
    assert_eq!(device.status(), Some(DeviceStatus::Failed));
}

#[test]
fn revoking_during_a_renewal_leaves_the_renewal_open() {
    let history = vec![registered(), issued(1, "01"), renewal_requested(2)];
    DeviceTest::with(())
        .given(history.clone())
        .when(revoke(RevocationReason::KeyCompromise))
        .then_expect_events(vec![revoked("01", RevocationReason::KeyCompromise)]);
    let mut device = Device::default();
    for event in history {
        device.apply(event);
    }
    device.apply(revoked("01", RevocationReason::KeyCompromise));
    assert_eq!(device.open_request().map(|r| r.id), Some(request(2)));
}

#[test]
fn decommissioning_a_device_whose_certificate_is_revoked_revokes_nothing_more() {
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            revoked("01", RevocationReason::KeyCompromise),
        ])
        .when(decommission())
        .then_expect_events(vec![decommissioned()]);
}

// --- failed --------------------------------------------------------------------------

#[test]
fn a_failed_device_goes_back_to_pending_with_a_new_csr() {
    DeviceTest::with(())
        .given(vec![registered(), failed(1)])
        .when(renew(2))
        .then_expect_events(vec![renewal_requested(2)]);
    let mut device = Device::default();
    for event in [registered(), failed(1), renewal_requested(2)] {
        device.apply(event);
    }
    assert_eq!(device.status(), Some(DeviceStatus::Pending));
}

#[test]
fn a_failed_device_can_be_decommissioned() {
    DeviceTest::with(())
        .given(vec![registered(), failed(1)])
        .when(decommission())
        .then_expect_events(vec![decommissioned()]);
}

#[test]
fn outcomes_for_a_failed_request_change_nothing() {
    for command in [complete(1, "01"), fail(1)] {
        DeviceTest::with(())
            .given(vec![registered(), failed(1)])
            .when(command)
            .then_expect_events(vec![]);
    }
}

// --- decommissioned ------------------------------------------------------------------

#[test]
fn a_decommissioned_device_refuses_renewal_decommission_and_revocation() {
    for command in [
        renew(2),
        decommission(),
        revoke(RevocationReason::KeyCompromise),
    ] {
        DeviceTest::with(())
            .given(vec![registered(), decommissioned()])
            .when(command)
            .then_expect_error(DeviceError::Decommissioned);
    }
}

#[test]
fn outcomes_after_decommission_change_nothing() {
    // The provisioner may finish after the decommission; no certificate is recorded.
    for command in [complete(1, "01"), fail(1)] {
        DeviceTest::with(())
            .given(vec![registered(), decommissioned()])
            .when(command)
            .then_expect_events(vec![]);
    }
}

// --- renewals a device asks for with its own certificate ------------------------------

#[test]
fn a_device_renews_with_its_live_certificate() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01")])
        .when(renew_as(2, "01", ca()))
        .then_expect_events(vec![renewal_requested(2)]);
}

#[test]
fn a_revoked_certificate_renews_nothing() {
    for reason in [
        RevocationReason::KeyCompromise,
        RevocationReason::Unspecified,
        RevocationReason::CessationOfOperation,
    ] {
        DeviceTest::with(())
            .given(vec![registered(), issued(1, "01"), revoked("01", reason)])
            .when(renew_as(2, "01", ca()))
            .then_expect_error(DeviceError::CertificateNotCurrent);
    }
}

#[test]
fn a_superseded_certificate_renews_nothing() {
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            renewal_requested(2),
            issued(2, "02"),
            revoked("01", RevocationReason::Superseded),
        ])
        .when(renew_as(3, "01", ca()))
        .then_expect_error(DeviceError::CertificateNotCurrent);
}

#[test]
fn a_device_revokes_its_live_certificate_and_no_other() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01")])
        .when(revoke_as("01", ca()))
        .then_expect_events(vec![revoked("01", RevocationReason::KeyCompromise)]);
    // Superseded, already revoked, or of another CA: nothing to revoke with it.
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            renewal_requested(2),
            issued(2, "02"),
            revoked("01", RevocationReason::Superseded),
        ])
        .when(revoke_as("01", ca()))
        .then_expect_error(DeviceError::CertificateNotCurrent);
    DeviceTest::with(())
        .given(vec![
            registered(),
            issued(1, "01"),
            revoked("01", RevocationReason::KeyCompromise),
        ])
        .when(revoke_as("01", ca()))
        .then_expect_error(DeviceError::CertificateNotCurrent);
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01")])
        .when(revoke_as("01", IssuingCaId::of_public_key(b"another CA")))
        .then_expect_error(DeviceError::CertificateNotCurrent);
}

#[test]
fn another_cas_certificate_with_the_live_serial_renews_nothing() {
    DeviceTest::with(())
        .given(vec![registered(), issued(1, "01")])
        .when(renew_as(2, "01", IssuingCaId::of_public_key(b"another CA")))
        .then_expect_error(DeviceError::CertificateNotCurrent);
}

#[test]
fn a_certificate_recorded_without_its_issuer_is_known_by_its_serial() {
    let mut before_issuers = certificate("01");
    before_issuers.issuer = None;
    DeviceTest::with(())
        .given(vec![
            registered(),
            DeviceEvent::CertificateIssued {
                request_id: request(1),
                certificate: before_issuers,
            },
        ])
        .when(renew_as(2, "01", ca()))
        .then_expect_events(vec![renewal_requested(2)]);
}

#[test]
fn a_device_without_a_live_certificate_renews_nothing_with_one() {
    DeviceTest::with(())
        .given(vec![registered(), failed(1)])
        .when(renew_as(2, "01", ca()))
        .then_expect_error(DeviceError::CertificateNotCurrent);
}

// --- tenant isolation ----------------------------------------------------------------

#[test]
fn another_tenant_sees_no_device() {
    let foreign = |command: DeviceCommand| match command {
        DeviceCommand::RenewCertificate(mut c) => {
            c.tenant = other_tenant();
            DeviceCommand::RenewCertificate(c)
        }
        DeviceCommand::Decommission(mut c) => {
            c.tenant = other_tenant();
            DeviceCommand::Decommission(c)
        }
        DeviceCommand::CompleteProvisioning(mut c) => {
            c.tenant = other_tenant();
            DeviceCommand::CompleteProvisioning(c)
        }
        DeviceCommand::FailProvisioning(mut c) => {
            c.tenant = other_tenant();
            DeviceCommand::FailProvisioning(c)
        }
        DeviceCommand::RevokeCertificate(mut c) => {
            c.tenant = other_tenant();
            DeviceCommand::RevokeCertificate(c)
        }
        DeviceCommand::Register(c) => DeviceCommand::Register(c),
    };
    for command in [
        renew(2),
        decommission(),
        complete(1, "01"),
        fail(1),
        revoke(RevocationReason::KeyCompromise),
    ] {
        DeviceTest::with(())
            .given(vec![registered(), issued(1, "01")])
            .when(foreign(command))
            .then_expect_error(DeviceError::NotFound);
    }
}

#[test]
fn status_follows_the_life_cycle() {
    let mut device = Device::default();
    assert_eq!(device.status(), None);
    device.apply(registered());
    assert_eq!(device.status(), Some(DeviceStatus::Pending));
    device.apply(issued(1, "01"));
    assert_eq!(device.status(), Some(DeviceStatus::Provisioned));
    device.apply(decommissioned());
    assert_eq!(device.status(), Some(DeviceStatus::Decommissioned));
}

#[test]
fn events_round_trip_through_json() {
    for event in [
        registered(),
        renewal_requested(2),
        issued(1, "01"),
        failed(1),
        decommissioned(),
        revoked("01", RevocationReason::KeyCompromise),
    ] {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(serde_json::from_value::<DeviceEvent>(json).unwrap(), event);
    }
}

/// The provisioner signs the CSR the device's events recorded for its open request, so the
/// state must hold exactly that one.
#[test]
fn the_open_request_is_the_latest_request_with_the_csr_its_event_recorded() {
    let mut device = Device::default();
    device.apply(registered());
    let open = device
        .open_request()
        .expect("a registration opens a request");
    assert_eq!((open.id, &open.request), (request(1), &csr()));

    device.apply(issued(1, "01"));
    assert_eq!(device.open_request(), None);

    let new_csr =
        SigningRequest::from(CertificateSigningRequest::from_pem(&csr_for("SN-1")).unwrap());
    device.apply(DeviceEvent::CertificateRenewalRequested {
        request: new_csr.clone(),
        request_id: request(2),
    });
    let open = device.open_request().expect("a renewal opens a request");
    assert_eq!((open.id, &open.request), (request(2), &new_csr));

    device.apply(decommissioned());
    assert_eq!(device.open_request(), None);
}

// --- a revoked CA ----------------------------------------------------------------------

#[test]
fn a_certificate_of_a_revoked_ca_renews_nothing_and_the_group_credential_recovers_the_device() {
    let provisioned = vec![registered(), issued(1, "01")];
    let credential = CertificateCredential {
        serial: "01".into(),
        issuer: ca(),
    };
    // Its own certificate, its CA revoked: refused.
    DeviceTest::with(())
        .given(provisioned.clone())
        .when(renew_by(
            2,
            RenewalAuthority::Certificate(credential),
            vec![ca()],
        ))
        .then_expect_error(DeviceError::CertificateNotCurrent);
    // The group's credential: accepted while its certificate's CA is revoked ...
    DeviceTest::with(())
        .given(provisioned.clone())
        .when(renew_by(2, RenewalAuthority::EnrollmentGroup, vec![ca()]))
        .then_expect_events(vec![DeviceEvent::CertificateRenewalRequested {
            request: csr(),
            request_id: request(2),
        }]);
    // ... refused while it stands (it renews with its certificate) ...
    let another = IssuingCaId::of_public_key(b"another CA");
    DeviceTest::with(())
        .given(provisioned)
        .when(renew_by(
            2,
            RenewalAuthority::EnrollmentGroup,
            vec![another],
        ))
        .then_expect_error(DeviceError::StillCertified);
    // ... and accepted for a device whose request failed (it has no certificate).
    DeviceTest::with(())
        .given(vec![registered(), failed(1)])
        .when(renew_by(2, RenewalAuthority::EnrollmentGroup, vec![]))
        .then_expect_events(vec![DeviceEvent::CertificateRenewalRequested {
            request: csr(),
            request_id: request(2),
        }]);
}
