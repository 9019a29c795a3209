//! Past its bounds on work in flight the api sheds load at once, 503 problem+json `overloaded`
//! with `Retry-After`, instead of queueing: commands past `COMMAND_MAX_IN_FLIGHT`, any request
//! (health and metrics aside) past `REQUEST_MAX_IN_FLIGHT`; a shed request did nothing, and
//! once the work in flight completes new requests are served again.
//!
//! Commands are held in flight for real: a transaction of the test's own locks the `events`
//! table (`EXCLUSIVE`: reads go on, appends wait), so admitted commands wait in Postgres at
//! their append until the test commits.

use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::helpers::*;

/// Holds every append to `events` until dropped or committed.
async fn lock_appends(database_url: &str) -> PgConnection {
    let mut locker = PgConnection::connect(database_url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

/// Waits until `n` sessions wait for a lock: the commands are in flight, held at their append.
async fn until_appends_wait(pool: &PgPool, n: i64) {
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} appends never waited for the lock");
}

async fn assert_overloaded(response: reqwest::Response, bound: &str) {
    assert_eq!(response.headers()["retry-after"], "1");
    let problem = assert_problem(response, 503, "overloaded").await;
    assert!(
        problem["detail"].as_str().unwrap().contains(bound),
        "{problem}"
    );
}

#[tokio::test]
async fn commands_past_the_in_flight_bound_are_shed_at_once_and_accepted_again_once_it_frees() {
    let app = spawn_app_with(|config| config.command_max_in_flight = 2).await;
    let device = app.registered_device().await;
    let (first, second) = (
        registration(&unique_serial()),
        registration(&unique_serial()),
    );

    let mut locker = lock_appends(&app.database_url).await;
    let held = async {
        tokio::join!(
            app.register("held-1", &first),
            app.register("held-2", &second)
        )
    };
    let excess = async {
        until_appends_wait(&app.pool, 2).await;
        let shed_registration = registration(&unique_serial());
        // Every command route is bounded, and each is answered while the two still wait.
        assert_overloaded(app.register("shed", &shed_registration).await, "commands").await;
        assert_overloaded(app.renew(device, &new_key()).await, "commands").await;
        let revoke = app
            .post(
                &format!("/v1/devices/{device}/certificate:revoke"),
                &app.writer(),
                Some(&new_key()),
                &json!({"reason": "keyCompromise"}),
            )
            .await;
        assert_overloaded(revoke, "commands").await;
        assert_overloaded(
            app.decommission(device, &app.writer(), &new_key()).await,
            "commands",
        )
        .await;
        // Reads are not commands: still served.
        let read = app
            .client
            .get(app.url(&format!("/v1/devices/{}", Uuid::new_v4())))
            .bearer_auth(app.writer())
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 404);
        sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
        shed_registration
    };
    let ((first, second), shed_registration) = tokio::join!(held, excess);
    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 202);

    // The shed command did nothing: its key is unused, and it is accepted now, not replayed.
    let retried = app.register("shed", &shed_registration).await;
    assert_eq!(retried.status(), 202);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.count_events("DeviceRegistered").await, 4);
}

#[tokio::test]
async fn any_request_past_the_process_bound_is_shed_while_health_is_still_answered() {
    let app = spawn_app_with(|config| config.request_max_in_flight = 2).await;
    let device = app.registered_device().await;
    project_device(&app.pool, device).await;
    let read = || {
        app.client
            .get(app.url(&format!("/v1/devices/{device}")))
            .bearer_auth(app.writer())
            .send()
    };

    let (first, second, third) = (
        registration(&unique_serial()),
        registration(&unique_serial()),
        registration(&unique_serial()),
    );

    let mut locker = lock_appends(&app.database_url).await;
    let held = async {
        tokio::join!(
            app.register("held-1", &first),
            app.register("held-2", &second)
        )
    };
    let excess = async {
        until_appends_wait(&app.pool, 2).await;
        assert_overloaded(read().await.unwrap(), "requests").await;
        assert_overloaded(app.register("shed", &third).await, "requests").await;
        for health in ["/livez", "/readyz"] {
            let response = app.client.get(app.url(health)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{health}");
        }
        sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
    };
    let ((first, second), ()) = tokio::join!(held, excess);
    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 202);

    assert_eq!(read().await.unwrap().status(), 200);
}
