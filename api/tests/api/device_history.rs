//! `GET /v1/devices/{id}/history`: the device's events oldest first, in keyset pages
//! (`limit`, `cursor` → `next_cursor`).

use serde_json::Value;

use crate::helpers::*;

impl TestApp {
    async fn history(&self, id: uuid::Uuid, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/v1/devices/{id}/history{query}")))
            .bearer_auth(self.token(TENANT, "devices:read"))
            .send()
            .await
            .unwrap()
    }

    /// A device with `renewals + 2` events: registered, provisioned, renewed.
    async fn device_with_renewals(&self, renewals: usize) -> uuid::Uuid {
        let id = self.registered_device().await;
        self.provision(id).await;
        for _ in 0..renewals {
            assert_eq!(self.renew(id, &new_key()).await.status(), 202);
        }
        id
    }
}

#[tokio::test]
async fn a_history_longer_than_a_page_is_read_completely_in_order_without_repeats_or_gaps() {
    let app = spawn_app().await;
    let id = app.device_with_renewals(5).await;

    let mut sequences = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut query = "?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let response = app.history(id, &query).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        pages += 1;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 3, "{page}");
        for event in events {
            assert_eq!(event["subject"], id.to_string());
            sequences.push(event["sequence"].as_u64().unwrap());
            assert!(
                ids.insert(event["id"].as_str().unwrap().to_owned()),
                "repeated: {event}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(sequences, (1..=7).collect::<Vec<u64>>());
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn without_parameters_the_first_page_keeps_its_shape() {
    let app = spawn_app().await;
    let id = app.device_with_renewals(1).await;

    let page: Value = app.history(id, "").await.json().await.unwrap();

    let types: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "DeviceRegistered",
            "CertificateIssued",
            "CertificateRenewalRequested"
        ]
    );
    assert!(page["next_cursor"].is_null(), "{page}");
}

#[tokio::test]
async fn bad_paging_parameters_are_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let id = app.device_with_renewals(0).await;

    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=1&limit=2", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?cursor=", "cursor"),
        ("?after=1", "after"),
    ] {
        let problem = assert_problem(app.history(id, query).await, 400, "invalid-field").await;
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
}

#[tokio::test]
async fn a_cursor_does_not_reveal_another_tenants_device() {
    let app = spawn_app().await;
    let id = app.device_with_renewals(1).await;
    let first: Value = app.history(id, "?limit=1").await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let response = app
        .client
        .get(app.url(&format!("/v1/devices/{id}/history?cursor={cursor}")))
        .bearer_auth(app.token(OTHER_TENANT, "devices:read"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
}

#[tokio::test]
async fn a_cursor_of_another_device_is_refused_and_one_past_the_end_is_an_empty_last_page() {
    let app = spawn_app().await;
    let id = app.device_with_renewals(1).await;
    let other = app.device_with_renewals(1).await;
    let first: Value = app.history(other, "?limit=1").await.json().await.unwrap();
    let others_cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let problem = assert_problem(
        app.history(id, &format!("?cursor={others_cursor}")).await,
        400,
        "invalid-field",
    )
    .await;
    assert_eq!(problem["field"], "cursor");

    let past_the_end = app::HistoryCursor::after(domain::DeviceId::from_uuid(id), 99).to_cursor();
    let page: Value = app
        .history(id, &format!("?cursor={past_the_end}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"], serde_json::json!([]), "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    let response = app
        .client
        .get(app.url(&format!("/v1/devices/{id}/history?cursor={past_the_end}")))
        .bearer_auth(app.token(OTHER_TENANT, "devices:read"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
}
