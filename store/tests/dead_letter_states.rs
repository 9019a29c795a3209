//! A dead letter's state only moves the ways operators and retries expect: a message failing
//! again never brings back a discarded letter, and never takes its outcome from a retry in
//! progress.

use app::{DeadLetterFilter, DeadLetterOperations, DeadLetterState};
use std::time::Duration;
use store::{DeadLetter, PostgresDeadLetters};

use uuid::Uuid;

fn letter(event_id: Uuid, error: &str) -> DeadLetter {
    DeadLetter {
        consumer: "projector-device_view".to_owned(),
        event_id,
        subject: "events.acme.device.DeviceRegistered".to_owned(),
        stream_sequence: 7,
        tenant: Some("acme".to_owned()),
        deliveries: 3,
        error: error.to_owned(),
        payload: "{}".to_owned(),
    }
}

async fn the_letter(letters: &PostgresDeadLetters) -> app::DeadLetterView {
    let all = letters
        .list(&DeadLetterFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "one letter per (consumer, event)");
    all.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_discarded_letter_stays_discarded_when_its_message_fails_again() {
    let (_, pool) = testkit::migrated_database().await;
    let letters = PostgresDeadLetters::new(pool);
    let event = Uuid::new_v4();
    letters
        .record(&letter(event, "first failure"))
        .await
        .unwrap();
    let id = the_letter(&letters).await.id;
    letters.discard(id, "operator").await.unwrap();

    // E.g. after `worker replay`, the same message fails again.
    letters
        .record(&letter(event, "second failure"))
        .await
        .unwrap();

    let after = the_letter(&letters).await;
    assert_eq!(after.state, DeadLetterState::Discarded);
    assert_eq!(after.deliveries, 6, "the new deliveries are counted");
}

#[tokio::test]
async fn a_retry_in_progress_keeps_its_outcome_when_the_message_fails_again_meanwhile() {
    let (_, pool) = testkit::migrated_database().await;
    let letters = PostgresDeadLetters::new(pool);
    let event = Uuid::new_v4();
    letters
        .record(&letter(event, "first failure"))
        .await
        .unwrap();
    let id = the_letter(&letters).await.id;
    letters.retry(id, "operator").await.unwrap();
    let claimed = letters
        .claim_retries(&["projector-device_view"], 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    letters
        .record(&letter(event, "failed on the stream meanwhile"))
        .await
        .unwrap();
    assert_eq!(the_letter(&letters).await.state, DeadLetterState::Retrying);
    assert!(letters.finish_retry(&claimed[0], Ok(())).await.unwrap());

    assert_eq!(the_letter(&letters).await.state, DeadLetterState::Retried);
}

#[tokio::test]
async fn an_expired_claim_is_taken_up_again_and_only_the_new_holder_records_the_outcome() {
    let (_, pool) = testkit::migrated_database().await;
    let letters = PostgresDeadLetters::new(pool);
    letters
        .record(&letter(Uuid::new_v4(), "failure"))
        .await
        .unwrap();
    let id = the_letter(&letters).await.id;
    letters.retry(id, "operator").await.unwrap();
    let consumers = ["projector-device_view"];
    let lease = Duration::from_millis(200);
    let first = letters.claim_retries(&consumers, 10, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        letters
            .claim_retries(&consumers, 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "held by the first claim"
    );

    // The first worker dies without recording anything; its claim expires.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = letters.claim_retries(&consumers, 10, lease).await.unwrap();
    assert_eq!(second.len(), 1, "taken up again");
    assert!(
        !letters.finish_retry(&first[0], Ok(())).await.unwrap(),
        "no longer held"
    );
    assert!(letters.finish_retry(&second[0], Ok(())).await.unwrap());
    let after = the_letter(&letters).await;
    assert_eq!((after.state, after.retries), (DeadLetterState::Retried, 2));
}
