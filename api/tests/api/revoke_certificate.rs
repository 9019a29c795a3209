//! `POST /v1/devices/{id}/certificate:revoke`: the device's live certificate is revoked with
//! an RFC 5280 reason, idempotently; everything else is a clear problem.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

async fn revoke(
    app: &TestApp,
    id: Uuid,
    token: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    app.post(
        &format!("/v1/devices/{id}/certificate:revoke"),
        token,
        key,
        &body,
    )
    .await
}

#[tokio::test]
async fn a_provisioned_device_s_certificate_is_revoked_once_per_key() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;
    let key = new_key();

    let response = revoke(
        &app,
        id,
        &app.writer(),
        Some(&key),
        json!({"reason": "keyCompromise"}),
    )
    .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "provisioned", "the device may renew");
    assert_eq!(body["version"], 3);

    let replayed = revoke(
        &app,
        id,
        &app.writer(),
        Some(&key),
        json!({"reason": "keyCompromise"}),
    )
    .await;
    assert_eq!(replayed.status(), 202);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(
        app.event_types(id).await,
        [
            "DeviceRegistered",
            "CertificateIssued",
            "CertificateRevoked"
        ]
    );
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'CertificateRevoked'",
    )
    .bind(id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let revocation = &payload["CertificateRevoked"]["revocation"];
    assert_eq!(revocation["serial"], "01");
    assert_eq!(revocation["reason"], "keyCompromise");
    assert!(revocation["revoked_at"].is_string());

    // Another key: the certificate is revoked already.
    assert_problem(
        revoke(
            &app,
            id,
            &app.writer(),
            Some(&new_key()),
            json!({"reason": "unspecified"}),
        )
        .await,
        409,
        "certificate-already-revoked",
    )
    .await;
}

#[tokio::test]
async fn a_decommission_revokes_the_live_certificate() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;
    let response = app.decommission(id, &app.writer(), &new_key()).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], 4);
    assert_eq!(
        app.event_types(id).await,
        [
            "DeviceRegistered",
            "CertificateIssued",
            "CertificateRevoked",
            "DeviceDecommissioned"
        ]
    );
    assert_problem(
        revoke(
            &app,
            id,
            &app.writer(),
            Some(&new_key()),
            json!({"reason": "keyCompromise"}),
        )
        .await,
        409,
        "device-decommissioned",
    )
    .await;
}

#[tokio::test]
async fn a_device_without_a_certificate_has_nothing_to_revoke() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    assert_problem(
        revoke(
            &app,
            id,
            &app.writer(),
            Some(&new_key()),
            json!({"reason": "keyCompromise"}),
        )
        .await,
        409,
        "no-certificate",
    )
    .await;
}

#[tokio::test]
async fn bad_revocations_are_clear_problems() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;
    for reason in [
        json!("key_compromise"),
        json!("certificateHold"),
        json!(""),
        json!(3),
    ] {
        let response = revoke(
            &app,
            id,
            &app.writer(),
            Some(&new_key()),
            json!({ "reason": reason }),
        )
        .await;
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{reason}: {problem}");
        assert!(
            problem["type"] == "/problems/invalid-field"
                || problem["type"] == "/problems/malformed-body",
            "{problem}"
        );
    }
    let response = revoke(
        &app,
        id,
        &app.writer(),
        Some(&new_key()),
        json!({"reason": "certificateHold"}),
    )
    .await;
    let problem = assert_problem(response, 400, "invalid-field").await;
    assert_eq!(problem["field"], "reason");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("keyCompromise"),
        "{problem}"
    );

    assert_problem(
        revoke(
            &app,
            id,
            &app.writer(),
            None,
            json!({"reason": "keyCompromise"}),
        )
        .await,
        400,
        "idempotency-key-missing",
    )
    .await;
    assert_problem(
        revoke(
            &app,
            id,
            &app.writer(),
            Some(&new_key()),
            json!({"reason": "keyCompromise", "why": "x"}),
        )
        .await,
        400,
        "invalid-field",
    )
    .await;
    let reader = app.token(TENANT, "devices:read");
    assert_problem(
        revoke(
            &app,
            id,
            &reader,
            Some(&new_key()),
            json!({"reason": "keyCompromise"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // Another tenant's device does not exist for this one.
    let outsider = app.token(OTHER_TENANT, "devices:write");
    assert_problem(
        revoke(
            &app,
            id,
            &outsider,
            Some(&new_key()),
            json!({"reason": "keyCompromise"}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        app.event_types(id).await,
        ["DeviceRegistered", "CertificateIssued"],
        "nothing was revoked"
    );
}
