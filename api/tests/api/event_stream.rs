//! Analysts tail the feed: `GET /v1/events?wait=S` answers as soon as the tenant's next event
//! commits (and empty when the wait ends); with `Accept: text/event-stream` (curl -N as the
//! client) events arrive as they are appended, in commit order, and a client that
//! reconnects with `Last-Event-ID` misses nothing and sees nothing twice; another tenant's
//! events never appear in either.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    new_key, registration, spawn_app, unique_serial, TestApp, OTHER_TENANT, TENANT,
};

fn reader(app: &TestApp, tenant: &str) -> String {
    app.token(tenant, "events:read")
}

async fn register_in(app: &TestApp, tenant: &str) -> String {
    let serial = unique_serial();
    let response = app
        .post(
            "/v1/devices",
            &app.token(tenant, "devices:write"),
            Some(&new_key()),
            &registration(&serial),
        )
        .await;
    assert_eq!(response.status(), 202);
    serial
}

async fn feed(app: &TestApp, query: &str) -> Value {
    app.client
        .get(app.url(&format!("/v1/events{query}")))
        .bearer_auth(reader(app, TENANT))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_waiting_read_answers_when_the_next_event_commits() {
    let app = spawn_app().await;
    register_in(&app, TENANT).await;
    let first = feed(&app, "").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(first["events"].as_array().unwrap().len(), 1);

    // Nothing new: the wait ends empty, with the same cursor.
    let started = Instant::now();
    let empty = feed(&app, &format!("?after={cursor}&wait=1")).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(empty["events"], serde_json::json!([]));
    assert_eq!(empty["next_cursor"], cursor.as_str());

    // Another tenant's event does not end the wait; this tenant's does, at once.
    let waiting = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/v1/events?after={cursor}&wait=20")),
            reader(&app, TENANT),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let page: Value = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    register_in(&app, OTHER_TENANT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let serial = register_in(&app, TENANT).await;
    let (page, waited) = waiting.await.unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["data"]["serial_number"], serial.as_str());
    assert!(
        waited < Duration::from_secs(5),
        "answered when the event committed: {waited:?}"
    );
}

/// `curl -N` reading the live stream; its lines arrive on a channel.
struct EventStream {
    curl: Child,
    lines: mpsc::Receiver<String>,
}

impl EventStream {
    fn open(app: &TestApp, tenant: &str, last_event_id: Option<&str>) -> Self {
        let mut command = Command::new("curl");
        command
            .args(["-sN", "-H", "Accept: text/event-stream", "-H"])
            .arg(format!("Authorization: Bearer {}", reader(app, tenant)));
        if let Some(id) = last_event_id {
            command.args(["-H", &format!("Last-Event-ID: {id}")]);
        }
        let mut curl = command
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
        Self { curl, lines }
    }

    /// The next `count` events: (id, type, envelope).
    async fn next(&self, count: usize) -> Vec<(String, String, Value)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        let (mut id, mut kind) = (String::new(), String::new());
        while events.len() < count {
            assert!(Instant::now() < deadline, "got only {events:?}");
            match self.lines.try_recv() {
                Ok(line) => {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        events.push((id.clone(), kind.clone(), serde_json::from_str(v).unwrap()));
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        events
    }

    /// Whatever else arrives within `within` (events only).
    async fn rest(&self, within: Duration) -> Vec<String> {
        tokio::time::sleep(within).await;
        self.lines
            .try_iter()
            .filter(|l| l.starts_with("data: "))
            .collect()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.curl.kill();
        let _ = self.curl.wait();
    }
}

#[tokio::test]
async fn a_live_stream_shows_events_as_they_commit_and_resumes_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let before = register_in(&app, TENANT).await;
    let stream = EventStream::open(&app, TENANT, None);
    // From the start: the event already there, then each one as it is appended.
    let history = stream.next(1).await;
    assert_eq!(history[0].2["data"]["serial_number"], before.as_str());
    let mut serials = Vec::new();
    for _ in 0..3 {
        register_in(&app, OTHER_TENANT).await;
        serials.push(register_in(&app, TENANT).await);
        let live = stream.next(1).await;
        assert_eq!(live[0].1, "DeviceRegistered");
        assert_eq!(
            live[0].2["data"]["serial_number"],
            serials.last().unwrap().as_str()
        );
        assert_eq!(live[0].2["tenant"], TENANT);
        assert_eq!(
            live[0].0,
            live[0].2["position"].as_str().unwrap(),
            "the id is the position"
        );
    }
    let last_seen = {
        let all = feed(&app, "").await;
        let events = all["events"].as_array().unwrap().clone();
        assert_eq!(events.len(), 4);
        events[3]["position"].as_str().unwrap().to_owned()
    };
    assert!(
        stream.rest(Duration::from_millis(300)).await.is_empty(),
        "nothing else, nothing of the other tenant"
    );
    drop(stream);

    // Disconnected: two more commit; the client resumes after the last it saw.
    let missed = [
        register_in(&app, TENANT).await,
        register_in(&app, TENANT).await,
    ];
    let resumed = EventStream::open(&app, TENANT, Some(&last_seen));
    let caught_up = resumed.next(2).await;
    let seen: Vec<&str> = caught_up
        .iter()
        .map(|(_, _, e)| e["data"]["serial_number"].as_str().unwrap())
        .collect();
    assert_eq!(seen, missed.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        resumed.rest(Duration::from_millis(300)).await.is_empty(),
        "nothing repeated"
    );
}

#[tokio::test]
async fn a_bad_last_event_id_is_a_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(reader(&app, TENANT))
        .header("accept", "text/event-stream")
        .header("last-event-id", "not-a-position")
        .send()
        .await
        .unwrap();
    let problem = crate::helpers::assert_problem(response, 400, "invalid-field").await;
    assert_eq!(problem["field"], "Last-Event-ID");
}

#[tokio::test]
async fn a_live_stream_ends_when_the_api_shuts_down() {
    let (url, _pool) = crate::helpers::migrated_database().await;
    let mut api = crate::helpers::ApiProcess::start(&url, &[]).await;
    let token = api::auth::JwtKeys::from_secret(crate::helpers::JWT_SECRET.as_bytes()).issue(
        "analyst",
        TENANT,
        "events:read",
        Duration::from_secs(600),
    );
    let mut curl = Command::new("curl")
        .args(["-sN", "-H", "Accept: text/event-stream", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/v1/events", api.base))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(curl.try_wait().unwrap().is_none(), "the stream is open");
    let started = Instant::now();
    api.stop();
    // Well within SHUTDOWN_GRACE_SECONDS (20 s): the stream does not hold the shutdown up.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ended = curl.wait().unwrap();
    assert!(ended.success(), "the stream ended cleanly: {ended:?}");
    assert!(api.log().contains("api stopped"));
}

/// A read filtered by a type the tenant rarely has: its page may be empty, but its cursor
/// moves past the events it considered (those of other types), so the next read, a waiting
/// one or a live tail starts after them instead of considering the whole history again.
#[tokio::test]
async fn a_filtered_read_moves_its_cursor_past_the_events_of_other_types() {
    let app = spawn_app().await;
    let mut devices = Vec::new();
    for _ in 0..30 {
        devices.push(app.registered_device().await);
    }
    let last_registration = positions_after(&app, None, 30).await.pop().unwrap();

    let none_yet = feed(&app, "?type=DeviceDecommissioned").await;
    assert_eq!(none_yet["events"], serde_json::json!([]));
    assert_eq!(
        none_yet["next_cursor"],
        last_registration.as_str(),
        "the cursor moves past the 30 registrations considered"
    );
    // Nothing new at all: the wait ends empty, with the same cursor.
    let waited = feed(
        &app,
        &format!("?type=DeviceDecommissioned&after={last_registration}&wait=1"),
    )
    .await;
    assert_eq!(waited["events"], serde_json::json!([]));
    assert_eq!(waited["next_cursor"], last_registration.as_str());

    // An event of the type, from the moved cursor: exactly it.
    let response = app
        .decommission(devices[3], &app.writer(), &new_key())
        .await;
    assert_eq!(response.status(), 202);
    let page = feed(
        &app,
        &format!("?type=DeviceDecommissioned&after={last_registration}"),
    )
    .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["subject"], devices[3].to_string());
    let decommissioned = events[0]["position"].as_str().unwrap().to_owned();
    assert_eq!(page["next_cursor"], decommissioned.as_str());

    // Events of other types after it move the cursor of the next empty read past them.
    app.registered_device().await;
    let newest = positions_after(&app, Some(&decommissioned), 1)
        .await
        .pop()
        .unwrap();
    let page = feed(
        &app,
        &format!("?type=DeviceDecommissioned&after={decommissioned}"),
    )
    .await;
    assert_eq!(page["events"], serde_json::json!([]));
    assert_eq!(page["next_cursor"], newest.as_str());
}

/// The positions of the next `count` events after `after` (of any type), waiting for them to
/// reach the feed (it shows a commit once every older transaction of the cluster has ended).
async fn positions_after(app: &TestApp, after: Option<&str>, count: usize) -> Vec<String> {
    let mut positions = Vec::new();
    let mut cursor = after.map(str::to_owned);
    while positions.len() < count {
        let query = match &cursor {
            Some(cursor) => format!("?after={cursor}&wait=5&limit=1000"),
            None => "?wait=5&limit=1000".to_owned(),
        };
        let page = feed(app, &query).await;
        let events = page["events"].as_array().unwrap();
        assert!(
            !events.is_empty(),
            "only {} of {count} events",
            positions.len()
        );
        positions.extend(
            events
                .iter()
                .map(|e| e["position"].as_str().unwrap().to_owned()),
        );
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(positions.len(), count);
    positions
}
