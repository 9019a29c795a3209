//! Nothing is lost or done twice when a worker dies, when NATS goes away, or when a
//! transaction commits late; poison messages end as dead letters.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, PrivateNats, Stack, TENANT};

const PATIENCE: Duration = Duration::from_secs(60);

/// Every device has exactly one `CertificateIssued` event (one certificate per request).
async fn assert_one_certificate_each(stack: &Stack, ids: &[Uuid]) {
    for id in ids {
        let issued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'CertificateIssued'",
        )
        .bind(id.to_string())
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        assert_eq!(issued, 1, "device {id}");
    }
}

async fn register_many(stack: &Stack, n: usize) -> Vec<Uuid> {
    let bodies: Vec<_> = (0..n).map(|_| registration(&unique_serial())).collect();
    join_all(bodies.iter().map(|b| stack.register(b))).await
}

#[tokio::test]
async fn a_worker_killed_mid_batch_is_replaced_and_every_device_is_provisioned_once() {
    let mut stack = Stack::start().await;
    let first = stack.spawn_worker();
    let ids = register_many(&stack, 200).await;

    // Kill the worker once it has issued some certificates but not all.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let issued = stack.count_events("CertificateIssued").await;
        if issued > 0 {
            assert!(
                issued < 200,
                "the worker finished before it could be killed"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never issued anything"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stack.kill_worker(first);
    let issued_at_kill = stack.count_events("CertificateIssued").await;
    stack.spawn_worker();

    for id in &ids {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    assert_one_certificate_each(&stack, &ids).await;
    assert!(issued_at_kill < 200);
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}

#[tokio::test]
async fn registrations_made_while_nats_is_down_are_published_and_projected_when_it_returns() {
    let mut nats = PrivateNats::start().await;
    let mut stack = Stack::start_with_nats(nats.url.clone()).await;
    stack.spawn_worker();
    let before = register_many(&stack, 10).await;
    for id in &before {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }

    nats.stop();
    let during = register_many(&stack, 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.resume().await;

    for id in before.iter().chain(&during) {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    assert_one_certificate_each(&stack, &during).await;
    // The stream holds every event exactly once (the relay's retries were deduplicated).
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while stack.stream_messages().await < events as u64 {
        assert!(Instant::now() < deadline, "the stream never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.stream_messages().await, events as u64);
    stack.assert_read_model_matches_events().await;
}

#[tokio::test]
async fn an_event_whose_transaction_commits_late_is_not_skipped_by_the_relay() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();

    // A transaction appends an event (it gets its position now) and stays open...
    let serial = unique_serial();
    let tenant = domain::TenantId::parse(TENANT).unwrap();
    let device_id =
        domain::DeviceId::derive(&tenant, &domain::SerialNumber::parse(&serial).unwrap());
    let event = domain::DeviceEvent::DeviceRegistered {
        tenant: tenant.clone(),
        serial_number: domain::SerialNumber::parse(&serial).unwrap(),
        model: domain::DeviceModel::parse("Gateway X1").unwrap(),
        labels: domain::Labels::default(),
        request: domain::CertificateSigningRequest::from_pem(&crate::helpers::csr_for(&serial))
            .unwrap()
            .into(),
        request_id: domain::CertificateRequestId::from_uuid(Uuid::now_v7()),
    };
    let mut late = sqlx::PgConnection::connect(&stack.database_url)
        .await
        .unwrap();
    let mut tx = late.begin().await.unwrap();
    let stored = <domain::Device as store::EventSchema>::encode(&event).unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('device', $1, 1, $2, $3, $4::jsonb, $5)",
    )
    .bind(device_id.to_string())
    .bind(stored.event_type)
    .bind(stored.event_version)
    .bind(stored.payload)
    .bind(json!({"tenant": TENANT, "actor": "test", "request_id": "late"}))
    .execute(&mut *tx)
    .await
    .unwrap();

    // ...while later events (higher positions) commit and could be published first.
    let early = register_many(&stack, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tx.commit().await.unwrap();

    let late_id: Uuid = device_id.as_uuid();
    stack
        .wait_for_status(late_id, "provisioned", PATIENCE)
        .await;
    for id in &early {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    stack.delete_stream().await;
}

#[tokio::test]
async fn unreadable_messages_become_dead_letters_and_unknown_events_are_ignored() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    // Let the worker create the stream, then publish two bad messages straight to it.
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let client = async_nats::connect(&stack.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let not_json_subject = format!("{}.{TENANT}.device.DeviceRegistered", stack.prefix);
    js.publish(not_json_subject, "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A well-formed event for a device the event store has never seen: not a fact, so the
    // projectors ignore it (they fold only what the event store holds) and it is no failure.
    let mut orphan: serde_json::Value = {
        let history = stack
            .get(&format!("/v1/devices/{id}/history"), &stack.reader())
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        history["events"][1].clone()
    };
    let orphan_device = Uuid::new_v4();
    let orphan_id = Uuid::new_v4();
    orphan["subject"] = json!(orphan_device);
    orphan["id"] = json!(orphan_id);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", orphan_id.to_string().as_str());
    js.publish_with_headers(
        format!("{}.{TENANT}.device.CertificateIssued", stack.prefix),
        headers,
        serde_json::to_vec(&orphan).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let deadline = Instant::now() + PATIENCE;
    loop {
        let letters: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT consumer, error, deliveries FROM dead_letters ORDER BY consumer",
        )
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        let poison = letters
            .iter()
            .filter(|(_, error, _)| error.contains("not an event envelope"))
            .count();
        // The non-JSON message reaches the registrations provisioner and every projector.
        let consumers = 1 + projections::registered().count();
        if poison == consumers {
            assert_eq!(
                letters.len(),
                consumers,
                "only the unreadable message: {letters:?}"
            );
            assert!(letters.iter().all(|(_, _, deliveries)| *deliveries == 1));
            break;
        }
        assert!(Instant::now() < deadline, "dead letters: {letters:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The good device is untouched and the worker still works.
    let next = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(next, "provisioned", PATIENCE).await;
    let orphan_letters: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE event_id = $1")
            .bind(orphan_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(
        orphan_letters, 0,
        "the unknown event is ignored, not a failure"
    );
    let orphan_view = stack
        .get(&format!("/v1/devices/{orphan_device}"), &stack.reader())
        .await;
    assert_eq!(orphan_view.status(), 404);
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}

#[tokio::test]
async fn when_the_active_relay_dies_another_worker_takes_over_within_seconds() {
    let mut stack = Stack::start().await;
    let first = stack.spawn_worker();
    stack
        .wait_for_log(first, "relay active", Duration::from_secs(30))
        .await;
    let second = stack.spawn_worker();
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;
    assert!(
        !stack.worker_log(second).contains("relay active"),
        "only one relay is active at a time"
    );

    stack.kill_worker(first);
    let killed_at = Instant::now();
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "took over after {:?}",
        killed_at.elapsed()
    );
    assert!(stack.worker_log(second).contains("relay active"));
    stack.delete_stream().await;
}

#[tokio::test]
async fn the_worker_recovers_by_itself_when_its_database_connections_are_cut() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;

    // Every worker connection (pool, relay lease, listener) dies, as in a database restart.
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'provisioning-worker') t",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert!(cut >= 2, "the worker had connections to cut ({cut})");

    let ids = register_many(&stack, 10).await;
    for id in &ids {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    assert_one_certificate_each(&stack, &ids).await;
    stack.delete_stream().await;
}

/// Postgres is unreachable from the worker's consumers for much longer than the whole
/// redelivery schedule (and the dead-letter recording's retries), while the relay (here in
/// the test, straight on Postgres) keeps publishing: the outage does not count against the
/// messages, none becomes a dead letter, none is lost, and every device is provisioned once
/// Postgres is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_longer_than_the_redelivery_schedule_loses_no_message() {
    let mut stack = Stack::start().await;
    let (mut postgres, via_proxy) = testkit::postgres_behind_proxy(&stack.database_url).await;

    let js = async_nats::jetstream::new(stack.nats_client().await);
    let relay = nats::Relay::new(
        store::RelayLeases::new(stack.database_url.parse().unwrap(), "relay:outage-test"),
        js,
        nats::StreamSettings {
            name: stack.stream.clone(),
            subject_prefix: stack.prefix.clone(),
            duplicate_window: Duration::from_secs(300),
            max_age: Duration::from_secs(86_400),
            replicas: 1,
        },
        nats::RelaySettings {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let relay = tokio::spawn(relay.run(std::future::pending()));
    let worker = stack.spawn_worker_with_env(&[
        ("DATABASE_URL", via_proxy),
        ("RELAY_ENABLED", "false".to_owned()),
        ("CONSUMER_BACKOFF_MS", "100,200".to_owned()),
        ("CONSUMER_MAX_DELIVER", "3".to_owned()),
        ("DB_ACQUIRE_TIMEOUT_MS", "300".to_owned()),
    ]);
    let first = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(first, "provisioned", PATIENCE).await;

    postgres.cut();
    let ids = register_many(&stack, 10).await;
    // Far longer than 3 deliveries 100-200 ms apart, and than the dead letter's own retries.
    tokio::time::sleep(Duration::from_secs(6)).await;
    postgres.restore().await;

    for id in &ids {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    assert_one_certificate_each(&stack, &ids).await;
    let dead_letters: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(dead_letters, 0, "an outage is not the messages' failure");
    assert!(stack
        .worker_log(worker)
        .contains("Postgres does not answer; holding"));
    stack.assert_read_model_matches_events().await;
    relay.abort();
    stack.delete_stream().await;
}

/// A projector batch that takes longer than the ack wait (here a slow row write: 1.2 s, twice
/// for an upsert that updates, against a 1 s ack wait) keeps its messages, and those waiting
/// behind it, with in-progress acks: none is delivered again.
#[tokio::test]
async fn a_slow_projector_batch_is_not_delivered_again() {
    let mut stack = Stack::start().await;
    let serial = unique_serial();
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.serial_number = '{serial}' THEN PERFORM pg_sleep(1.2); END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER slow_row BEFORE INSERT OR UPDATE ON device_view
             FOR EACH ROW EXECUTE FUNCTION slow_row();"
    ))
    .execute(&stack.pool)
    .await
    .unwrap();
    stack.spawn_worker_with_env(&[("CONSUMER_BACKOFF_MS", "1000".to_owned())]);
    let id = stack.register(&registration(&serial)).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;

    let js = async_nats::jetstream::new(stack.nats_client().await);
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream("projector-device_view", &stack.stream)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        info.delivered.consumer_sequence, info.delivered.stream_sequence,
        "every message delivered once: {:?}",
        info.delivered
    );
    stack.delete_stream().await;
}
