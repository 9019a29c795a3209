//! A token's life bounds what it holds open: a live stream of `GET /v1/events` (curl -N as
//! the client) ends, cleanly, once its token is no longer accepted (`exp`, plus the clock-skew
//! leeway every request gets), and a long-poll (`wait`) never waits past it; a plain read
//! with the token is then refused.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::auth::{Claims, JwtKeys, LEEWAY_SECONDS};
use serde_json::Value;

use crate::helpers::{
    limits, new_key, project_device, registration, spawn_app, spawn_app_with_limits, unique_serial,
    TestApp, JWT_SECRET, TENANT,
};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A token of the tenant with `scope`, whose `exp` is `exp` (seconds since the epoch).
fn token_expiring_at(scope: &str, exp: u64) -> String {
    JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue_claims(&Claims {
        sub: "analyst".into(),
        tenant: Some(TENANT.into()),
        role: None,
        scope: scope.into(),
        exp,
        nbf: None,
    })
}

async fn register(app: &TestApp) -> String {
    let serial = unique_serial();
    let response = app
        .post(
            "/v1/devices",
            &app.writer(),
            Some(&new_key()),
            &registration(&serial),
        )
        .await;
    assert_eq!(response.status(), 202);
    serial
}

#[tokio::test]
async fn a_live_stream_ends_cleanly_when_its_token_expires() {
    let app = spawn_app().await;
    let first = register(&app).await;
    // Expires in a few seconds; accepted until `exp` + the leeway.
    let exp = unix_now() as u64 + 3;
    let accepted_until = (exp + LEEWAY_SECONDS) as f64;
    let token = token_expiring_at("events:read", exp);
    let mut curl = Command::new("curl")
        .args(["-sN", "-H", "Accept: text/event-stream", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(app.url("/v1/events"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let stdout = curl.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let data = |seen: &[String]| -> Vec<Value> {
        seen.iter()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    };
    // The stream is open and delivers, before and after `exp` (the leeway).
    let deadline = Instant::now() + Duration::from_secs(20);
    while data(&seen).is_empty() {
        assert!(Instant::now() < deadline, "nothing streamed: {seen:?}");
        seen.extend(lines.try_iter());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(data(&seen)[0]["data"]["serial_number"], first.as_str());
    while unix_now() < exp as f64 + 1.0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = register(&app).await;

    // It ends once the token would be refused: not before, and (generously) not long after.
    let ended = loop {
        if let Some(status) = curl.try_wait().unwrap() {
            break status;
        }
        assert!(
            unix_now() < accepted_until + 60.0,
            "the stream outlived its token by a minute; it streamed: {seen:?}"
        );
        seen.extend(lines.try_iter());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ended_at = unix_now();
    // Let the reader thread drain what curl printed last.
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.extend(lines.try_iter());
    assert!(
        ended_at >= accepted_until - 1.0,
        "ended {:.1} s before the token stopped being accepted",
        accepted_until - ended_at
    );
    assert!(ended.success(), "the stream ended cleanly: {ended:?}");
    let serials: Vec<Value> = data(&seen)
        .iter()
        .map(|e| e["data"]["serial_number"].clone())
        .collect();
    assert_eq!(serials, [first.as_str(), second.as_str()], "{seen:?}");
    assert!(
        seen.iter().any(|l| l == ": token expired"),
        "the last words say why: {seen:?}"
    );

    // Consistent with every other request: the token is refused now.
    let plain = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
}

/// The app with a request timeout longer than any wait: only the token ends one.
async fn app_where_only_the_token_ends_a_wait() -> TestApp {
    spawn_app_with_limits(api::http::HttpLimits {
        request_timeout: Duration::from_secs(60),
        ..limits()
    })
    .await
}

/// A token with `scope` past its `exp` but within the leeway: accepted for about 4 more
/// seconds; and when it stops being accepted (Unix time).
fn token_accepted_for_4_more_seconds(scope: &str) -> (String, f64) {
    let exp = unix_now() as u64 - LEEWAY_SECONDS + 4;
    (token_expiring_at(scope, exp), (exp + LEEWAY_SECONDS) as f64)
}

/// A wait answered at `answered_at` ended when its token stopped being accepted: not
/// before, and not long after (a generous bound: the machine is shared).
fn assert_answered_when_the_token_stopped(answered_at: f64, accepted_until: f64) {
    assert!(
        answered_at >= accepted_until - 1.0,
        "answered {:.1} s before the token stopped being accepted",
        accepted_until - answered_at
    );
    assert!(
        answered_at < accepted_until + 15.0,
        "waited {:.1} s past the token",
        answered_at - accepted_until
    );
}

#[tokio::test]
async fn a_long_poll_never_waits_past_its_token() {
    let app = app_where_only_the_token_ends_a_wait().await;
    register(&app).await;
    let page: Value = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(app.token(TENANT, "events:read"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (token, accepted_until) = token_accepted_for_4_more_seconds("events:read");

    // Nothing new comes: a 25 s wait would outlive the token; it ends when the token does.
    let response = app
        .client
        .get(app.url(&format!("/v1/events?after={cursor}&wait=25")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let answered_at = unix_now();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["events"], serde_json::json!([]), "{page}");
    assert_eq!(page["next_cursor"], cursor.as_str());
    assert_answered_when_the_token_stopped(answered_at, accepted_until);
    let plain = app
        .client
        .get(app.url(&format!("/v1/events?after={cursor}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
}

#[tokio::test]
async fn a_device_long_poll_never_waits_past_its_token() {
    let app = app_where_only_the_token_ends_a_wait().await;
    let id = app.registered_device().await;
    project_device(&app.pool, id).await;
    let (token, accepted_until) = token_accepted_for_4_more_seconds("devices:read");
    // Version 5 never comes: the wait ends when the token does, with what there is.
    let response = app
        .client
        .get(app.url(&format!("/v1/devices/{id}?min_version=5&wait=25")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let answered_at = unix_now();
    assert_eq!(response.status(), 200);
    assert_answered_when_the_token_stopped(answered_at, accepted_until);
}

#[tokio::test]
async fn a_long_poll_may_wait_longer_than_the_request_timeout() {
    // As device long-polls do: a wait the client asked for is not cut short (504) by it.
    let app = spawn_app_with_limits(api::http::HttpLimits {
        request_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let started = Instant::now();
    let response = app
        .client
        .get(app.url("/v1/events?wait=3"))
        .bearer_auth(app.token(TENANT, "events:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(2900));
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["events"], serde_json::json!([]), "{page}");
}
