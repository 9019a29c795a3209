//! The storage-only event store port on Postgres: loads at a version, appends with optimistic
//! concurrency and an idempotency claim, one outcome per append of a batch, nothing written
//! for an append that conflicts or carries a value Postgres refuses.

use app::{
    Append, AppendOutcome, CommandMetadata, EventStore, IdempotencyClaim, IdempotencyKey,
    IdempotencyScope, IdempotencyStore, RequestFingerprint,
};
use domain::{
    CertificateRequestId, CertificateSigningRequest, DecommissionReason, Device, DeviceEvent,
    DeviceId, DeviceModel, DeviceStatus, Labels, SerialNumber, TenantId,
};
use sqlx::PgPool;
use store::{GroupCommitSettings, PostgresEventStore, PostgresIdempotencyStore};

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn metadata() -> CommandMetadata {
    CommandMetadata {
        tenant: tenant(),
        actor: "test".into(),
        request_id: "req-1".into(),
        traceparent: None,
    }
}

fn claim(key: &str, route: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: tenant(),
            route: route.into(),
            key: IdempotencyKey::parse(key).unwrap(),
        },
        fingerprint: RequestFingerprint::of(key.as_bytes()),
    }
}

/// A new device's id and its registration event.
fn registration() -> (DeviceId, DeviceEvent) {
    let serial = testkit::unique_serial();
    let serial_number = SerialNumber::parse(&serial).unwrap();
    let id = DeviceId::derive(&tenant(), &serial_number);
    let event = DeviceEvent::DeviceRegistered {
        tenant: tenant(),
        serial_number,
        model: DeviceModel::parse("X1").unwrap(),
        labels: Labels::default(),
        request: CertificateSigningRequest::from_pem(&testkit::csr_for(&serial))
            .unwrap()
            .into(),
        request_id: CertificateRequestId::from_uuid(uuid::Uuid::now_v7()),
    };
    (id, event)
}

fn decommissioned() -> DeviceEvent {
    DeviceEvent::DeviceDecommissioned {
        reason: DecommissionReason::parse("test").unwrap(),
    }
}

