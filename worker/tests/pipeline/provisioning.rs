//! A registered device becomes provisioned with a certificate for its own key, signed by the
//! CA; a bad CSR is a domain outcome; renewals and decommissions go through.

use std::time::Duration;

use serde_json::{json, Value};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::helpers::{csr_for, registration, unique_serial, Stack};

pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

/// Asserts that `device`'s certificate certifies `csr`'s key for `serial`, signed by the CA.
pub(crate) fn assert_certifies(stack: &Stack, device: &Value, csr: &str, serial: &str) {
    let cert_der = der(device["certificate"]["pem"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    let csr_der = der(csr);
    let (_, request) = X509CertificationRequest::from_der(&csr_der).unwrap();
    assert_eq!(
        cert.public_key().raw,
        request.certification_request_info.subject_pki.raw,
        "the certificate is for the CSR's key"
    );
    let ca_der = der(&stack.ca_cert_pem);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("the certificate verifies against the CA");
    assert_eq!(cert.issuer(), ca.subject());
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, [serial]);
    assert_eq!(
        device["certificate"]["serial"].as_str().unwrap(),
        hex::encode(cert.raw_serial())
    );
}

#[tokio::test]
async fn a_registered_device_is_provisioned_with_a_certificate_for_its_key() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let serial = unique_serial();
    let body = registration(&serial);
    let id = stack.register(&body).await;

    let device = stack.wait_for_status(id, "provisioned", PATIENCE).await;

    assert_certifies(&stack, &device, body["csr"].as_str().unwrap(), &serial);
    assert_eq!(device["version"], 2);
    assert_eq!(device["failure"], Value::Null);
    assert_eq!(device["labels"], json!({"site": "lyon-3"}));
    stack.delete_stream().await;
}

#[tokio::test]
async fn a_csr_whose_subject_is_not_the_serial_number_fails_with_a_code() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let serial = unique_serial();
    let mut body = registration(&serial);
    body["csr"] = json!(csr_for("SOMEONE-ELSE"));
    let id = stack.register(&body).await;

    let device = stack.wait_for_status(id, "failed", PATIENCE).await;

    assert_eq!(device["failure"]["code"], "subject_mismatch");
    assert_eq!(device["certificate"], Value::Null);
    assert_eq!(stack.count_events("CertificateIssued").await, 0);
    stack.delete_stream().await;
}

#[tokio::test]
async fn a_renewal_issues_a_new_certificate_for_the_new_key() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let serial = unique_serial();
    let id = stack.register(&registration(&serial)).await;
    let first = stack.wait_for_status(id, "provisioned", PATIENCE).await;

    let new_csr = csr_for(&serial);
    let response = stack
        .post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &json!({ "csr": new_csr }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["version"], 3);

    let renewed = stack.wait_for_version(id, 4, PATIENCE).await;
    assert_eq!(renewed["status"], "provisioned");
    assert_certifies(&stack, &renewed, &new_csr, &serial);
    assert_ne!(
        renewed["certificate"]["serial"],
        first["certificate"]["serial"]
    );
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}

#[tokio::test]
async fn a_decommissioned_device_is_visible_as_decommissioned() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;

    let response = stack
        .post(
            &format!("/v1/devices/{id}/decommission"),
            &json!({ "reason": "returned to vendor" }),
        )
        .await;
    assert_eq!(response.status(), 202);

    let device = stack.wait_for_status(id, "decommissioned", PATIENCE).await;
    // The decommission revoked the certificate (version 3) and decommissioned (version 4).
    assert_eq!(device["version"], 4);
    // The last certificate stays on record, revoked.
    assert!(device["certificate"]["pem"].is_string());
    assert_eq!(device["certificate"]["status"], "revoked");
    assert_eq!(
        device["certificate"]["revocation"]["reason"],
        "cessationOfOperation"
    );
    stack.delete_stream().await;
}

