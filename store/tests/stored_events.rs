//! The stored events' schema against its golden fixtures (`tests/fixtures/stored_events/`):
//! every stored form of every event type, as the table holds it, decodes forever; what is
//! still written is read back as written; an old version is upcast to the new one; and rows of
//! every version read back through Postgres.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cqrs_es::DomainEvent;
use domain::{Device, DeviceEvent, SigningRequest, TenantCas, TenantCasEvent};
use serde::Deserialize;
use serde_json::Value;
use store::stored_events::{StoredEventRef, UnreadableEvent};
use store::EventSchema;

#[derive(Debug, Deserialize)]
struct StoredRow {
    event_type: String,
    event_version: String,
    payload: Value,
}

impl StoredRow {
    fn decode_as<A: EventSchema>(&self) -> Result<A::Event, UnreadableEvent> {
        A::decode(StoredEventRef {
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: &self.payload.to_string(),
        })
    }

    fn decode(&self) -> Result<DeviceEvent, UnreadableEvent> {
        self.decode_as::<Device>()
    }
}

/// The fixtures of one aggregate's events (`device`, `ca`).
fn fixture_dir(aggregate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stored_events")
        .join(aggregate)
}

/// Every fixture file's rows of `aggregate`, by file name.
fn fixtures_of(aggregate: &str) -> BTreeMap<String, Vec<StoredRow>> {
    std::fs::read_dir(fixture_dir(aggregate))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let rows = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                rows,
            )
        })
        .collect()
}

fn fixtures() -> BTreeMap<String, Vec<StoredRow>> {
    fixtures_of("device")
}

fn fixture(name: &str) -> Vec<StoredRow> {
    fixtures()
        .remove(name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// Every device event type. The match has no wildcard: a new event type does not compile
/// here until it is listed, and then `every_event_type_has_a_fixture_…` asks for its fixture.
fn device_event_type(event: &DeviceEvent) -> &'static str {
    match event {
        DeviceEvent::DeviceRegistered { .. } => "DeviceRegistered",
        DeviceEvent::CertificateRenewalRequested { .. } => "CertificateRenewalRequested",
        DeviceEvent::CertificateIssued { .. } => "CertificateIssued",
        DeviceEvent::ProvisioningFailed { .. } => "ProvisioningFailed",
        DeviceEvent::DeviceDecommissioned { .. } => "DeviceDecommissioned",
        DeviceEvent::CertificateRevoked { .. } => "CertificateRevoked",
    }
}

const EVERY_DEVICE_EVENT_TYPE: [&str; 6] = [
    "DeviceRegistered",
    "CertificateRenewalRequested",
    "CertificateIssued",
    "ProvisioningFailed",
    "DeviceDecommissioned",
    "CertificateRevoked",
];

/// Every tenant-CA event type, listed as the device's are.
fn tenant_cas_event_type(event: &TenantCasEvent) -> &'static str {
    match event {
        TenantCasEvent::TenantCasCreated { .. } => "TenantCasCreated",
        TenantCasEvent::CaCertified { .. } => "CaCertified",
        TenantCasEvent::RotationStarted { .. } => "RotationStarted",
        TenantCasEvent::CaRetired { .. } => "CaRetired",
        TenantCasEvent::CaRevoked { .. } => "CaRevoked",
    }
}

const EVERY_TENANT_CAS_EVENT_TYPE: [&str; 5] = [
    "TenantCasCreated",
    "CaCertified",
    "RotationStarted",
    "CaRetired",
    "CaRevoked",
];

