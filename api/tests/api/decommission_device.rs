use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn decommissioning_a_device_is_accepted_once() {
    let app = spawn_app().await;
    let id = app.registered_device().await;

    let response = app.decommission(id, &app.writer(), &new_key()).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "decommissioned");
    assert_eq!(body["version"], 2);

    let again = app.decommission(id, &app.writer(), &new_key()).await;
    assert_problem(again, 409, "device-decommissioned").await;
    assert_eq!(
        app.event_types(id).await,
        ["DeviceRegistered", "DeviceDecommissioned"]
    );
}

#[tokio::test]
async fn another_tenants_device_is_indistinguishable_from_a_missing_one() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    let intruder = app.token(OTHER_TENANT, "devices:write devices:read");

    let theirs = assert_problem(
        app.decommission(id, &intruder, &new_key()).await,
        404,
        "not-found",
    )
    .await;
    let missing = assert_problem(
        app.decommission(Uuid::new_v4(), &intruder, &new_key())
            .await,
        404,
        "not-found",
    )
    .await;

    assert_eq!(theirs["detail"], missing["detail"]);
    assert_eq!(app.event_types(id).await, ["DeviceRegistered"]);
}

#[tokio::test]
async fn a_blank_reason_or_a_bad_id_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    let blank = app
        .post(
            &format!("/v1/devices/{id}/decommission"),
            &app.writer(),
            Some("k"),
            &serde_json::json!({"reason": "  "}),
        )
        .await;
    assert_eq!(
        assert_problem(blank, 400, "invalid-field").await["field"],
        "reason"
    );

    let bad_id = app
        .post(
            "/v1/devices/not-a-uuid/decommission",
            &app.writer(),
            Some("k"),
            &serde_json::json!({"reason": "x"}),
        )
        .await;
    assert_eq!(
        assert_problem(bad_id, 400, "invalid-field").await["field"],
        "id"
    );
}
