//! The event store holds any aggregate, not only devices: a test-only aggregate (`Tally`,
//! standing in for the next issue's certificate authorities) lives in the same `events`
//! table, shares the group commit, the idempotency records and the commit order, and is
//! invisible to every device reader (load, history, the tenant feed, the relay's and the
//! rebuilds' commit-order reads, the read models' lag and rebuild totals), as is a row of an
//! aggregate that belongs to no tenant.

use app::{
    Append, AppendOutcome, CommandMetadata, CommitPosition, EventLog, EventSourced, EventStore,
    IdempotencyClaim, IdempotencyKey, IdempotencyScope, RequestFingerprint,
};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use domain::{
    CertificateRequestId, CertificateSigningRequest, Device, DeviceEvent, DeviceId, DeviceModel,
    Labels, SerialNumber, TenantId,
};
use serde::{Deserialize, Serialize};
use store::stored_events::{StoredEvent, StoredEventRef, UnreadableEvent};
use store::{EventSchema, PostgresEventLog, PostgresEventStore};
use uuid::Uuid;

/// A counter: the smallest aggregate with events of its own.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Tally {
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counted {
    by: u64,
}

impl DomainEvent for Counted {
    fn event_type(&self) -> String {
        "Counted".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Tally {
    const TYPE: &'static str = "tally";
    type Command = u64;
    type Event = Counted;
    type Error = Never;
    type Services = ();

    async fn handle(&mut self, by: u64, _: &(), sink: &EventSink<Self>) -> Result<(), Never> {
        sink.write(Counted { by }, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Counted) {
        self.total += event.by;
    }
}

impl EventSourced for Tally {
    type Id = Uuid;
}

/// Its stored schema: one form, `{"by": n}`, at version 1.
impl EventSchema for Tally {
    fn encode(event: &Counted) -> Result<StoredEvent, serde_json::Error> {
        Ok(StoredEvent {
            event_type: "Counted",
            event_version: "1",
            payload: serde_json::json!({ "by": event.by }).to_string(),
        })
    }

    fn decode(stored: StoredEventRef<'_>) -> Result<Counted, UnreadableEvent> {
        let form: serde_json::Value = serde_json::from_str(stored.payload).unwrap();
        Ok(Counted {
            by: form["by"].as_u64().unwrap(),
        })
    }
}

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

fn claim(key: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: IdempotencyScope {
            tenant: tenant(),
            route: "POST /things".into(),
            key: IdempotencyKey::parse(key).unwrap(),
        },
        fingerprint: RequestFingerprint::of(key.as_bytes()),
    }
}

fn registration(serial: &str) -> (DeviceId, DeviceEvent) {
    let serial_number = SerialNumber::parse(serial).unwrap();
    let id = DeviceId::derive(&tenant(), &serial_number);
    let event = DeviceEvent::DeviceRegistered {
        tenant: tenant(),
        serial_number,
        model: DeviceModel::parse("X1").unwrap(),
        labels: Labels::default(),
        request: CertificateSigningRequest::from_pem(&testkit::csr_for(serial))
            .unwrap()
            .into(),
        request_id: CertificateRequestId::from_uuid(Uuid::now_v7()),
    };
    (id, event)
}

#[tokio::test]
async fn another_aggregate_shares_the_store_and_stays_out_of_the_device_readers() {
    let (_, pool) = testkit::migrated_database().await;
    let devices = PostgresEventStore::<Device>::new(pool.clone());
    let tallies = devices.of::<Tally>();
    let meta = metadata();
    let (device, registered) = registration(&testkit::unique_serial());
    let tally = Uuid::now_v7();

    // Appended together: one group commit for both aggregates, same tenant.
    let registered = [registered];
    let counted = [Counted { by: 2 }, Counted { by: 3 }];
    let tally_claim = claim("tally-key");
    let device_append = [Append {
        aggregate_id: device,
        expected_version: 0,
        events: &registered,
        metadata: &meta,
        claim: None,
    }];
    let tally_append = [Append {
        aggregate_id: tally,
        expected_version: 0,
        events: &counted,
        metadata: &meta,
        claim: Some(&tally_claim),
    }];
    let (device_outcomes, tally_outcomes) = tokio::join!(
        devices.append(&device_append),
        tallies.append(&tally_append),
    );
    assert_eq!(
        device_outcomes.unwrap(),
        [AppendOutcome::Appended { version: 1 }]
    );
    assert_eq!(
        tally_outcomes.unwrap(),
        [AppendOutcome::Appended { version: 2 }]
    );
    // A platform root belongs to no tenant: its metadata names none (`tenant` is NULL).
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('platform_root', 'root', 1, 'RootCreated', '1', '{\"anything\": 1}', '{\"actor\": \"operator\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();

    // The other aggregate reads back through its own schema.
    let loaded = tallies.load(tally).await.unwrap();
    assert_eq!((loaded.aggregate.total, loaded.version), (5, 2));
    // The idempotency records are shared: the key is taken, whichever aggregate asks.
    let (other_device, other_registered) = registration(&testkit::unique_serial());
    let taken = devices
        .append(&[Append {
            aggregate_id: other_device,
            expected_version: 0,
            events: &[other_registered],
            metadata: &meta,
            claim: Some(&tally_claim),
        }])
        .await
        .unwrap();
    assert_eq!(taken, [AppendOutcome::KeyAlreadyClaimed]);

    // Every device reader sees the device's event, and nothing else.
    let loaded = devices.load(device).await.unwrap();
    assert_eq!(loaded.version, 1);
    let log = PostgresEventLog::new(pool.clone());
    let history = log.device_history(device).await.unwrap();
    assert_eq!(history.len(), 1);
    let feed = log
        .tenant_events_after(&tenant(), CommitPosition::START, 100, None)
        .await
        .unwrap();
    assert_eq!(ids(&feed.events), [device]);
    let of_its_type = log
        .tenant_events_after(&tenant(), CommitPosition::START, 100, Some("Counted"))
        .await
        .unwrap();
    assert!(of_its_type.events.is_empty());
    let registrations = log
        .tenant_events_after(
            &tenant(),
            CommitPosition::START,
            100,
            Some("DeviceRegistered"),
        )
        .await
        .unwrap();
    assert_eq!(ids(&registrations.events), [device]);
    let mut conn = pool.acquire().await.unwrap();
    let relayed = store::committed_events_after(&mut conn, CommitPosition::START, 100)
        .await
        .unwrap();
    assert_eq!(ids(&relayed.events), [device]);
    let rebuilt = store::visible_events_after(&mut conn, CommitPosition::START, 100)
        .await
        .unwrap();
    assert_eq!(ids(&rebuilt), [device]);
    let changed = store::devices_changed_since(&mut conn, None, None)
        .await
        .unwrap();
    assert_eq!(changed, [device]);
    // The read models' lag and a rebuild's total: the device's event alone.
    let backlog = store::backlog_after(&pool, CommitPosition::START)
        .await
        .unwrap();
    assert_eq!(backlog.events, 1);
    assert_eq!(store::count_events(&mut conn).await.unwrap(), 1);
}

fn ids(events: &[app::RecordedEvent]) -> Vec<DeviceId> {
    events.iter().map(|e| e.device_id).collect()
}