async fn event_count(pool: &PgPool, id: DeviceId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_append_brings_the_device_to_its_version_and_records_the_claim_there() {
    let (_, pool) = testkit::migrated_database().await;
    let store = PostgresEventStore::<Device>::new(pool.clone());
    let (id, registered) = registration();
    let claim = claim("k1", "POST /v1/devices");
    let metadata = metadata();

    let outcomes = store
        .append(&[Append {
            aggregate_id: id,
            expected_version: 0,
            events: &[registered, decommissioned()],
            metadata: &metadata,
            claim: Some(&claim),
        }])
        .await
        .unwrap();

    assert_eq!(outcomes, [AppendOutcome::Appended { version: 2 }]);
    let now = store.load(id).await.unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(now.aggregate.status(), Some(DeviceStatus::Decommissioned));
    let then = store.load_at(id, 1).await.unwrap();
    assert_eq!(then.version, 1);
    assert_eq!(then.aggregate.status(), Some(DeviceStatus::Pending));
    let record = PostgresIdempotencyStore::new(pool.clone())
        .find(&claim.scope)
        .await
        .unwrap()
        .expect("the claim is recorded with the events");
    assert_eq!((record.aggregate_id, record.version), (id.to_string(), 2));
    assert_eq!(record.fingerprint, claim.fingerprint);
}

#[tokio::test]
async fn a_device_without_events_loads_at_version_zero() {
    let (_, pool) = testkit::migrated_database().await;
    let store = PostgresEventStore::<Device>::new(pool);
    let (id, _) = registration();

    let loaded = store.load(id).await.unwrap();

    assert_eq!(loaded.version, 0);
    assert_eq!(loaded.aggregate.status(), None);
}

#[tokio::test]
async fn a_taken_version_and_a_taken_key_are_different_outcomes_and_write_nothing() {
    let (_, pool) = testkit::migrated_database().await;
    let store = PostgresEventStore::<Device>::new(pool.clone());
    let metadata = metadata();
    let (id, registered) = registration();
    let first = claim("k1", "POST /v1/devices");
    let appended = store
        .append(&[Append {
            aggregate_id: id,
            expected_version: 0,
            events: std::slice::from_ref(&registered),
            metadata: &metadata,
            claim: Some(&first),
        }])
        .await
        .unwrap();
    assert_eq!(appended, [AppendOutcome::Appended { version: 1 }]);

    // Another request raced for the same version under its own key.
    let other = claim("k2", "POST /v1/devices");
    let version_taken = store
        .append(&[Append {
            aggregate_id: id,
            expected_version: 0,
            events: std::slice::from_ref(&registered),
            metadata: &metadata,
            claim: Some(&other),
        }])
        .await
        .unwrap();
    // The right version, but a key another command already holds.
    let key_taken = store
        .append(&[Append {
            aggregate_id: id,
            expected_version: 1,
            events: &[decommissioned()],
            metadata: &metadata,
            claim: Some(&first),
        }])
        .await
        .unwrap();

    assert_eq!(version_taken, [AppendOutcome::VersionConflict]);
    assert_eq!(key_taken, [AppendOutcome::KeyAlreadyClaimed]);
    assert_eq!(
        event_count(&pool, id).await,
        1,
        "nothing of either was written"
    );
    let idempotency = PostgresIdempotencyStore::new(pool.clone());
    assert!(idempotency.find(&other.scope).await.unwrap().is_none());
    assert_eq!(store.load(id).await.unwrap().version, 1);
}

#[tokio::test]
async fn each_append_of_a_batch_has_its_own_outcome() {
    let (_, pool) = testkit::migrated_database().await;
    let store = PostgresEventStore::<Device>::new(pool.clone());
    let metadata = metadata();
    let (taken, registered) = registration();
    store
        .append(&[Append {
            aggregate_id: taken,
            expected_version: 0,
            events: std::slice::from_ref(&registered),
            metadata: &metadata,
            claim: None,
        }])
        .await
        .unwrap();
    let (fresh, fresh_registered) = registration();

    let outcomes = store
        .append(&[
            Append {
                aggregate_id: taken,
                expected_version: 0,
                events: std::slice::from_ref(&registered),
                metadata: &metadata,
                claim: None,
            },
            Append {
                aggregate_id: fresh,
                expected_version: 0,
                events: std::slice::from_ref(&fresh_registered),
                metadata: &metadata,
                claim: None,
            },
        ])
        .await
        .unwrap();

    assert_eq!(
        outcomes,
        [
            AppendOutcome::VersionConflict,
            AppendOutcome::Appended { version: 1 }
        ]
    );
    assert_eq!(event_count(&pool, taken).await, 1);
    assert_eq!(event_count(&pool, fresh).await, 1);
}

#[tokio::test]
async fn the_events_carry_the_metadata_but_not_the_claims_record_values() {
    let (_, pool) = testkit::migrated_database().await;
    let store = PostgresEventStore::<Device>::new(pool.clone());
    let (id, registered) = registration();
    let claim = claim("k-meta", "POST /v1/devices");
    let metadata = CommandMetadata {
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        ..metadata()
    };
    store
        .append(&[Append {
            aggregate_id: id,
            expected_version: 0,
            events: &[registered],
            metadata: &metadata,
            claim: Some(&claim),
        }])
        .await
        .unwrap();

    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE aggregate_id = $1")
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();

    assert_eq!(
        stored,
        serde_json::json!({
            "tenant": "acme",
            "actor": "test",
            "request_id": "req-1",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "idempotency_key": "k-meta",
        })
    );
}

/// A store whose appends all queue behind one committer: whatever is appended while it
/// writes goes into its next statement.
fn one_committer(pool: &PgPool) -> PostgresEventStore<Device> {
    PostgresEventStore::<Device>::with_group_commit(
        pool.clone(),
        GroupCommitSettings {
            committers: 1,
            max_appends: 1_000,
        },
    )
}

/// Group commit: a conflict or a taken key among appends committed together fails only its
/// own append (with one committer, all of them queue behind the first).
#[tokio::test]
async fn concurrent_appends_commit_together_and_keep_their_own_outcomes() {
    let (_, pool) = testkit::migrated_database().await;
    let store = one_committer(&pool);
    let metadata = metadata();
    let (taken, taken_registration) = registration();
    let used = claim("used-key", "POST /v1/devices");
    store
        .append(&[Append {
            aggregate_id: taken,
            expected_version: 0,
            events: std::slice::from_ref(&taken_registration),
            metadata: &metadata,
            claim: Some(&used),
        }])
        .await
        .unwrap();
    let fresh: Vec<(DeviceId, DeviceEvent, IdempotencyClaim)> = (0..60)
        .map(|n| {
            let (id, event) = registration();
            (id, event, claim(&format!("fresh-{n}"), "POST /v1/devices"))
        })
        .collect();
    let (reused_key_device, reused_key_registration) = registration();

    let fresh_appends = fresh.iter().map(|(id, event, claim)| {
        let store = &store;
        let metadata = &metadata;
        async move {
            store
                .append(&[Append {
                    aggregate_id: *id,
                    expected_version: 0,
                    events: std::slice::from_ref(event),
                    metadata,
                    claim: Some(claim),
                }])
                .await
        }
    });
    let version_taken = async {
        store
            .append(&[Append {
                aggregate_id: taken,
                expected_version: 0,
                events: std::slice::from_ref(&taken_registration),
                metadata: &metadata,
                claim: None,
            }])
            .await
    };
    let key_taken = async {
        store
            .append(&[Append {
                aggregate_id: reused_key_device,
                expected_version: 0,
                events: std::slice::from_ref(&reused_key_registration),
                metadata: &metadata,
                claim: Some(&used),
            }])
            .await
    };
    let (fresh_outcomes, version_taken, key_taken) = tokio::join!(
        futures::future::join_all(fresh_appends),
        version_taken,
        key_taken
    );

    for outcome in fresh_outcomes {
        assert_eq!(outcome.unwrap(), [AppendOutcome::Appended { version: 1 }]);
    }
    assert_eq!(version_taken.unwrap(), [AppendOutcome::VersionConflict]);
    assert_eq!(key_taken.unwrap(), [AppendOutcome::KeyAlreadyClaimed]);
    assert_eq!(event_count(&pool, taken).await, 1);
    assert_eq!(event_count(&pool, reused_key_device).await, 0);
    let idempotency = PostgresIdempotencyStore::new(pool.clone());
    for (id, _, claim) in &fresh {
        let record = idempotency.find(&claim.scope).await.unwrap().unwrap();
        assert_eq!((record.aggregate_id, record.version), (id.to_string(), 1));
    }
}

/// Group commit: appends made at the same time share a statement and a transaction.
#[tokio::test]
async fn appends_queued_together_commit_in_one_transaction() {
    let (_, pool) = testkit::migrated_database().await;
    let store = one_committer(&pool);
    let metadata = metadata();
    let fresh: Vec<(DeviceId, DeviceEvent)> = (0..60).map(|_| registration()).collect();

    let outcomes = futures::future::join_all(fresh.iter().map(|(id, event)| {
        let (store, metadata) = (&store, &metadata);
        async move {
            store
                .append(&[Append {
                    aggregate_id: *id,
                    expected_version: 0,
                    events: std::slice::from_ref(event),
                    metadata,
                    claim: None,
                }])
                .await
        }
    }))
    .await;

    for outcome in outcomes {
        assert_eq!(outcome.unwrap(), [AppendOutcome::Appended { version: 1 }]);
    }
    let ids: Vec<String> = fresh.iter().map(|(id, _)| id.to_string()).collect();
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT transaction_id) FROM events WHERE aggregate_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        transactions <= 5,
        "60 appends queued together were committed in {transactions} transactions"
    );
}

