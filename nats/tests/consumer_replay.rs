//! `replay_consumer` from a commit-order position, on a real stream (the shared NATS server,
//! a stream of this test's own): the consumer starts at the first message after the position,
//! also when messages around it were deleted from the middle of the stream.

use std::time::Duration;

use app::CommitPosition;
use async_nats::jetstream;
use nats::{
    ensure_stream, headers, replay_consumer, ConsumerSettings, ReplayStart, StreamSettings,
};
use uuid::Uuid;

fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// The position of the event published as stream message `n` (1, 2, …).
fn position(n: u64) -> CommitPosition {
    CommitPosition {
        transaction_id: 1000 + n,
        position: n as i64,
    }
}

#[tokio::test]
async fn a_replay_after_a_position_starts_at_the_next_message_when_middle_ones_were_deleted() {
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let unique = Uuid::new_v4().simple();
    let settings = StreamSettings {
        name: format!("T_{unique}"),
        subject_prefix: format!("t{unique}"),
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(3600),
        replicas: 1,
    };
    let mut stream = ensure_stream(&js, &settings).await.unwrap();
    for n in 1..=10 {
        let mut map = async_nats::HeaderMap::new();
        map.insert(headers::MSG_ID, format!("event-{n}").as_str());
        // Message 3 is not the relay's: it carries no position.
        if n != 3 {
            map.insert(headers::POSITION, position(n).to_cursor().as_str());
        }
        js.publish_with_headers(
            settings.subject("acme", "DeviceRegistered"),
            map,
            "{}".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // Messages 5, 6 and 7 are gone from the middle (deleted, as an operator or a limit could).
    for sequence in [5, 6, 7] {
        assert!(stream.delete_message(sequence).await.unwrap());
    }

    let consumer_settings = ConsumerSettings {
        max_ack_pending: 100,
        max_deliver: 3,
        backoff: vec![Duration::from_secs(1)],
    };
    let mut first_after = Vec::new();
    for after in [0, 1, 2, 3, 4, 5, 6, 7, 8, 10] {
        let first = replay_consumer(
            &mut stream,
            "replayed",
            settings.all_subjects(),
            &consumer_settings,
            ReplayStart::After(position(after)),
        )
        .await
        .unwrap();
        first_after.push((after, first.unwrap()));
    }
    // The first message still in the stream whose event committed after the position, never
    // the one without a position (11: none yet, the consumer waits for the next one).
    assert_eq!(
        first_after,
        [
            (0, 1),
            (1, 2),
            (2, 4),
            (3, 4),
            (4, 8),
            (5, 8),
            (6, 8),
            (7, 8),
            (8, 9),
            (10, 11)
        ]
    );
    js.delete_stream(&settings.name).await.unwrap();
}
