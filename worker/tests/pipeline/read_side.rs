//! What clients read: a device (ETag, long-poll), lists, history and the analysts' feed,
//! each scoped to the caller's tenant.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack, OTHER_TENANT};

const PATIENCE: Duration = Duration::from_secs(30);

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn etag_long_poll_history_and_tenant_isolation_of_one_device() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let serial = unique_serial();
    let id = stack.register(&registration(&serial)).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let reader = stack.reader();

    let response = stack.get(&format!("/v1/devices/{id}"), &reader).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"v2\"");
    let not_modified = stack
        .client
        .get(stack.url(&format!("/v1/devices/{id}")))
        .bearer_auth(&reader)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    // A version that never comes: answered with what there is once the wait is over.
    let started = Instant::now();
    let device = json_of(
        stack
            .get(&format!("/v1/devices/{id}?min_version=3&wait=1"), &reader)
            .await,
    )
    .await;
    assert_eq!(device["version"], 2);
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A version that comes while waiting: answered as soon as it is there.
    // (The decommission revokes the certificate, version 3, and decommissions, version 4.)
    let poll_path = format!("/v1/devices/{id}?min_version=4&wait=20");
    let poll = stack.get(&poll_path, &reader);
    let decommission = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack
            .post(
                &format!("/v1/devices/{id}/decommission"),
                &json!({"reason": "lost"}),
            )
            .await
    };
    let (polled, decommissioned) = tokio::join!(poll, decommission);
    assert_eq!(decommissioned.status(), 202);
    let device = json_of(polled).await;
    assert_eq!(device["version"], 4);
    assert_eq!(device["status"], "decommissioned");

    let history = json_of(
        stack
            .get(&format!("/v1/devices/{id}/history"), &reader)
            .await,
    )
    .await;
    let events = history["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "DeviceRegistered",
            "CertificateIssued",
            "CertificateRevoked",
            "DeviceDecommissioned"
        ]
    );
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["subject"], id.to_string());
        assert_eq!(event["sequence"], i as u64 + 1);
        assert_eq!(event["tenant"], "acme");
    }
    assert_eq!(events[0]["data"]["serial_number"], serial);

    let outsider = stack.token(OTHER_TENANT, "devices:read events:read");
    for path in [
        format!("/v1/devices/{id}"),
        format!("/v1/devices/{id}/history"),
    ] {
        let response = stack.get(&path, &outsider).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let feed = json_of(stack.get("/v1/events", &outsider).await).await;
    assert_eq!(feed["events"], json!([]));
    let list = json_of(stack.get("/v1/devices", &outsider).await).await;
    assert_eq!(list["devices"], json!([]));
    stack.delete_stream().await;
}