#[tokio::test]
async fn a_revoked_certificate_shows_as_revoked_and_a_renewal_supersedes_the_one_before() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let id = stack.register(&registration(&unique_serial())).await;
    let first = stack.wait_for_status(id, "provisioned", PATIENCE).await;
    assert_eq!(first["certificate"]["status"], "live");
    assert_eq!(first["certificate"]["revocation"], Value::Null);

    let revoke_path = format!("/v1/devices/{id}/certificate:revoke");
    let response = stack
        .post(&revoke_path, &json!({ "reason": "keyCompromise" }))
        .await;
    assert_eq!(response.status(), 202);
    let device = stack.wait_for_version(id, 3, PATIENCE).await;
    assert_eq!(device["status"], "provisioned");
    assert_eq!(device["certificate"]["status"], "revoked");
    assert_eq!(
        device["certificate"]["revocation"]["reason"],
        "keyCompromise"
    );
    assert_eq!(
        device["certificate"]["serial"],
        first["certificate"]["serial"]
    );
    // Revoking again is refused; the device may renew.
    let again = stack
        .post(&revoke_path, &json!({ "reason": "unspecified" }))
        .await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/certificate-already-revoked");

    let serial = device["serial_number"].as_str().unwrap().to_owned();
    let renewed = stack
        .post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &json!({ "csr": testkit::csr_for(&serial) }),
        )
        .await;
    assert_eq!(renewed.status(), 202);
    let device = stack.wait_for_version(id, 5, PATIENCE).await;
    assert_eq!(device["certificate"]["status"], "live");
    assert_ne!(
        device["certificate"]["serial"],
        first["certificate"]["serial"]
    );
    // Renewing a live certificate revokes the one before it as superseded, once the new
    // one is issued.
    let renewed = stack
        .post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &json!({ "csr": testkit::csr_for(&serial) }),
        )
        .await;
    assert_eq!(renewed.status(), 202);
    let newest = stack.wait_for_version(id, 8, PATIENCE).await;
    assert_eq!(newest["certificate"]["status"], "live");
    let history: Value = stack
        .get(&format!("/v1/devices/{id}/history"), &stack.reader())
        .await
        .json()
        .await
        .unwrap();
    let events = history["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "DeviceRegistered",
            "CertificateIssued",
            "CertificateRevoked",
            "CertificateRenewalRequested",
            "CertificateIssued",
            "CertificateRenewalRequested",
            "CertificateIssued",
            "CertificateRevoked",
        ]
    );
    assert_eq!(events[2]["data"]["reason"], "keyCompromise");
    assert_eq!(events[7]["data"]["reason"], "superseded");
    assert_eq!(events[7]["data"]["serial"], device["certificate"]["serial"]);

    // The certificate_status read model: every certificate issued, each revocation final,
    // and a rebuild from the event store gives back exactly the same.
    let certificates = || async {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT serial, reason FROM certificate_status WHERE device_id = $1 ORDER BY not_before, serial",
        )
        .bind(id)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        rows
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut rows = certificates().await;
    while rows.iter().filter(|(_, r)| r.is_some()).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = certificates().await;
    }
    let reason_of = |serial: &Value| {
        rows.iter()
            .find(|(s, _)| s == serial.as_str().unwrap())
            .map(|(_, reason)| reason.clone())
    };
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        reason_of(&first["certificate"]["serial"]),
        Some(Some("keyCompromise".to_owned()))
    );
    assert_eq!(
        reason_of(&events[7]["data"]["serial"]),
        Some(Some("superseded".to_owned()))
    );
    assert_eq!(reason_of(&newest["certificate"]["serial"]), Some(None));
    let rebuilt = projections::registered_named("certificate_status")
        .unwrap()
        .rebuild(stack.pool.clone())
        .run("test", |_| {})
        .await
        .unwrap();
    assert!(matches!(
        rebuilt,
        projections::RebuildOutcome::Completed { .. }
    ));
    assert_eq!(certificates().await, rows, "a rebuild un-revokes nothing");
    // A replay from the start finds every device as its events say: nothing to repair.
    let replayed = projections::registered_named("certificate_status")
        .unwrap()
        .replay(
            &stack.pool,
            "2000-01-01T00:00:00Z"
                .parse::<projections::ReplayFrom>()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(replayed.repaired, 0, "{replayed:?}");
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}
