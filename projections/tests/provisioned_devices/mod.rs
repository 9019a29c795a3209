//! Devices with real events in a real event store, for the projection tests.

use std::sync::Arc;

use app::{
    CommandMetadata, DeviceCommandService, EventEnvelope, EventLog, IdempotencyClaim,
    IdempotencyKey, IdempotencyScope, RequestFingerprint, RetryPolicy,
};
use domain::{
    CertificateSigningRequest, DeviceModel, IssuedCertificate, Labels, SerialNumber, TenantId,
};
use projections::{registered_named, Projector, RegisteredProjection};
use sqlx::PgPool;
use store::{PostgresEventLog, PostgresEventStore, PostgresIdempotencyStore};

/// The registered read model called `name`.
pub fn read_model(name: &str) -> RegisteredProjection {
    registered_named(name).unwrap()
}

/// The live side of the read model called `name`.
pub fn projector(pool: &PgPool, name: &str) -> Projector {
    read_model(name).projector(pool.clone())
}

pub fn metadata() -> CommandMetadata {
    CommandMetadata {
        tenant: TenantId::parse("acme").unwrap(),
        actor: "test".into(),
        request_id: "test".into(),
        traceparent: None,
    }
}

/// A registered, provisioned device (two events in the store); returns its envelopes.
pub async fn provisioned_device(pool: &PgPool) -> Vec<EventEnvelope> {
    let store = Arc::new(PostgresEventStore::<domain::Device>::new(pool.clone()));
    let commands = DeviceCommandService::new(
        store,
        Arc::new(PostgresIdempotencyStore::new(pool.clone())),
        RetryPolicy::default(),
    );
    let serial = testkit::unique_serial();
    let claim = IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: TenantId::parse("acme").unwrap(),
            route: "POST /v1/devices".into(),
            key: IdempotencyKey::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
        },
        fingerprint: RequestFingerprint::of(b"{}"),
    };
    let accepted = commands
        .register(
            metadata(),
            claim,
            SerialNumber::parse(&serial).unwrap(),
            DeviceModel::parse("Gateway X1").unwrap(),
            Labels::default(),
            CertificateSigningRequest::from_pem(&testkit::csr_for(&serial))
                .unwrap()
                .into(),
        )
        .await
        .unwrap();
    let log = PostgresEventLog::new(pool.clone());
    let history = log.device_history(accepted.device_id).await.unwrap();
    let request_id = match &history[0].event {
        domain::DeviceEvent::DeviceRegistered { request_id, .. } => *request_id,
        other => panic!("unexpected {other:?}"),
    };
    let now = chrono::Utc::now();
    commands
        .complete_provisioning(
            metadata(),
            accepted.device_id,
            request_id,
            IssuedCertificate {
                pem: "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----".into(),
                serial: "01".into(),
                fingerprint_sha256: "00".repeat(32),
                not_before: now,
                not_after: now,
                issuer: None,
            },
            None,
        )
        .await
        .unwrap();
    log.device_history(accepted.device_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.to_envelope())
        .collect()
}