/// Every row of every fixture of `aggregate` decodes, into an event of the row's type.
fn every_stored_form_decodes<A: EventSchema>(aggregate: &str, type_of: fn(&A::Event) -> &str) {
    let fixtures = fixtures_of(aggregate);
    assert!(!fixtures.is_empty());
    for (file, rows) in &fixtures {
        assert!(!rows.is_empty(), "{file}");
        for row in rows {
            assert_eq!(
                file,
                &format!("{}.v{}.json", row.event_type, row.event_version),
                "a fixture file holds one type and version"
            );
            let event = row
                .decode_as::<A>()
                .unwrap_or_else(|e| panic!("{file}: {e}: {}", row.payload));
            assert_eq!(type_of(&event), row.event_type, "{file}");
            assert_eq!(event.event_type(), row.event_type, "{file}");
        }
    }
}

/// Each event type of `every_type` has a fixture of the version it is written at today.
fn every_event_type_has_a_fixture_of_its_version<A: EventSchema>(
    aggregate: &str,
    every_type: &[&str],
) {
    let fixtures = fixtures_of(aggregate);
    for event_type in every_type {
        let event = fixtures
            .values()
            .flatten()
            .filter(|row| row.event_type == *event_type)
            .find_map(|row| row.decode_as::<A>().ok())
            .unwrap_or_else(|| panic!("no fixture of {event_type}"));
        let written = A::encode(&event).unwrap();
        let file = format!("{}.v{}.json", written.event_type, written.event_version);
        assert!(
            fixtures.contains_key(&file),
            "{event_type} is written at version {} and has no fixture {file}",
            written.event_version
        );
    }
}

/// Rows of the version written today come back exactly as they are stored: reading loses
/// nothing, and writing again would store the same fact.
fn what_is_written_today_reads_back_as_written<A: EventSchema>(aggregate: &str) {
    for (file, rows) in fixtures_of(aggregate) {
        for row in rows {
            let written = A::encode(&row.decode_as::<A>().unwrap()).unwrap();
            if written.event_version != row.event_version {
                continue; // an older version: upcast
            }
            assert_eq!(written.event_type, row.event_type, "{file}");
            let payload: Value = serde_json::from_str(&written.payload).unwrap();
            assert_eq!(payload, row.payload, "{file}");
        }
    }
}

#[test]
fn every_stored_form_of_a_device_event_decodes() {
    every_stored_form_decodes::<Device>("device", device_event_type);
}

#[test]
fn every_device_event_type_has_a_fixture_of_the_version_written_today() {
    every_event_type_has_a_fixture_of_its_version::<Device>("device", &EVERY_DEVICE_EVENT_TYPE);
}

#[test]
fn device_events_written_today_are_read_back_as_written() {
    what_is_written_today_reads_back_as_written::<Device>("device");
}

#[test]
fn every_stored_form_of_a_tenant_ca_event_decodes() {
    every_stored_form_decodes::<TenantCas>("ca", tenant_cas_event_type);
}

#[test]
fn every_tenant_ca_event_type_has_a_fixture_of_the_version_written_today() {
    every_event_type_has_a_fixture_of_its_version::<TenantCas>("ca", &EVERY_TENANT_CAS_EVENT_TYPE);
}

#[test]
fn tenant_ca_events_written_today_are_read_back_as_written() {
    what_is_written_today_reads_back_as_written::<TenantCas>("ca");
}

#[test]
fn a_tenant_ca_event_of_an_unknown_version_or_type_is_unreadable() {
    let mut row = fixtures_of("ca")
        .remove("CaRetired.v1.json")
        .unwrap()
        .remove(0);
    row.event_version = "2".into();
    assert!(row.decode_as::<TenantCas>().is_err());
    row.event_version = "1".into();
    row.event_type = "CaRevoked".into();
    assert!(
        row.decode_as::<TenantCas>().is_err(),
        "a CaRetired payload is no CaRevoked"
    );
}