#[tokio::test]
async fn lists_filter_and_page_without_gaps_or_repeats() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = registration(&unique_serial());
        body["model"] = json!(if i % 2 == 0 {
            "Gateway X1"
        } else {
            "Sensor S2"
        });
        ids.push(stack.register(&body).await);
    }
    for id in &ids {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    let reader = stack.reader();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/devices?limit=2&cursor={c}"),
            None => "/v1/devices?limit=2".to_owned(),
        };
        let page = json_of(stack.get(&path, &reader).await).await;
        for device in page["devices"].as_array().unwrap() {
            seen.push(device["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );

    let sensors = json_of(
        stack
            .get(
                "/v1/devices?model=Sensor%20S2&status=provisioned&label=site:lyon-3",
                &reader,
            )
            .await,
    )
    .await;
    assert_eq!(sensors["devices"].as_array().unwrap().len(), 2);
    let none = json_of(stack.get("/v1/devices?label=site:paris", &reader).await).await;
    assert_eq!(none["devices"], json!([]));
    let failed = json_of(stack.get("/v1/devices?status=failed", &reader).await).await;
    assert_eq!(failed["devices"], json!([]));

    for bad in [
        "/v1/devices?limit=0",
        "/v1/devices?cursor=garbage",
        "/v1/devices?status=bogus",
        "/v1/devices?label=nocolon",
        "/v1/devices?staus=failed",
        "/v1/events?after=garbage",
        "/v1/events?type=Nope",
        "/v1/events?limit=100000",
    ] {
        let response = stack.get(bad, &reader).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let response = stack
        .get(&format!("/v1/devices/{}?wait=5", ids[0]), &reader)
        .await;
    assert_eq!(response.status(), 400, "wait without min_version");
    stack.delete_stream().await;
}

#[tokio::test]
async fn the_feed_pages_every_event_once_in_commit_order_and_filters_by_type() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(stack.register(&registration(&unique_serial())).await);
    }
    for id in &ids {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    let reader = stack.reader();

    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let path = if after.is_empty() {
            "/v1/events?limit=2".to_owned()
        } else {
            format!("/v1/events?limit=2&after={after}")
        };
        let page = json_of(stack.get(&path, &reader).await).await;
        let batch = page["events"].as_array().unwrap().clone();
        after = page["next_cursor"].as_str().unwrap().to_owned();
        if batch.is_empty() {
            break;
        }
        events.extend(batch);
    }
    assert_eq!(events.len(), 6, "3 registrations and 3 certificates");
    let unique: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 6);
    // Commit order: each device's registration comes before its certificate.
    for id in &ids {
        let positions: Vec<&str> = events
            .iter()
            .filter(|e| e["subject"] == id.to_string())
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(positions, ["DeviceRegistered", "CertificateIssued"]);
    }
    // The last cursor is where an analyst resumes: nothing new yet.
    let again = json_of(
        stack
            .get(&format!("/v1/events?after={after}"), &reader)
            .await,
    )
    .await;
    assert_eq!(again["events"], json!([]));
    assert_eq!(again["next_cursor"], after.as_str());

    let issued = json_of(
        stack
            .get("/v1/events?type=CertificateIssued", &reader)
            .await,
    )
    .await;
    assert_eq!(issued["events"].as_array().unwrap().len(), 3);
    stack.delete_stream().await;
}

#[tokio::test]
async fn lists_and_metrics_show_the_certificates_ending_before_a_time() {
    use app::DeviceReadModel;

    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(stack.register(&registration(&unique_serial())).await);
    }
    for id in &ids {
        stack.wait_for_status(*id, "provisioned", PATIENCE).await;
    }
    // A revoked certificate is not a renewal coming up.
    let revoked = stack
        .post(
            &format!("/v1/devices/{}/certificate:revoke", ids[0]),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(revoked.status(), 202);
    stack.wait_for_version(ids[0], 3, PATIENCE).await;
    let reader = stack.reader();
    let listed = |before: chrono::DateTime<chrono::Utc>| {
        let path = format!(
            "/v1/devices?expiring_before={}",
            before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let (stack, reader) = (&stack, &reader);
        async move {
            let page = json_of(stack.get(&path, reader).await).await;
            let mut found: Vec<Uuid> = page["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().parse().unwrap())
                .collect();
            found.sort_unstable();
            found
        }
    };
    let now = chrono::Utc::now();
    // The certificates are valid for CERT_VALIDITY_DAYS (365 by default).
    let mut live = vec![ids[1], ids[2]];
    live.sort_unstable();
    assert_eq!(listed(now + chrono::Duration::days(400)).await, live);
    assert_eq!(
        listed(now + chrono::Duration::days(30)).await,
        Vec::<Uuid>::new()
    );

    let response = stack
        .get("/v1/devices?expiring_before=next-week", &reader)
        .await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "expiring_before");

    let read_model = projections::PostgresDeviceReadModel::new(stack.pool.clone());
    let counts = read_model
        .certificates_expiring(&[
            now + chrono::Duration::days(30),
            now + chrono::Duration::days(400),
        ])
        .await
        .unwrap();
    assert_eq!(counts, [0, 2]);
    stack.delete_stream().await;
}
