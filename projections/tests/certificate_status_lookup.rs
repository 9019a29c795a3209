//! The OCSP responder's lookup on the `certificate_status` read model, against a real
//! Postgres: what the projector wrote, by serial, with the revocation once there is one.

mod provisioned_devices;

use app::pki::{CertificateSerialHex, CertificateStatusLookup};
use app::{EventLog, IdempotencyClaim, IdempotencyKey, IdempotencyScope, RequestFingerprint};
use domain::{RevocationReason, TenantId};
use projections::{PostgresCertificateStatusLookup, CERTIFICATE_STATUS};
use provisioned_devices::{metadata, projector, provisioned_device};
use store::PostgresEventLog;

fn serial(hex: &str) -> CertificateSerialHex {
    CertificateSerialHex::parse(hex).unwrap()
}

#[tokio::test]
async fn a_certificate_is_found_by_serial_with_its_revocation_once_revoked() {
    let (_, pool) = testkit::migrated_database().await;
    let events = provisioned_device(&pool).await; // its certificate's serial is "01"
    let id = events[0].subject;
    let projector = projector(&pool, CERTIFICATE_STATUS);
    projector.apply(&events).await.unwrap();
    let lookup = PostgresCertificateStatusLookup::new(pool.clone());

    let found = lookup
        .statuses_of(&[serial("01"), serial("02")])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "a serial never issued has no record");
    assert_eq!(found[0].serial, serial("01"));
    assert_eq!(found[0].revocation, None);
    assert!(lookup.statuses_of(&[]).await.unwrap().is_empty());

    let commands = app::DeviceCommandService::new(
        std::sync::Arc::new(store::PostgresEventStore::<domain::Device>::new(
            pool.clone(),
        )),
        std::sync::Arc::new(store::PostgresIdempotencyStore::new(pool.clone())),
        app::RetryPolicy::default(),
    );
    let claim = IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: TenantId::parse("acme").unwrap(),
            route: "POST /v1/devices/{id}/certificate:revoke".into(),
            key: IdempotencyKey::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
        },
        fingerprint: RequestFingerprint::of(b"{}"),
    };
    commands
        .revoke_certificate(
            metadata(),
            claim,
            id,
            RevocationReason::KeyCompromise,
            domain::RevocationAuthority::Tenant,
        )
        .await
        .unwrap();
    let history: Vec<_> = PostgresEventLog::new(pool.clone())
        .device_history(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.to_envelope())
        .collect();
    projector.apply(&history[2..]).await.unwrap();

    let found = lookup.statuses_of(&[serial("01")]).await.unwrap();
    let revocation = found[0].revocation.as_ref().expect("revoked");
    assert_eq!(revocation.reason, RevocationReason::KeyCompromise);
    assert_eq!(revocation.serial, "01");
    assert!((chrono::Utc::now() - revocation.revoked_at).num_seconds() < 60);
}
