//! Given/when/then tests of a tenant's CAs: creation, certification in order, rotation and
//! its handover, retirement, revocation and its replacement, and which CA issues when.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::IssuingCaId;

type CasTest = TestFramework<TenantCas>;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn spec(name: &str) -> CaSpec {
    CaSpec {
        curve: CaKeyCurve::P256,
        common_name: CaCommonName::parse(name).unwrap(),
        validity_days: 365,
    }
}

fn created() -> TenantCasEvent {
    TenantCasEvent::TenantCasCreated {
        tenant: tenant(),
        root: spec("Acme Root"),
        issuing: spec("Acme Issuing"),
    }
}

fn generation(n: u32) -> CaGeneration {
    CaGeneration::new(n)
}

fn certificate(n: u32) -> CaCertificate {
    CaCertificate {
        pem: format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n"),
        serial: format!("{n:02x}"),
        id: IssuingCaId::recorded(format!("{n:016x}")),
        not_before: t(0),
        not_after: t(0) + chrono::Duration::days(365),
    }
}

fn key(n: u32) -> CaKeyReference {
    CaKeyReference::recorded(format!("pkcs11:token=fleet;object=ca-{n}"))
}

fn certify(n: u32, at: DateTime<Utc>) -> TenantCasCommand {
    TenantCasCommand::Certify(CertifyCa {
        tenant: tenant(),
        generation: generation(n),
        key: key(n),
        certificate: certificate(n),
        at,
    })
}

fn certified(n: u32, issues_from: DateTime<Utc>) -> TenantCasEvent {
    TenantCasEvent::CaCertified {
        generation: generation(n),
        key: key(n),
        certificate: certificate(n),
        issues_from,
    }
}

fn rotation_started(n: u32, cause: RotationCause) -> TenantCasEvent {
    TenantCasEvent::RotationStarted {
        generation: generation(n),
        spec: spec("Acme Issuing"),
        cause,
    }
}

fn rotate(at: DateTime<Utc>) -> TenantCasCommand {
    TenantCasCommand::StartRotation(StartRotation {
        tenant: tenant(),
        issuing: None,
        cause: RotationCause::Operator,
        at,
    })
}

fn revoke(n: u32, at: DateTime<Utc>) -> TenantCasCommand {
    TenantCasCommand::Revoke(RevokeCa {
        tenant: tenant(),
        generation: generation(n),
        reason: CaRevocationReason::CaCompromise,
        at,
    })
}

fn retire(n: u32, at: DateTime<Utc>) -> TenantCasCommand {
    TenantCasCommand::Retire(RetireCa {
        tenant: tenant(),
        generation: generation(n),
        at,
    })
}

/// The tenant's CAs after `events`.
fn folded(events: Vec<TenantCasEvent>) -> TenantCas {
    let mut cas = TenantCas::default();
    for event in events {
        cas.apply(event);
    }
    cas
}

/// Root and first issuing CA certified at t(0) and t(1).
fn in_service() -> Vec<TenantCasEvent> {
    vec![created(), certified(0, t(0)), certified(1, t(1) + HANDOVER)]
}

#[test]
fn a_tenant_s_cas_are_created_once_and_only_its_own_commands_reach_them() {
    let create = TenantCasCommand::Create(CreateTenantCas {
        tenant: tenant(),
        root: spec("Acme Root"),
        issuing: spec("Acme Issuing"),
    });
    CasTest::with(())
        .given_no_previous_events()
        .when(create.clone())
        .then_expect_events(vec![created()]);
    CasTest::with(())
        .given(vec![created()])
        .when(create)
        .then_expect_error(TenantCasError::AlreadyCreated);
    CasTest::with(())
        .given(vec![created()])
        .when(TenantCasCommand::StartRotation(StartRotation {
            tenant: TenantId::parse("globex").unwrap(),
            issuing: None,
            cause: RotationCause::Operator,
            at: t(0),
        }))
        .then_expect_error(TenantCasError::NotFound);
    CasTest::with(())
        .given_no_previous_events()
        .when(certify(0, t(0)))
        .then_expect_error(TenantCasError::NotFound);
}

