use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn registering_answers_202_with_location_and_the_version_to_wait_for() {
    let app = spawn_app().await;
    let serial = unique_serial();

    let response = app.register(&new_key(), &registration(&serial)).await;

    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(response.headers().get("idempotent-replayed").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["version"], 1);
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/devices/{id}"));
    assert_eq!(
        app.event_types(id.parse().unwrap()).await,
        ["DeviceRegistered"]
    );
}

#[tokio::test]
async fn the_registration_event_carries_who_asked_and_under_which_request() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/devices"))
        .bearer_auth(app.writer())
        .header("Idempotency-Key", "k-meta")
        .header("x-request-id", "req-123")
        .json(&registration(&unique_serial()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-request-id"], "req-123");

    let (metadata, tenant): (Value, String) = sqlx::query_as("SELECT metadata, tenant FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tenant, TENANT);
    assert_eq!(metadata["actor"], "test-client");
    assert_eq!(metadata["request_id"], "req-123");
    assert_eq!(metadata["idempotency_key"], "k-meta");
}

#[tokio::test]
async fn the_same_serial_under_another_key_is_a_conflict() {
    let app = spawn_app().await;
    let serial = unique_serial();
    assert_eq!(
        app.register(&new_key(), &registration(&serial))
            .await
            .status(),
        202
    );

    let response = app.register(&new_key(), &registration(&serial)).await;

    assert_problem(response, 409, "device-already-registered").await;
    assert_eq!(app.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn an_already_registered_serial_names_the_registered_device() {
    let app = spawn_app().await;
    let serial = unique_serial();
    let registered: Value = app
        .register(&new_key(), &registration(&serial))
        .await
        .json()
        .await
        .unwrap();
    let id = registered["id"].as_str().unwrap();

    let response = app.register(&new_key(), &registration(&serial)).await;

    let problem = assert_problem(response, 409, "device-already-registered").await;
    assert_eq!(problem["device_id"], id, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains(id),
        "{problem}"
    );
}

#[tokio::test]
async fn the_same_serial_in_another_tenant_is_another_device() {
    let app = spawn_app().await;
    let serial = unique_serial();
    let body = registration(&serial);
    let ours: Value = app.register("k", &body).await.json().await.unwrap();

    let theirs = app
        .post(
            "/v1/devices",
            &app.token(OTHER_TENANT, "devices:write"),
            Some("k"),
            &body,
        )
        .await;

    assert_eq!(theirs.status(), 202, "keys are scoped by tenant too");
    let theirs: Value = theirs.json().await.unwrap();
    assert_ne!(ours["id"], theirs["id"]);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn_app().await;
    let cases = [
        ("serial_number", serde_json::json!("has space")),
        ("model", serde_json::json!("")),
        (
            "csr",
            serde_json::json!(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
            ),
        ),
        ("labels", serde_json::json!({"Bad Key": "x"})),
    ];
    for (field, value) in cases {
        let mut body = registration(&unique_serial());
        body[field] = value;
        let problem =
            assert_problem(app.register(&new_key(), &body).await, 400, "invalid-field").await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_eq!(app.count_events("DeviceRegistered").await, 0);
}

#[tokio::test]
async fn missing_and_unknown_fields_are_named() {
    let app = spawn_app().await;
    let mut body = registration(&unique_serial());
    body.as_object_mut().unwrap().remove("csr");
    let problem = assert_problem(app.register(&new_key(), &body).await, 400, "invalid-field").await;
    assert_eq!(problem["field"], "csr");

    let mut body = registration(&unique_serial());
    body["colour"] = "red".into();
    let problem = assert_problem(app.register(&new_key(), &body).await, 400, "invalid-field").await;
    assert_eq!(problem["field"], "colour");

    let mut body = registration(&unique_serial());
    body["labels"] = serde_json::json!({"site": 7});
    let problem = assert_problem(app.register(&new_key(), &body).await, 400, "invalid-field").await;
    assert_eq!(problem["field"], "labels.site");
}
