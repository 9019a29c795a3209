//! The worker's CA key in a PKCS#11 token (SoftHSM2, a token made for the test): device
//! certificates, the CA's CRL and the api's OCSP-signer certificate are signed there, and
//! OpenSSL verifies each. A token that stops answering is an outage: devices stay pending,
//! nothing becomes a dead letter, and everything is issued once the token is back.

use std::process::Command;
use std::time::Duration;

use testkit::SoftHsmToken;

use crate::crl::crl_path_named_by;
use crate::helpers::{registration, unique_serial, Stack};
use crate::openssl::{openssl, path};
use crate::provisioning::PATIENCE;

#[tokio::test]
async fn a_ca_key_in_a_token_signs_everything_and_its_outage_only_delays_devices() {
    let mut stack = Stack::start().await;
    let token = SoftHsmToken::new(&stack.dir, "fleet");
    let ca_dir = stack.dir.join("hsm-ca");
    let key_uri = token.uri("platform-ca");
    let made = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["dev-ca", "--out", &path(&ca_dir), "--key", &key_uri])
        .envs(token.env())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    assert!(
        !ca_dir.join("ca.key").exists(),
        "the key stays in the token"
    );
    let ca_pem = ca_dir.join("ca.pem");
    let mut worker_env = token.env();
    worker_env.extend([
        ("CA_CERT_PATH", path(&ca_pem)),
        ("CA_KEY_PATH", key_uri.clone()),
    ]);
    let worker = stack.spawn_worker_with_env(&worker_env);

    // A device certificate and the CRL it names, both signed in the token.
    let serial = unique_serial();
    let id = stack.register(&registration(&serial)).await;
    let device = stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let cert = device["certificate"]["pem"].as_str().unwrap().to_owned();
    std::fs::write(stack.dir.join("device.pem"), &cert).unwrap();
    let (ok, said) = openssl(vec![
        "verify".into(),
        "-CAfile".into(),
        path(&ca_pem),
        path(&stack.dir.join("device.pem")),
    ])
    .await;
    assert!(ok && said.contains(": OK"), "{said}");
    let crl = stack
        .client
        .get(stack.url(&crl_path_named_by(&cert)))
        .send()
        .await
        .unwrap();
    assert_eq!(crl.status(), 200, "the worker published its CRL at start");
    std::fs::write(stack.dir.join("crl.der"), crl.bytes().await.unwrap()).unwrap();
    let (ok, said) = openssl(vec![
        "crl".into(),
        "-inform".into(),
        "DER".into(),
        "-in".into(),
        path(&stack.dir.join("crl.der")),
        "-CAfile".into(),
        path(&ca_pem),
        "-noout".into(),
    ])
    .await;
    assert!(ok && said.contains("verify OK"), "{said}");

    // The api's OCSP signer, certified through the token.
    let signer_dir = stack.dir.join("signer");
    let certified = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["ocsp-signer", "--out", &path(&signer_dir)])
        .envs(worker_env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(certified.status.success(), "{certified:?}");
    let (ok, said) = openssl(vec![
        "verify".into(),
        "-CAfile".into(),
        path(&ca_pem),
        "-purpose".into(),
        "ocsphelper".into(),
        path(&signer_dir.join("ocsp-signer.pem")),
    ])
    .await;
    assert!(ok && said.contains(": OK"), "{said}");

    // The token goes away: registrations are accepted and wait, longer than the consumer's
    // whole redelivery budget (3 deliveries, 1 s apart), and none becomes a dead letter.
    token.take_away();
    let mut waiting = Vec::new();
    for _ in 0..5 {
        waiting.push(stack.register(&registration(&unique_serial())).await);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    for id in &waiting {
        let device = stack
            .get(&format!("/v1/devices/{id}"), &stack.reader())
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(device["status"], "pending", "{device}");
    }
    assert_eq!(dead_letters(&stack).await, 0);
    assert!(
        stack
            .worker_log(worker)
            .contains("a dependency does not answer"),
        "the outage is logged"
    );

    token.bring_back();
    for id in waiting {
        stack.wait_for_status(id, "provisioned", PATIENCE).await;
    }
    assert_eq!(dead_letters(&stack).await, 0);
    let log = stack.worker_log(worker);
    let pin = std::fs::read_to_string(&token.pin_file).unwrap();
    assert!(!log.contains(pin.trim_end()), "the PIN is never logged");
}

async fn dead_letters(stack: &Stack) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}