#[test]
fn a_version_1_certificate_issued_is_upcast_to_version_2() {
    let v1 = fixture("CertificateIssued.v1.json");
    let v2 = fixture("CertificateIssued.v2.json");
    assert_eq!(v1.len(), v2.len());
    for (old, new) in v1.iter().zip(&v2) {
        // The same fact, whichever version recorded it ...
        let event = old.decode().unwrap();
        assert_eq!(event, new.decode().unwrap());
        // ... and the version 1 row in version 2's form: the data without the type's key,
        // the issuer always there.
        let written = Device::encode(&event).unwrap();
        assert_eq!(written.event_version, "2");
        assert_eq!(
            serde_json::from_str::<Value>(&written.payload).unwrap(),
            new.payload
        );
    }
    // The row recorded before certificates named their issuer: an explicit null in v2.
    assert!(old_row_without_issuer(&v1[1]));
    assert_eq!(v2[1].payload["certificate"]["issuer"], Value::Null);
    let DeviceEvent::CertificateIssued { certificate, .. } = v1[1].decode().unwrap() else {
        panic!("a CertificateIssued fixture");
    };
    assert_eq!(certificate.issuer, None);
}

#[test]
fn a_version_1_request_is_upcast_to_a_pkcs10_request_of_version_2() {
    for event_type in ["DeviceRegistered", "CertificateRenewalRequested"] {
        let v1 = fixture(&format!("{event_type}.v1.json"));
        let v2 = fixture(&format!("{event_type}.v2.json"));
        for (old, new) in v1.iter().zip(&v2) {
            let event = old.decode().unwrap();
            assert_eq!(event, new.decode().unwrap(), "{event_type}");
            let written = Device::encode(&event).unwrap();
            assert_eq!(written.event_version, "2");
            assert_eq!(
                serde_json::from_str::<Value>(&written.payload).unwrap(),
                new.payload
            );
            let csr = &old.payload[event_type]["csr"];
            assert_eq!(&new.payload["request"]["pkcs10"], csr);
        }
        // Version 2 alone holds CRMF requests, kept as sent, and verified CSRs.
        let verified = match v2.last().unwrap().decode().unwrap() {
            DeviceEvent::DeviceRegistered { request, .. }
            | DeviceEvent::CertificateRenewalRequested { request, .. } => request,
            other => panic!("{other:?}"),
        };
        let SigningRequest::VerifiedPkcs10(verified) = verified else {
            panic!("{event_type}: not read as a verified CSR");
        };
        verified
            .check_subject(&domain::SerialNumber::parse("SN-SCEP-1").unwrap())
            .unwrap();
        let crmf = &v2[v2.len() - 2];
        let request = match crmf.decode().unwrap() {
            DeviceEvent::DeviceRegistered { request, .. }
            | DeviceEvent::CertificateRenewalRequested { request, .. } => request,
            other => panic!("{other:?}"),
        };
        let SigningRequest::Crmf(request) = request else {
            panic!("{event_type}: not read as CRMF");
        };
        let serial = domain::SerialNumber::parse("SN-0001").unwrap();
        request.check_subject(&serial).unwrap();
    }
}

#[test]
fn in_version_2_a_request_has_exactly_one_known_form() {
    let mut row = fixture("DeviceRegistered.v2.json").remove(0);
    let pem = row.payload["request"]["pkcs10"].clone();
    row.payload["request"] = serde_json::json!({"pkcs10": pem, "crmf": "MAA="});
    assert!(row.decode().is_err(), "two forms");
    row.payload["request"] = serde_json::json!({"scep": pem});
    assert!(row.decode().is_err(), "an unknown form");
    row.payload["request"] = serde_json::json!({"crmf": "not base64!"});
    assert!(row.decode().is_err(), "CRMF that is not base64");
    row.payload["request"] = serde_json::json!({"verified_pkcs10": {"public_key": "MAA=", "common_names": [], "sha256": "abcd"}});
    assert!(row.decode().is_err(), "a digest that is not 32 bytes");
    row.payload["request"] = pem;
    assert!(row.decode().is_err(), "a bare CSR is version 1's");
}

