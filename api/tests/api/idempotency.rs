use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_original_response() {
    let app = spawn_app().await;
    let body = registration(&unique_serial());
    let first = app.register("key-1", &body).await;
    let first_location = first.headers()["location"].clone();
    let first_body: Value = first.json().await.unwrap();

    let retry = app.register("key-1", &body).await;

    assert_eq!(retry.status(), 202);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["location"], first_location);
    assert_eq!(retry.json::<Value>().await.unwrap(), first_body);
    assert_eq!(app.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn the_replay_is_the_original_outcome_even_after_the_device_moved_on() {
    let app = spawn_app().await;
    let body = registration(&unique_serial());
    let first: Value = app.register("key-1", &body).await.json().await.unwrap();
    let id = first["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.decommission(id, &app.writer(), "key-2").await.status(),
        202
    );

    let retry: Value = app.register("key-1", &body).await.json().await.unwrap();

    assert_eq!(
        retry, first,
        "status pending, version 1, as originally answered"
    );
}

#[tokio::test]
async fn key_formatting_and_body_formatting_do_not_matter() {
    let app = spawn_app().await;
    let body = registration(&unique_serial());
    assert_eq!(app.register("fmt-key", &body).await.status(), 202);

    // Same key unquoted, same body with other key order and whitespace.
    let reordered = format!(
        "{{ \"labels\": {}, \"csr\": {},\n \"model\": {}, \"serial_number\": {} }}",
        body["labels"], body["csr"], body["model"], body["serial_number"]
    );
    let retry = app
        .client
        .post(app.url("/v1/devices"))
        .bearer_auth(app.writer())
        .header("Idempotency-Key", "fmt-key")
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();

    assert_eq!(retry.status(), 202);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_with_422() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("key-1", &registration(&unique_serial()))
            .await
            .status(),
        202
    );

    let response = app.register("key-1", &registration(&unique_serial())).await;

    assert_problem(response, 422, "idempotency-key-reused").await;
    assert_eq!(app.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn keys_are_scoped_by_route() {
    let app = spawn_app().await;
    let a = app.registered_device().await;
    let b = app.registered_device().await;
    assert_eq!(
        app.decommission(a, &app.writer(), "same-key")
            .await
            .status(),
        202
    );

    let response = app.decommission(b, &app.writer(), "same-key").await;

    assert_eq!(
        response.status(),
        202,
        "another device's route is another scope"
    );
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.count_events("DeviceDecommissioned").await, 2);
}

#[tokio::test]
async fn a_missing_or_malformed_key_is_a_400_naming_the_header() {
    let app = spawn_app().await;
    let body = registration(&unique_serial());
    let missing = app.post("/v1/devices", &app.writer(), None, &body).await;
    let problem = assert_problem(missing, 400, "idempotency-key-missing").await;
    assert_eq!(problem["field"], "Idempotency-Key");

    for bad in [
        "k".repeat(256),
        "\"unterminated".to_owned(),
        "\"a\"b".to_owned(),
    ] {
        let response = app
            .client
            .post(app.url("/v1/devices"))
            .bearer_auth(app.writer())
            .header("Idempotency-Key", bad)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "idempotency-key-invalid").await;
    }
    let at_limit = app.register(&"k".repeat(255), &body).await;
    assert_eq!(at_limit.status(), 202);
}

#[tokio::test]
async fn concurrent_duplicates_execute_exactly_once() {
    let app = spawn_app().await;
    let body = registration(&unique_serial());

    let responses =
        futures::future::join_all((0..20).map(|_| app.register("race-key", &body))).await;

    let mut executed = 0;
    let mut bodies = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            202 => {
                if response.headers().get("idempotent-replayed").is_none() {
                    executed += 1;
                }
                bodies.push(response.json::<Value>().await.unwrap());
            }
            // Allowed by the contract: a conflict that says to retry.
            409 => {
                assert_problem(response, 409, "concurrent-modification").await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(executed, 1, "exactly one request executed the command");
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every 202 is the original response"
    );
    assert_eq!(app.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn concurrent_duplicates_of_a_non_creating_command_execute_once() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;

    let responses =
        futures::future::join_all((0..20).map(|_| app.renew_with_fixed_csr(id, "renew-race")))
            .await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&202));
    assert_eq!(app.count_events("CertificateRenewalRequested").await, 1);
}

impl TestApp {
    /// Renewal with one CSR per test process, so that concurrent duplicates share a body.
    async fn renew_with_fixed_csr(&self, id: uuid::Uuid, key: &str) -> reqwest::Response {
        static CSR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let csr = CSR.get_or_init(|| csr_for("renewed"));
        self.post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &self.writer(),
            Some(key),
            &serde_json::json!({ "csr": csr }),
        )
        .await
    }
}

#[tokio::test]
async fn a_retried_renewal_is_replayed_not_requested_again() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;
    let first = app.renew_with_fixed_csr(id, "renew-once").await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();

    let retry = app.renew_with_fixed_csr(id, "renew-once").await;

    assert_eq!(retry.status(), 202);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count_events("CertificateRenewalRequested").await, 1);
}

#[tokio::test]
async fn a_retried_renewal_is_replayed_even_with_a_single_attempt() {
    // COMMAND_MAX_ATTEMPTS=1: a replay must not depend on the retry budget.
    let app = spawn_app_with_retry(app::RetryPolicy {
        max_attempts: 1,
        ..app::RetryPolicy::default()
    })
    .await;
    let id = app.registered_device().await;
    app.provision(id).await;
    let first = app.renew_with_fixed_csr(id, "renew-once").await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();

    for _ in 0..3 {
        let retry = app.renew_with_fixed_csr(id, "renew-once").await;
        if retry.status() != 202 {
            panic!("{}: {}", retry.status(), retry.text().await.unwrap());
        }
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(retry.json::<Value>().await.unwrap(), first);
    }
    assert_eq!(app.count_events("CertificateRenewalRequested").await, 1);
}

#[tokio::test]
async fn concurrent_duplicates_with_a_single_attempt_are_all_answered_with_the_original() {
    let app = spawn_app_with_retry(app::RetryPolicy {
        max_attempts: 1,
        ..app::RetryPolicy::default()
    })
    .await;
    let id = app.registered_device().await;
    app.provision(id).await;

    let responses =
        futures::future::join_all((0..10).map(|_| app.renew_with_fixed_csr(id, "renew-race")))
            .await;

    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(
            response.status(),
            202,
            "a loser is a replay, not contention"
        );
        bodies.push(response.json::<Value>().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(app.count_events("CertificateRenewalRequested").await, 1);
}
