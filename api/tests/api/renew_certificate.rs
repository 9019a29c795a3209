use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_provisioned_device_can_request_a_new_certificate() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;

    let response = app.renew(id, &new_key()).await;

    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["status"], "provisioned",
        "the current certificate stays valid meanwhile"
    );
    assert_eq!(body["version"], 3);
    assert_eq!(
        app.event_types(id).await,
        [
            "DeviceRegistered",
            "CertificateIssued",
            "CertificateRenewalRequested"
        ]
    );
}

#[tokio::test]
async fn a_device_still_pending_cannot_be_renewed() {
    let app = spawn_app().await;
    let id = app.registered_device().await;

    assert_problem(
        app.renew(id, &new_key()).await,
        409,
        "provisioning-in-progress",
    )
    .await;
}

#[tokio::test]
async fn a_decommissioned_device_cannot_be_renewed() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;
    assert_eq!(
        app.decommission(id, &app.writer(), &new_key())
            .await
            .status(),
        202
    );

    assert_problem(
        app.renew(id, &new_key()).await,
        409,
        "device-decommissioned",
    )
    .await;
}

#[tokio::test]
async fn a_malformed_csr_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let id = app.registered_device().await;
    app.provision(id).await;
    let response = app
        .post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &app.writer(),
            Some("k"),
            &serde_json::json!({"csr": "not a csr"}),
        )
        .await;
    assert_eq!(
        assert_problem(response, 400, "invalid-field").await["field"],
        "csr"
    );
}