fn old_row_without_issuer(row: &StoredRow) -> bool {
    row.payload["CertificateIssued"]["certificate"]
        .as_object()
        .is_some_and(|certificate| !certificate.contains_key("issuer"))
}

#[test]
fn in_version_2_a_missing_issuer_is_unreadable_not_an_old_certificate() {
    let mut row = fixture("CertificateIssued.v2.json").remove(0);
    row.payload["certificate"]
        .as_object_mut()
        .unwrap()
        .remove("issuer");
    assert!(row.decode().is_err());
}

/// A recorded value is read as it was, even one that today's rules refuse: a rule may
/// tighten; history stays readable.
#[test]
fn recorded_values_are_not_judged_by_todays_rules() {
    let mut row = fixture("DeviceRegistered.v1.json").remove(0);
    let registered = &mut row.payload["DeviceRegistered"];
    registered["serial_number"] = "has space/and slash".into();
    registered["model"] = " padded ".into();
    registered["labels"] = serde_json::json!({"Upper Case": "x"});
    let DeviceEvent::DeviceRegistered {
        serial_number,
        model,
        labels,
        ..
    } = row.decode().unwrap()
    else {
        panic!("a DeviceRegistered fixture");
    };
    assert_eq!(serial_number.as_str(), "has space/and slash");
    assert_eq!(model.as_str(), " padded ");
    assert_eq!(labels.as_map()["Upper Case"], "x");
}

#[test]
fn an_unknown_version_or_a_payload_of_another_type_is_unreadable() {
    let mut row = fixture("DeviceDecommissioned.v1.json").remove(0);
    row.event_version = "2".into();
    let e = row.decode().unwrap_err();
    assert!(e.to_string().contains("no such version"), "{e}");

    let mut row = fixture("DeviceDecommissioned.v1.json").remove(0);
    row.event_type = "CertificateRevoked".into();
    let e = row.decode().unwrap_err();
    assert!(e.to_string().contains("DeviceDecommissioned"), "{e}");
}

/// The fixtures as rows of the table: a device whose history holds every version (a
/// certificate recorded without its issuer among them) loads, and its history reads back
/// as the events the fixtures record (through `jsonb`, which reorders keys).
#[tokio::test]
async fn a_history_of_every_version_reads_back_through_postgres() {
    use app::{EventLog, EventStore};
    let (_, pool) = testkit::migrated_database().await;
    let history = [
        fixture("DeviceRegistered.v1.json").remove(0),
        fixture("CertificateIssued.v1.json").remove(1),
        fixture("CertificateRevoked.v1.json").remove(1),
        fixture("CertificateRenewalRequested.v1.json").remove(0),
        fixture("CertificateIssued.v2.json").remove(0),
        fixture("DeviceDecommissioned.v1.json").remove(0),
    ];
    let id = domain::DeviceId::from_uuid(uuid::Uuid::now_v7());
    for (sequence, row) in (1_i64..).zip(&history) {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('device', $1, $2, $3, $4, $5::jsonb, '{\"tenant\": \"acme-fleet\"}')",
        )
        .bind(id.to_string())
        .bind(sequence)
        .bind(&row.event_type)
        .bind(&row.event_version)
        .bind(row.payload.to_string())
        .execute(&pool)
        .await
        .unwrap();
    }

    let loaded = store::PostgresEventStore::<Device>::new(pool.clone())
        .load(id)
        .await
        .unwrap();
    assert_eq!(loaded.version, 6);
    assert_eq!(
        loaded.aggregate.serial_number().unwrap().as_str(),
        "SN-000123"
    );
    let read: Vec<DeviceEvent> = store::PostgresEventLog::new(pool)
        .device_history(id)
        .await
        .unwrap()
        .into_iter()
        .map(|recorded| recorded.event)
        .collect();
    let expected: Vec<DeviceEvent> = history.iter().map(|row| row.decode().unwrap()).collect();
    assert_eq!(read, expected);
}