#[test]
fn the_root_is_certified_first_and_a_repeated_certification_changes_nothing() {
    CasTest::with(())
        .given(vec![created()])
        .when(certify(1, t(0)))
        .then_expect_error(TenantCasError::RootNotCertified);
    CasTest::with(())
        .given(vec![created()])
        .when(certify(0, t(0)))
        .then_expect_events(vec![certified(0, t(0))]);
    CasTest::with(())
        .given(vec![created(), certified(0, t(0))])
        .when(certify(0, t(9)))
        .then_expect_events(vec![]);
    CasTest::with(())
        .given(vec![created(), certified(0, t(0))])
        .when(TenantCasCommand::Certify(CertifyCa {
            tenant: tenant(),
            generation: generation(0),
            key: key(7),
            certificate: certificate(7),
            at: t(9),
        }))
        .then_expect_error(TenantCasError::AlreadyCertified);
    CasTest::with(())
        .given(vec![created(), certified(0, t(0))])
        .when(certify(2, t(0)))
        .then_expect_error(TenantCasError::UnknownCa);
}

#[test]
fn an_expired_certificate_certifies_nothing() {
    let late = t(0) + chrono::Duration::days(365);
    CasTest::with(())
        .given(vec![created()])
        .when(certify(0, late))
        .then_expect_error(TenantCasError::CertificateExpired);
}

#[test]
fn an_issuing_ca_issues_after_the_handover_and_the_worker_makes_cas_in_order() {
    assert_eq!(
        folded(vec![created()])
            .next_to_certify()
            .unwrap()
            .generation,
        CaGeneration::ROOT
    );
    assert_eq!(
        folded(vec![created(), certified(0, t(0))])
            .next_to_certify()
            .unwrap()
            .generation,
        generation(1)
    );
    CasTest::with(())
        .given(vec![created(), certified(0, t(0))])
        .when(certify(1, t(1)))
        .then_expect_events(vec![certified(1, t(1) + HANDOVER)]);

    let cas = folded(in_service());
    assert!(cas.next_to_certify().is_none());
    assert_eq!(
        cas.issuer_at(t(1) + HANDOVER).unwrap().generation,
        generation(1)
    );
    assert!(cas.issuer_at(t(1)).is_none(), "not before the handover");
    let end = certificate(1).not_after;
    assert!(cas.issuer_at(end).is_none(), "never past its notAfter");
}

#[test]
fn a_rotation_hands_over_after_every_provisioner_knows_of_it() {
    CasTest::with(())
        .given(in_service())
        .when(rotate(t(10)))
        .then_expect_events(vec![rotation_started(2, RotationCause::Operator)]);
    let rotating = [
        in_service(),
        vec![rotation_started(2, RotationCause::Operator)],
    ]
    .concat();
    CasTest::with(())
        .given(rotating.clone())
        .when(rotate(t(11)))
        .then_expect_error(TenantCasError::RotationInProgress);
    CasTest::with(())
        .given(rotating.clone())
        .when(certify(2, t(20)))
        .then_expect_events(vec![certified(2, t(20) + HANDOVER)]);

    let cas = folded([rotating, vec![certified(2, t(20) + HANDOVER)]].concat());
    assert_eq!(cas.ca(generation(1)).unwrap().state, CaState::Rotating);
    assert_eq!(cas.ca(generation(2)).unwrap().state, CaState::Active);
    assert_eq!(cas.issuer_at(t(21)).unwrap().generation, generation(1));
    assert_eq!(cas.issuer_at(t(10)).unwrap().generation, generation(1));
    assert_eq!(
        cas.issuer_at(t(20) + HANDOVER).unwrap().generation,
        generation(2)
    );
    assert!(HANDOVER > chrono::Duration::from_std(VIEW_MAX_AGE).unwrap() * 2);
}

#[test]
fn nothing_rotates_before_an_issuing_ca_is_certified() {
    CasTest::with(())
        .given(vec![created(), certified(0, t(0))])
        .when(rotate(t(5)))
        .then_expect_error(TenantCasError::NothingToRotate);
}

