//! SIGTERM: the worker stops pulling, lets the messages in hand finish and acks them within
//! the grace period, so nothing it already worked on is delivered (and signed) again.

use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::helpers::{registration, unique_serial, Stack};
use crate::provisioning::PATIENCE;

/// Makes appending a certificate take `seconds` (a slow database).
async fn slow_certificate_appends(stack: &Stack, seconds: f64) {
    sqlx::query(&format!(
        "CREATE FUNCTION slow_certificates() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.event_type = 'CertificateIssued' THEN PERFORM pg_sleep({seconds}); END IF;
           RETURN NEW;
         END $$"
    ))
    .execute(&stack.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER slow_certificates BEFORE INSERT ON events
         FOR EACH ROW EXECUTE FUNCTION slow_certificates()",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
}

async fn wait_until_an_append_is_sleeping(stack: &Stack) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sleeping: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        if sleeping > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no append reached the database");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn on_sigterm_the_worker_finishes_and_acks_the_messages_in_hand() {
    let mut stack = Stack::start().await;
    slow_certificate_appends(&stack, 1.5).await;
    let worker = stack.spawn_worker_with_env(&[("SHUTDOWN_GRACE_SECONDS", "10".to_owned())]);
    let id = stack.register(&registration(&unique_serial())).await;
    wait_until_an_append_is_sleeping(&stack).await;

    stack.stop_worker(worker, Duration::from_secs(20)).await;

    let log = stack.worker_log(worker);
    assert!(log.contains("certificate request settled"), "{log}");
    assert!(log.contains("worker stopped"), "{log}");
    assert!(
        !log.contains("did not finish within the grace period"),
        "{log}"
    );
    assert_eq!(stack.count_events("CertificateIssued").await, 1);
    // Acked: nothing is waiting to be delivered again.
    let js = jetstream::new(stack.nats_client().await);
    let mut consumer: jetstream::consumer::PullConsumer = js
        .get_consumer_from_stream("provisioner-registrations", &stack.stream)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        (
            info.num_ack_pending,
            info.num_pending,
            info.ack_floor.stream_sequence
        ),
        (0, 0, 1),
        "the registration's message is acknowledged"
    );
    let device = stack
        .get(&format!("/v1/devices/{id}"), &stack.reader())
        .await;
    assert_eq!(device.status(), 200);
    stack.delete_stream().await;
}
