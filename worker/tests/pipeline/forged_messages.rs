//! Messages are notifications, the event store holds the facts: a message that the relay did
//! not publish (anyone who can publish to the stream's subjects could send one) can neither
//! get a key certified nor change a read model.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{csr_for, registration, unique_serial, Stack, TENANT};
use crate::provisioning::{assert_certifies, PATIENCE};

/// The device's event at `sequence` as the analysts' feed shows it: the envelope the relay
/// publishes. Waits for it: the feed is gap-safe, so a committed event shows only once no
/// older transaction is still open anywhere on the server (other tests' included).
async fn envelope_of(stack: &Stack, device: Uuid, sequence: u64) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = stack
            .feed()
            .await
            .into_iter()
            .find(|e| e["subject"] == device.to_string() && e["sequence"] == sequence);
        if let Some(envelope) = found {
            return envelope;
        }
        assert!(
            Instant::now() < deadline,
            "event {sequence} of {device} is not in the feed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `envelope` on its event subject with the relay's headers, as a client other than
/// the relay could; returns its stream sequence.
async fn publish_forged(stack: &Stack, envelope: &Value) -> u64 {
    let client = async_nats::connect(&stack.nats_url).await.unwrap();
    let js = jetstream::new(client);
    let settings = nats::StreamSettings {
        name: stack.stream.clone(),
        subject_prefix: stack.prefix.clone(),
        duplicate_window: Duration::from_secs(300),
        max_age: Duration::from_secs(86_400),
        replicas: 1,
    };
    nats::ensure_stream(&js, &settings).await.unwrap();
    let event_type = envelope["type"].as_str().unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(nats::headers::MSG_ID, envelope["id"].as_str().unwrap());
    headers.insert(nats::headers::TENANT, TENANT);
    headers.insert(nats::headers::EVENT_TYPE, event_type);
    let ack = js
        .publish_with_headers(
            settings.subject(TENANT, event_type),
            headers,
            serde_json::to_vec(envelope).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    ack.sequence
}

/// Waits until `consumer` has been delivered stream message `sequence` and has acked
/// everything delivered.
async fn wait_until_consumed(stack: &Stack, consumer: &str, sequence: u64) {
    let client = async_nats::connect(&stack.nats_url).await.unwrap();
    let js = jetstream::new(client);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(mut c) = js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                consumer,
                &stack.stream,
            )
            .await
        {
            let info = c.info().await.unwrap();
            if info.ack_floor.stream_sequence >= sequence && info.num_ack_pending == 0 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{consumer} never consumed {sequence}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_forged_request_message_cannot_get_another_key_certified() {
    let mut stack = Stack::start().await;
    let serial = unique_serial();
    let body = registration(&serial);
    let id = stack.register(&body).await;

    // Before the relay runs, an attacker publishes a copy of the registration's message with
    // their own CSR (same subject CN) and the real event id, so that JetStream even drops the
    // relay's real message as a duplicate.
    let mut forged = envelope_of(&stack, id, 1).await;
    forged["data"]["csr"] = json!(csr_for(&serial));
    publish_forged(&stack, &forged).await;
    stack.spawn_worker();

    let device = stack.wait_for_status(id, "provisioned", PATIENCE).await;
    assert_certifies(&stack, &device, body["csr"].as_str().unwrap(), &serial);
    assert_eq!(stack.count_events("CertificateIssued").await, 1);
    stack.assert_read_model_matches_events().await;
}

#[tokio::test]
async fn a_forged_event_message_does_not_change_the_read_models() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;

    // A decommission that never happened, as the device's next event.
    let mut forged = envelope_of(&stack, id, 2).await;
    forged["id"] = json!(Uuid::new_v4().to_string());
    forged["sequence"] = json!(3);
    forged["type"] = json!("DeviceDecommissioned");
    forged["data"] = json!({"reason": "forged"});
    let sequence = publish_forged(&stack, &forged).await;
    wait_until_consumed(&stack, "projector-device_view", sequence).await;
    wait_until_consumed(&stack, "projector-device_stats", sequence).await;

    let device: Value = stack
        .get(&format!("/v1/devices/{id}"), &stack.reader())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(device["status"], "provisioned");
    assert_eq!(device["version"], 2);
    let stats: Value = stack
        .get("/v1/stats", &stack.reader())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["counts"],
        json!([{"model": "Gateway X1", "status": "provisioned", "devices": 1}]),
        "{stats}"
    );
    stack.assert_read_model_matches_events().await;
}