/// A new device of `tenant` and its registration event.
fn registration_in(tenant: &TenantId) -> (DeviceId, DeviceEvent) {
    let serial = testkit::unique_serial();
    let serial_number = SerialNumber::parse(&serial).unwrap();
    let id = DeviceId::derive(tenant, &serial_number);
    let event = DeviceEvent::DeviceRegistered {
        tenant: tenant.clone(),
        serial_number,
        model: DeviceModel::parse("X1").unwrap(),
        labels: Labels::default(),
        request: CertificateSigningRequest::from_pem(&testkit::csr_for(&serial))
            .unwrap()
            .into(),
        request_id: CertificateRequestId::from_uuid(uuid::Uuid::now_v7()),
    };
    (id, event)
}

/// Metadata Postgres cannot store: a U+0000 in the actor (a token's `sub`), which `jsonb`
/// refuses (SQLSTATE 22P05). The api refuses such a token; the store must not depend on it.
fn unstorable_metadata(tenant: &TenantId) -> CommandMetadata {
    CommandMetadata {
        tenant: tenant.clone(),
        actor: "evil\u{0}client".into(),
        request_id: "req-nul".into(),
        traceparent: None,
    }
}

/// A data error (here 22P05) is one append's own failure: the statement carrying the batch
/// fails without saying whose value it was, so the batch is written again one append at a
/// time, and only the append Postgres refuses is refused.
#[tokio::test]
async fn a_value_postgres_refuses_fails_only_its_own_append_of_a_batch() {
    let (_, pool) = testkit::migrated_database().await;
    let store = PostgresEventStore::<Device>::new(pool.clone());
    let globex = TenantId::parse("globex").unwrap();
    let (good, good_registration) = registration();
    let (bad, bad_registration) = registration_in(&globex);
    let (other, other_registration) = registration_in(&globex);
    let metadata = metadata();
    let bad_metadata = unstorable_metadata(&globex);
    let other_metadata = CommandMetadata {
        actor: "globex-client".into(),
        ..unstorable_metadata(&globex)
    };

    let outcomes = store
        .append(&[
            Append {
                aggregate_id: good,
                expected_version: 0,
                events: std::slice::from_ref(&good_registration),
                metadata: &metadata,
                claim: None,
            },
            Append {
                aggregate_id: bad,
                expected_version: 0,
                events: std::slice::from_ref(&bad_registration),
                metadata: &bad_metadata,
                claim: None,
            },
            Append {
                aggregate_id: other,
                expected_version: 0,
                events: std::slice::from_ref(&other_registration),
                metadata: &other_metadata,
                claim: None,
            },
        ])
        .await
        .expect("one append's bad value must not fail its batch");

    assert_eq!(
        outcomes,
        [
            AppendOutcome::Appended { version: 1 },
            AppendOutcome::Refused,
            AppendOutcome::Appended { version: 1 },
        ]
    );
    assert_eq!(event_count(&pool, good).await, 1);
    assert_eq!(event_count(&pool, bad).await, 0);
    assert_eq!(event_count(&pool, other).await, 1);
}

