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
async fn admin_routes_are_for_platform_operators_only() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/admin/projections"))
        .bearer_auth(app.writer())
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "operators-only").await;
    let response = app
        .post(
            "/admin/projections/device_view/rebuild",
            &app.writer(),
            None,
            &json!({}),
        )
        .await;
    assert_problem(response, 403, "operators-only").await;
}

#[tokio::test]
async fn a_rebuild_fills_the_read_model_from_history_and_status_follows_it() {
    // No worker here: the live projector never ran, so only the rebuild can fill device_view.
    let app = spawn_app().await;
    let admin = app.operator_token("admin");
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
    assert_eq!(started["requested_by"], "test-operator");

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
    let admin = app.operator_token("admin");
    let unknown = app
        .post(
            "/admin/projections/no_such_view/rebuild",
            &admin,
            None,
            &json!({}),
        )
        .await;
    let unknown = assert_problem(unknown, 404, "not-found").await;
    // Every registered read model is named, in registration order.
    let known: Vec<&str> = projections::registered().map(|p| p.name()).collect();
    assert_eq!(&known[..2], ["device_view", "device_stats"]);
    assert_eq!(
        unknown["detail"],
        format!(
            "no projection named \"no_such_view\"; known: {}",
            known.join(", ")
        )
    );
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

/// A rebuild runs in the api process that was asked for it. When that process dies (SIGKILL)
/// or stops (SIGTERM) mid-rebuild, the rebuild does not show as running for ever: it shows as
/// failed, interrupted, and starting it again resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_whose_api_stopped_shows_as_interrupted_and_resumes() {
    use app::{ProjectionOperations, ProjectionState, RebuildState};

    for stop in ["SIGKILL", "SIGTERM"] {
        let (url, pool) = migrated_database().await;
        // An index that takes a while to build (0.1 s a row), so the rebuild is still running
        // when its process goes away.
        testkit::slow_device_view_index(&pool, 0.1).await;
        let mut api = ApiProcess::start(
            &url,
            &[
                ("NATS_URL", testkit::nats_url()),
                ("SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
            ],
        )
        .await;
        let keys = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes());
        let writer = keys.issue("client", TENANT, "devices:write", Duration::from_secs(600));
        let admin = keys.issue_operator("ops-1", "admin", Duration::from_secs(600));
        let client = reqwest::Client::new();
        for _ in 0..30 {
            let response = client
                .post(format!("{}/v1/devices", api.base))
                .bearer_auth(&writer)
                .header("Idempotency-Key", new_key())
                .json(&registration(&unique_serial()))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
        }
        let started = client
            .post(format!(
                "{}/admin/projections/device_view/rebuild",
                api.base
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if testkit::slow_index_build_running(&pool).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rebuild never reached its index build"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        if stop == "SIGKILL" {
            api.kill();
        } else {
            api.stop();
        }

        // Its last statement may run on in Postgres for up to a second.
        let operations = projections::PostgresProjectionOperations::new(pool.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        let device_view = loop {
            let status = operations.status().await.unwrap();
            let device_view = status
                .into_iter()
                .find(|s| s.name == "device_view")
                .unwrap();
            if device_view.state != ProjectionState::Rebuilding {
                break device_view;
            }
            assert!(
                Instant::now() < deadline,
                "{stop}: still shown as rebuilding"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let rebuild = device_view.rebuild.as_ref().unwrap();
        assert_eq!(rebuild.state, RebuildState::Failed, "{stop}");
        assert!(
            rebuild
                .last_error
                .as_deref()
                .unwrap_or("")
                .contains("interrupted"),
            "{stop}: {rebuild:?}"
        );
        let resumed = projections::registered_named(projections::DEVICE_VIEW)
            .unwrap()
            .rebuild(pool.clone())
            .run("ops-1", |_| {})
            .await
            .unwrap();
        assert_eq!(
            resumed,
            projections::RebuildOutcome::Completed { events: 30 },
            "{stop}"
        );
    }
}
