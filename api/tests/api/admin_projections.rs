//! Operators' read-model routes: scope `admin`, status, a rebuild that fills the read model
//! from the event store's history, and the problems for what cannot be done.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn status(app: &TestApp, admin: &str) -> Value {
    let response = app
        .client
        .get(app.url("/admin/projections"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["projections"][0].clone()
}

#[tokio::test]
async fn admin_routes_need_the_admin_scope() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/admin/projections"))
        .bearer_auth(app.writer())
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
    let response = app
        .post(
            "/admin/projections/device_view/rebuild",
            &app.writer(),
            None,
            &json!({}),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn a_rebuild_fills_the_read_model_from_history_and_status_follows_it() {
    // No worker here: the live projector never ran, so only the rebuild can fill device_view.
    let app = spawn_app().await;
    let admin = app.token("ops", "admin");
    let reader = app.token(TENANT, "devices:read");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.registered_device().await);
    }
    let before = status(&app, &admin).await;
    assert_eq!(before["name"], "device_view");
    assert_eq!(before["state"], "live");
    assert_eq!(before["lag_events"], 3);
    assert!(before["checkpoint"].is_null());

    let started = app
        .post(
            "/admin/projections/device_view/rebuild",
            &admin,
            None,
            &json!({}),
        )
        .await;
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["requested_by"], "test-client");

    let deadline = Instant::now() + Duration::from_secs(20);
    let finished = loop {
        let current = status(&app, &admin).await;
        if current["rebuild"]["state"] == "completed" {
            break current;
        }
        assert!(
            Instant::now() < deadline,
            "rebuild did not finish: {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished["rebuild"]["events_done"], 3);
    assert_eq!(finished["rebuild"]["events_total"], 3);
    assert_eq!(finished["state"], "live");
    for id in ids {
        let device = app
            .client
            .get(app.url(&format!("/v1/devices/{id}")))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap();
        assert_eq!(device.status(), 200);
        let device: Value = device.json().await.unwrap();
        assert_eq!(device["status"], "pending");
        assert_eq!(device["version"], 1);
    }
}

#[tokio::test]
async fn what_cannot_be_done_is_a_clear_problem() {
    let app = spawn_app().await;
    let admin = app.token("ops", "admin");
    let unknown = app
        .post(
            "/admin/projections/no_such_view/rebuild",
            &admin,
            None,
            &json!({}),
        )
        .await;
    assert_problem(unknown, 404, "not-found").await;
    let nothing_to_cancel = app
        .post(
            "/admin/projections/device_view/rebuild:cancel",
            &admin,
            None,
            &json!({}),
        )
        .await;
    assert_problem(nothing_to_cancel, 409, "rebuild-not-running").await;
}
