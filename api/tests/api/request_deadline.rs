//! The request deadline bounds every request, extended only by the wait a long-poll asked
//! for (a stalled request getting its 504 is in dependency_failures.rs).

use std::time::{Duration, Instant};

use api::http::HttpLimits;
use uuid::Uuid;

use crate::helpers::{limits, spawn_app_with_limits};

#[tokio::test]
async fn a_long_poll_may_wait_longer_than_the_request_timeout() {
    let app = spawn_app_with_limits(HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..limits()
    })
    .await;
    let reader = app.token("acme", "devices:read");
    let started = Instant::now();
    let response = app
        .client
        .get(app.url(&format!(
            "/v1/devices/{}?min_version=1&wait=1",
            Uuid::new_v4()
        )))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    // The device never appears: answered with what there is (nothing) once the wait is over,
    // not cut off with a 504 after 300 ms.
    assert_eq!(response.status(), 404);
    assert!(started.elapsed() >= Duration::from_millis(950));
}
