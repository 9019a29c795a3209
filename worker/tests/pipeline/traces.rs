//! One trace follows a command across NATS: the worker continues the trace of the request
//! that appended the event (from the message's `traceparent` header), and the events it
//! appends carry its own span's context, so their projection joins the same trace.

use std::time::Duration;

use testkit::OtlpCollector;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack, TENANT};

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_trace_context_crosses_nats_from_the_request_to_the_certificate_and_the_projection() {
    let collector = OtlpCollector::start().await;
    let mut stack = Stack::start().await;
    stack.spawn_worker_with_env(&collector.env());

    // The client's own span: the root of the trace.
    let trace_id = Uuid::new_v4().simple().to_string();
    let client_span = Uuid::new_v4().simple().to_string()[..16].to_owned();
    let response = stack
        .client
        .post(stack.url("/v1/devices"))
        .bearer_auth(stack.token(TENANT, "devices:write"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&registration(&unique_serial()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id: Uuid = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    stack.wait_for_status(id, "provisioned", PATIENCE).await;

    // The worker learnt the context only from the NATS message's headers.
    let provision = collector
        .wait_for("provision certificate", PATIENCE, |s| {
            s.name == "provision certificate" && s.trace_id == trace_id
        })
        .await;
    assert_eq!(provision.service, "worker");
    assert_eq!(provision.parent_span_id, client_span);

    // DeviceRegistered is projected under the request; CertificateIssued under the
    // provisioning span, whose context went back into the event store and over NATS again.
    collector
        .wait_for("projecting DeviceRegistered", PATIENCE, |s| {
            s.name == "project device_view"
                && s.trace_id == trace_id
                && s.parent_span_id == client_span
        })
        .await;
    collector
        .wait_for("projecting CertificateIssued", PATIENCE, |s| {
            s.name == "project device_view"
                && s.trace_id == trace_id
                && s.parent_span_id == provision.span_id
        })
        .await;

    let stored: String = sqlx::query_scalar(
        "SELECT metadata->>'traceparent' FROM events \
         WHERE aggregate_id = $1 AND event_type = 'CertificateIssued'",
    )
    .bind(id.to_string())
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        format!("00-{trace_id}-{}-01", provision.span_id),
        "the issued certificate's event carries the provisioning span's context"
    );
}
