//! Operators' dead letters, end to end: a registration whose outcome cannot be recorded
//! (a fault injected in Postgres) fails past max_deliver and becomes a dead letter; once the
//! fault is gone, a retry provisions the device exactly once; a discarded letter never comes
//! back.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack};

const PATIENCE: Duration = Duration::from_secs(60);

const INJECT_FAULT: &str = "
CREATE FUNCTION refuse_certificates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_type = 'CertificateIssued' THEN
        RAISE EXCEPTION 'injected fault: certificates cannot be recorded';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_certificates BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_certificates();";

const REMOVE_FAULT: &str =
    "DROP TRIGGER refuse_certificates ON events; DROP FUNCTION refuse_certificates();";

async fn dead_letters(stack: &Stack, admin: &str, query: &str) -> Vec<Value> {
    let response = stack
        .get(&format!("/admin/dead-letters{query}"), admin)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["dead_letters"].as_array().unwrap().clone()
}

async fn certificates_issued(stack: &Stack, id: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'CertificateIssued'",
    )
    .bind(id.to_string())
    .fetch_one(&stack.pool)
    .await
    .unwrap()
}

async fn admin_post(stack: &Stack, path: &str, admin: &str) -> reqwest::Response {
    stack
        .client
        .post(stack.url(path))
        .bearer_auth(admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_letter_retried_after_the_fault_is_gone_provisions_the_device_once() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let admin = stack.operator_token("admin");
    sqlx::raw_sql(INJECT_FAULT)
        .execute(&stack.pool)
        .await
        .unwrap();
    let failing = stack.register(&registration(&unique_serial())).await;
    let also_failing = stack.register(&registration(&unique_serial())).await;

    // Three deliveries (CONSUMER_MAX_DELIVER in the test stack), then a dead letter each.
    let deadline = Instant::now() + PATIENCE;
    let letters = loop {
        let letters = dead_letters(
            &stack,
            &admin,
            "?consumer=provisioner-registrations&error=injected",
        )
        .await;
        if letters.len() == 2 {
            break letters;
        }
        assert!(
            Instant::now() < deadline,
            "dead letters: {letters:?}\n{}",
            stack.worker_log(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let letter_of = |device: Uuid| {
        letters
            .iter()
            .find(|l| {
                serde_json::from_str::<Value>(l["payload"].as_str().unwrap()).unwrap()["subject"]
                    == device.to_string()
            })
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (to_retry, to_discard) = (letter_of(failing), letter_of(also_failing));
    for letter in &letters {
        assert_eq!(letter["state"], "dead");
        assert_eq!(letter["deliveries"], 3);
        assert_eq!(letter["tenant"], "acme");
    }
    assert!(dead_letters(&stack, &admin, "?tenant=globex")
        .await
        .is_empty());
    assert_eq!(certificates_issued(&stack, failing).await, 0);

    sqlx::raw_sql(REMOVE_FAULT)
        .execute(&stack.pool)
        .await
        .unwrap();
    let discarded = admin_post(
        &stack,
        &format!("/admin/dead-letters/{to_discard}/discard"),
        &admin,
    )
    .await;
    assert_eq!(discarded.status(), 200);
    let retried = admin_post(
        &stack,
        &format!("/admin/dead-letters/{to_retry}/retry"),
        &admin,
    )
    .await;
    assert_eq!(retried.status(), 202);
    let again = admin_post(
        &stack,
        &format!("/admin/dead-letters/{to_retry}/retry"),
        &admin,
    )
    .await;
    assert_eq!(again.status(), 409, "a letter is retried once");

    stack
        .wait_for_status(failing, "provisioned", PATIENCE)
        .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = dead_letters(&stack, &admin, "?state=retried").await;
        if state.iter().any(|l| l["id"] == to_retry.as_str()) {
            assert_eq!(state[0]["resolved_by"], "test-operator");
            break;
        }
        assert!(Instant::now() < deadline, "the retry never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(certificates_issued(&stack, failing).await, 1);

    // The discarded one stays as it was: still pending, no certificate, never retried.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(certificates_issued(&stack, also_failing).await, 0);
    let discarded = dead_letters(&stack, &admin, "?state=discarded").await;
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0]["id"], to_discard.as_str());
    assert_eq!(discarded[0]["retries"], 0);
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, action FROM operator_actions ORDER BY at")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        [
            ("test-operator".to_owned(), "discard_dead_letter".to_owned()),
            ("test-operator".to_owned(), "retry_dead_letter".to_owned()),
        ]
    );
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}

/// A worker claimed a requested retry and died before recording its outcome: the letter is
/// not stuck in `retrying`; once the claim's lease expires a worker takes it up again.
#[tokio::test]
async fn a_retry_whose_worker_died_is_taken_up_again() {
    let mut stack = Stack::start().await;
    // A lease far shorter than the default, so that the test does not wait minutes.
    stack.spawn_worker_with_env(&[("DEAD_LETTER_RETRY_LEASE_SECONDS", "1".to_owned())]);
    let device = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(device, "provisioned", PATIENCE).await;
    let feed: Value = stack
        .get("/v1/events?limit=10", &stack.reader())
        .await
        .json()
        .await
        .unwrap();
    let registered = feed["events"][0].clone();

    // Its retry was claimed an hour ago by a worker that is gone.
    let letter = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO dead_letters (id, consumer, event_id, subject, stream_sequence, tenant,
                                   deliveries, error, payload, state, retries, updated_at)
         VALUES ($1, 'projector-device_view', $2, 'events.acme.device.DeviceRegistered', 1,
                 'acme', 3, 'an old failure', $3, 'retrying', 1, now() - interval '1 hour')",
    )
    .bind(letter)
    .bind(Uuid::parse_str(registered["id"].as_str().unwrap()).unwrap())
    .bind(registered.to_string())
    .execute(&stack.pool)
    .await
    .unwrap();

    let deadline = Instant::now() + PATIENCE;
    loop {
        let (state, retries): (String, i32) =
            sqlx::query_as("SELECT state, retries FROM dead_letters WHERE id = $1")
                .bind(letter)
                .fetch_one(&stack.pool)
                .await
                .unwrap();
        if state == "retried" {
            assert_eq!(retries, 2, "claimed once more");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {state} after its claim expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.delete_stream().await;
}