/// Two tenants append at once through one committer (so their appends share statements);
/// one command of one tenant carries a value Postgres refuses: every other command, of
/// either tenant, is appended.
#[tokio::test]
async fn one_tenants_unstorable_append_never_fails_the_commands_committed_with_it() {
    let (_, pool) = testkit::migrated_database().await;
    let store = one_committer(&pool);
    let globex = TenantId::parse("globex").unwrap();
    let acme_metadata = metadata();
    let globex_metadata = CommandMetadata {
        actor: "globex-client".into(),
        ..unstorable_metadata(&globex)
    };
    let bad_metadata = unstorable_metadata(&globex);
    let acme: Vec<(DeviceId, DeviceEvent)> = (0..40).map(|_| registration()).collect();
    let globex_devices: Vec<(DeviceId, DeviceEvent)> =
        (0..40).map(|_| registration_in(&globex)).collect();
    let (bad, bad_registration) = registration_in(&globex);

    let append = |(id, event): &(DeviceId, DeviceEvent), metadata: &CommandMetadata| {
        let (store, id, event, metadata) = (&store, *id, event.clone(), metadata.clone());
        async move {
            store
                .append(&[Append {
                    aggregate_id: id,
                    expected_version: 0,
                    events: std::slice::from_ref(&event),
                    metadata: &metadata,
                    claim: None,
                }])
                .await
        }
    };
    let good_appends = acme
        .iter()
        .map(|d| append(d, &acme_metadata))
        .chain(globex_devices.iter().map(|d| append(d, &globex_metadata)));
    let (good_outcomes, bad_outcome) = tokio::join!(
        futures::future::join_all(good_appends),
        append(&(bad, bad_registration), &bad_metadata)
    );

    let failed: Vec<String> = good_outcomes
        .iter()
        .filter(|o| !matches!(o.as_deref(), Ok([AppendOutcome::Appended { version: 1 }])))
        .map(|o| format!("{o:?}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 80 good appends failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let bad_outcome = bad_outcome.expect("a refused value is the append's outcome, not an outage");
    assert_eq!(bad_outcome, [AppendOutcome::Refused]);
    assert_eq!(event_count(&pool, bad).await, 0);
}