#[test]
fn a_rotated_out_ca_retires_only_after_its_successor_took_over() {
    let rotated = [
        in_service(),
        vec![
            rotation_started(2, RotationCause::Schedule),
            certified(2, t(20) + HANDOVER),
        ],
    ]
    .concat();
    CasTest::with(())
        .given(rotated.clone())
        .when(retire(1, t(21)))
        .then_expect_error(TenantCasError::StillIssuing);
    CasTest::with(())
        .given(rotated.clone())
        .when(retire(2, t(100)))
        .then_expect_error(TenantCasError::StillIssuing);
    CasTest::with(())
        .given(rotated.clone())
        .when(retire(0, t(100)))
        .then_expect_error(TenantCasError::StillIssuing);
    let retired = TenantCasEvent::CaRetired {
        generation: generation(1),
        retired_at: t(100),
    };
    CasTest::with(())
        .given(rotated.clone())
        .when(retire(1, t(100)))
        .then_expect_events(vec![retired.clone()]);
    CasTest::with(())
        .given([rotated, vec![retired]].concat())
        .when(retire(1, t(200)))
        .then_expect_events(vec![]);
}

#[test]
fn a_revoked_issuing_ca_is_replaced_at_once_and_devices_wait_for_the_replacement() {
    let revoked = TenantCasEvent::CaRevoked {
        generation: generation(1),
        reason: CaRevocationReason::CaCompromise,
        revoked_at: t(30),
    };
    CasTest::with(())
        .given(in_service())
        .when(revoke(1, t(30)))
        .then_expect_events(vec![
            revoked.clone(),
            rotation_started(2, RotationCause::Revocation),
        ]);
    let after = [
        in_service(),
        vec![
            revoked.clone(),
            rotation_started(2, RotationCause::Revocation),
        ],
    ]
    .concat();
    assert!(folded(after.clone()).issuer_at(t(31)).is_none());
    // The replacement issues after the handover too: its CRL is published meanwhile.
    CasTest::with(())
        .given(after.clone())
        .when(certify(2, t(32)))
        .then_expect_events(vec![certified(2, t(32) + HANDOVER)]);
    CasTest::with(())
        .given(after)
        .when(revoke(1, t(40)))
        .then_expect_error(TenantCasError::AlreadyRevoked);
}

#[test]
fn a_ca_taken_over_from_never_signs_again_even_when_its_successor_is_revoked() {
    let rotated = [
        in_service(),
        vec![
            rotation_started(2, RotationCause::Operator),
            certified(2, t(20) + HANDOVER),
        ],
    ]
    .concat();
    let revoked = TenantCasEvent::CaRevoked {
        generation: generation(2),
        reason: CaRevocationReason::CaCompromise,
        revoked_at: t(60),
    };
    CasTest::with(())
        .given(rotated.clone())
        .when(revoke(2, t(60)))
        .then_expect_events(vec![
            revoked.clone(),
            rotation_started(3, RotationCause::Revocation),
        ]);
    let cas = folded(
        [
            rotated,
            vec![revoked, rotation_started(3, RotationCause::Revocation)],
        ]
        .concat(),
    );
    assert!(cas.issuer_at(t(61)).is_none());
    assert_eq!(cas.ca(generation(1)).unwrap().state, CaState::Rotating);
}

#[test]
fn revoking_a_ca_being_rotated_out_needs_no_replacement() {
    let rotated = [
        in_service(),
        vec![
            rotation_started(2, RotationCause::Operator),
            certified(2, t(20) + HANDOVER),
        ],
    ]
    .concat();
    CasTest::with(())
        .given(rotated)
        .when(revoke(1, t(60)))
        .then_expect_events(vec![TenantCasEvent::CaRevoked {
            generation: generation(1),
            reason: CaRevocationReason::CaCompromise,
            revoked_at: t(60),
        }]);
}

#[test]
fn only_a_certified_issuing_ca_can_be_revoked() {
    CasTest::with(())
        .given(in_service())
        .when(revoke(0, t(30)))
        .then_expect_error(TenantCasError::RootNotRevocable);
    CasTest::with(())
        .given(vec![created(), certified(0, t(0))])
        .when(revoke(1, t(30)))
        .then_expect_error(TenantCasError::NotCertified);
}

#[test]
fn key_names_follow_from_the_tenant_and_the_generation() {
    let id = TenantCasId::of(&tenant());
    assert_eq!(id, TenantCasId::of(&tenant()));
    assert_ne!(id, TenantCasId::of(&TenantId::parse("globex").unwrap()));
    assert_ne!(id.key_name(generation(1)), id.key_name(generation(2)));
    assert!(id.key_name(generation(1)).starts_with("ca-"));
}
