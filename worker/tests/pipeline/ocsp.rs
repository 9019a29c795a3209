//! The OCSP responder as relying parties use it, with OpenSSL as the relying party: the
//! certificate a device is provisioned with names the test's responder, which answers `good`,
//! then `revoked` (with reason and time) within a second of the revocation's 202; a
//! certificate the CA never issued, or another CA's, is `unknown`; the GET form answers as
//! POST does; garbage is an OCSP `malformedRequest`, never an HTTP error; a renewal
//! supersedes the old certificate, and a decommission revokes the new one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{registration, unique_serial, Stack};
use crate::openssl::{openssl, path};
use crate::provisioning::PATIENCE;

fn write(stack: &Stack, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = stack.dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The OCSP URL the certificate names (its AIA), as OpenSSL reads it.
async fn ocsp_uri(cert: &Path) -> String {
    let (ok, out) = openssl(vec![
        "x509".into(),
        "-in".into(),
        path(cert),
        "-noout".into(),
        "-ocsp_uri".into(),
    ])
    .await;
    assert!(ok, "{out}");
    out.trim().to_owned()
}

/// `openssl ocsp -issuer <issuer> -cert <cert> -url <url> -CAfile ca.pem <extra…>`: its
/// output.
async fn ask(stack: &Stack, issuer: &Path, cert: &Path, url: &str, extra: &[&str]) -> String {
    let mut args: Vec<String> = [
        "ocsp",
        "-issuer",
        &path(issuer),
        "-cert",
        &path(cert),
        "-url",
        url,
        "-CAfile",
        &path(&stack.dir.join("ca.pem")),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    openssl(args).await.1
}

/// Asks about `cert` until OpenSSL says it is revoked (or [`PATIENCE`] passes); its last
/// answer, and how long that took.
async fn ask_until_revoked(stack: &Stack, cert: &Path, url: &str) -> (String, Duration) {
    let ca = stack.dir.join("ca.pem");
    let started = Instant::now();
    loop {
        let answer = ask(stack, &ca, cert, url, &[]).await;
        if answer.contains(": revoked") || started.elapsed() > PATIENCE {
            return (answer, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A provisioned device's id and its certificate, written to `<name>.pem`, once the OCSP
/// responder knows the certificate: it answers from `certificate_status`, a read model of its
/// own projector, which may be a moment behind the device view that says `provisioned`.
async fn provisioned(stack: &Stack, name: &str) -> (uuid::Uuid, Value, PathBuf) {
    let id = stack.register(&registration(&unique_serial())).await;
    let device = stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let pem = device["certificate"]["pem"].as_str().unwrap().to_owned();
    let cert = write(stack, &format!("{name}.pem"), pem);
    let url = ocsp_uri(&cert).await;
    let ca = stack.dir.join("ca.pem");
    let started = Instant::now();
    while ask(stack, &ca, &cert, &url, &[])
        .await
        .contains(&format!("{}: unknown", path(&cert)))
    {
        assert!(
            started.elapsed() < PATIENCE,
            "the responder never knew {name}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (id, device, cert)
}

/// How OpenSSL prints a time (`Dec  1 14:09:27 2026 GMT`).
fn openssl_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&chrono::Utc)
        .format("%b %e %H:%M:%S %Y GMT")
        .to_string()
}

#[tokio::test]
async fn a_provisioned_certificate_is_good_and_revoked_within_a_second_of_its_revocation() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let (id, _, cert) = provisioned(&stack, "device").await;
    let ca = stack.dir.join("ca.pem");

    let url = ocsp_uri(&cert).await;
    assert!(
        url.starts_with(&format!("{}/pki/", stack.address)) && url.ends_with("/ocsp"),
        "the certificate names the test's responder: {url}"
    );
    let answer = ask(&stack, &ca, &cert, &url, &[]).await;
    assert!(answer.contains("Response verify OK"), "{answer}");
    assert!(
        answer.contains(&format!("{}: good", path(&cert))),
        "{answer}"
    );
    assert!(
        !answer.contains("WARNING"),
        "the nonce is echoed, the times are sane: {answer}"
    );
    assert!(answer.contains("Next Update:"), "{answer}");

    let revoke = stack
        .post(
            &format!("/v1/devices/{id}/certificate:revoke"),
            &json!({ "reason": "keyCompromise" }),
        )
        .await;
    assert_eq!(revoke.status(), 202);
    let (answer, latency) = ask_until_revoked(&stack, &cert, &url).await;
    eprintln!("revoked over OCSP {latency:?} after the 202");
    assert!(
        answer.contains(&format!("{}: revoked", path(&cert))),
        "{answer}"
    );
    assert!(answer.contains("Response verify OK"), "{answer}");
    assert!(answer.contains("Reason: keyCompromise"), "{answer}");
    assert!(
        latency < Duration::from_secs(1),
        "revoked over OCSP {latency:?} after the 202"
    );
    let device = stack.wait_for_version(id, 3, PATIENCE).await;
    let revoked_at = device["certificate"]["revocation"]["revoked_at"]
        .as_str()
        .unwrap();
    assert!(
        answer.contains(&format!("Revocation Time: {}", openssl_time(revoked_at))),
        "the revocation's time, {revoked_at}: {answer}"
    );
    stack.delete_stream().await;
}

/// A certificate for a new key, with a random serial, signed by the CA in `ca_pem`/`ca_key`.
fn certificate_signed_by(ca_pem: &str, ca_key: &str) -> String {
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(ca_pem, rcgen::KeyPair::from_pem(ca_key).unwrap()).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "never issued");
    let mut serial = uuid::Uuid::new_v4().into_bytes().to_vec();
    serial[0] = 0x42;
    params.serial_number = Some(serial.into());
    params
        .signed_by(&rcgen::KeyPair::generate().unwrap(), &issuer)
        .unwrap()
        .pem()
}

#[tokio::test]
async fn a_certificate_never_issued_and_one_of_another_ca_are_unknown() {
    let stack = Stack::start().await;
    let ca = stack.dir.join("ca.pem");
    let ca_key = std::fs::read_to_string(stack.dir.join("ca.key")).unwrap();
    let ours = write(
        &stack,
        "never-issued.pem",
        certificate_signed_by(&stack.ca_cert_pem, &ca_key),
    );
    let (other_ca_pem, other_ca_key) = pki::dev_ca::generate_dev_ca("another CA").unwrap();
    let other_ca = write(&stack, "other-ca.pem", &other_ca_pem);
    let theirs = write(
        &stack,
        "other.pem",
        certificate_signed_by(&other_ca_pem, &other_ca_key),
    );
    // The URL certificates of this CA name (none was issued here to read it from).
    let ca_id = stack.ocsp_ca_id();
    let url = stack.url(&format!("/pki/{ca_id}/ocsp"));

    let answer = ask(&stack, &ca, &ours, &url, &[]).await;
    assert!(answer.contains("Response verify OK"), "{answer}");
    assert!(
        answer.contains(&format!("{}: unknown", path(&ours))),
        "{answer}"
    );

    // Our signer is not authorised for the other CA, so OpenSSL cannot verify the answer
    // (as it should not): read its status without verifying.
    let answer = ask(&stack, &other_ca, &theirs, &url, &["-noverify"]).await;
    assert!(
        answer.contains(&format!("{}: unknown", path(&theirs))),
        "{answer}"
    );
}

/// base64 of `der`, percent-encoded for a path segment.
fn path_segment(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(der)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test]
async fn the_get_form_answers_as_post_does_and_is_cacheable_without_a_nonce() {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let (_, _, cert) = provisioned(&stack, "device").await;
    let ca = stack.dir.join("ca.pem");
    let url = ocsp_uri(&cert).await;
    let request = stack.dir.join("request.der");
    let common = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "ocsp",
            "-issuer",
            &path(&ca),
            "-cert",
            &path(&cert),
            "-CAfile",
            &path(&ca),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    // Without a nonce: what RFC 5019 clients and caches send.
    let (ok, out) = openssl(common(&["-no_nonce", "-reqout", &path(&request)])).await;
    assert!(ok, "{out}");
    let der = std::fs::read(&request).unwrap();
    let response = stack
        .client
        .get(format!("{url}/{}", path_segment(&der)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/ocsp-response"
    );
    assert_eq!(
        response.headers()["cache-control"],
        "max-age=60, public, no-transform"
    );
    let answer_path = write(&stack, "response.der", response.bytes().await.unwrap());
    let (_, got) = openssl(common(&["-no_nonce", "-respin", &path(&answer_path)])).await;
    assert!(got.contains("Response verify OK"), "{got}");
    assert!(got.contains(&format!("{}: good", path(&cert))), "{got}");
    let posted = ask(&stack, &ca, &cert, &url, &["-no_nonce"]).await;
    assert!(
        posted.contains(&format!("{}: good", path(&cert))),
        "{posted}"
    );

    // Unpadded URL-safe base64 is read too; a nonce makes the answer `no-store`.
    let (ok, out) = openssl(common(&["-reqout", &path(&request)])).await;
    assert!(ok, "{out}");
    let der = std::fs::read(&request).unwrap();
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
    let response = stack
        .client
        .get(format!("{url}/{url_safe}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer_path = write(&stack, "response.der", response.bytes().await.unwrap());
    let (_, text) = openssl(vec![
        "ocsp".into(),
        "-respin".into(),
        path(&answer_path),
        "-resp_text".into(),
        "-noverify".into(),
    ])
    .await;
    assert!(text.contains("OCSP Nonce"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");
    stack.delete_stream().await;
}

/// The OCSP response status OpenSSL reads in `body`.
async fn response_status(stack: &Stack, body: &[u8]) -> String {
    let file = write(stack, "answer.der", body);
    let (_, text) = openssl(vec![
        "ocsp".into(),
        "-respin".into(),
        path(&file),
        "-resp_text".into(),
        "-noverify".into(),
    ])
    .await;
    // `OCSP Response Status: successful (0x0)`, or for the others `Responder Error:
    // malformedrequest (1)`.
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("OCSP Response Status: ")
                .or_else(|| l.strip_prefix("Responder Error: "))
        })
        .and_then(|status| status.split(' ').next())
        .unwrap_or_else(|| panic!("not an OCSP response: {text}"))
        .to_owned()
}

#[tokio::test]
async fn garbage_is_an_ocsp_malformed_request_and_an_unknown_ca_unauthorized() {
    let stack = Stack::start().await;
    let ca = stack.dir.join("ca.pem");
    let url = stack.url(&format!("/pki/{}/ocsp", stack.ocsp_ca_id()));
    let request = stack.dir.join("request.der");
    let (ok, out) = openssl(vec![
        "ocsp".into(),
        "-issuer".into(),
        path(&ca),
        "-serial".into(),
        "0x42".into(),
        "-reqout".into(),
        path(&request),
    ])
    .await;
    assert!(ok, "{out}");
    let good = std::fs::read(&request).unwrap();
    let random: Vec<u8> = (0..200).map(|i| (i * 37 % 251) as u8).collect();

    let post = |body: Vec<u8>, content_type: &'static str, to: String| {
        let client = stack.client.clone();
        async move {
            client
                .post(to)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases: Vec<(Vec<u8>, &str, String, &str)> = vec![
        (
            vec![],
            "application/ocsp-request",
            url.clone(),
            "malformedrequest",
        ),
        (
            random.clone(),
            "application/ocsp-request",
            url.clone(),
            "malformedrequest",
        ),
        (
            good[..good.len() / 2].to_vec(),
            "application/ocsp-request",
            url.clone(),
            "malformedrequest",
        ),
        (
            good.clone(),
            "application/json",
            url.clone(),
            "malformedrequest",
        ),
        (
            good.clone(),
            "application/ocsp-request",
            stack.url("/pki/0011223344556677/ocsp"),
            "unauthorized",
        ),
        (
            good.clone(),
            "application/ocsp-request",
            stack.url("/pki/not-a-ca/ocsp"),
            "unauthorized",
        ),
        (
            good.clone(),
            "application/ocsp-request",
            url.clone(),
            "successful",
        ),
    ];
    for (body, content_type, to, expected) in cases {
        let response = post(body.clone(), content_type, to.clone()).await;
        assert_eq!(response.status(), 200, "{to} {body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/ocsp-response"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            response_status(&stack, &bytes).await,
            expected,
            "{to} {content_type} {body:?}"
        );
    }
    for segment in ["not%20base64!", "AAAA", &path_segment(&random)] {
        let response = stack
            .client
            .get(format!("{url}/{segment}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{segment}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            response_status(&stack, &bytes).await,
            "malformedrequest",
            "{segment}"
        );
    }
    for without_request in [url.clone(), format!("{url}/")] {
        let response = stack.client.get(&without_request).send().await.unwrap();
        assert_eq!(response.status(), 200, "{without_request}");
        let bytes = response.bytes().await.unwrap();
        assert_eq!(response_status(&stack, &bytes).await, "malformedrequest");
    }
}

#[tokio::test]
async fn after_a_renewal_the_old_certificate_is_superseded_and_the_new_one_good_until_decommissioned(
) {
    let mut stack = Stack::start().await;
    stack.spawn_worker();
    let (id, first, old) = provisioned(&stack, "old").await;
    let serial = first["serial_number"].as_str().unwrap().to_owned();
    let ca = stack.dir.join("ca.pem");
    let url = ocsp_uri(&old).await;

    let renewed = stack
        .post(
            &format!("/v1/devices/{id}/certificate:renew"),
            &json!({ "csr": testkit::csr_for(&serial) }),
        )
        .await;
    assert_eq!(renewed.status(), 202);
    // Renewal requested (3), the new certificate issued (4), the old one superseded (5).
    let device = stack.wait_for_version(id, 5, PATIENCE).await;
    assert_ne!(
        device["certificate"]["serial"],
        first["certificate"]["serial"]
    );
    let new = write(
        &stack,
        "new.pem",
        device["certificate"]["pem"].as_str().unwrap(),
    );
    assert_eq!(ocsp_uri(&new).await, url);

    let (answer, _) = ask_until_revoked(&stack, &old, &url).await;
    assert!(
        answer.contains(&format!("{}: revoked", path(&old))),
        "{answer}"
    );
    assert!(answer.contains("Reason: superseded"), "{answer}");
    assert!(answer.contains("Response verify OK"), "{answer}");
    let answer = ask(&stack, &ca, &new, &url, &[]).await;
    assert!(
        answer.contains(&format!("{}: good", path(&new))),
        "{answer}"
    );
    assert!(answer.contains("Response verify OK"), "{answer}");

    // A decommission revokes the live certificate too.
    let decommissioned = stack
        .post(
            &format!("/v1/devices/{id}/decommission"),
            &json!({ "reason": "returned to vendor" }),
        )
        .await;
    assert_eq!(decommissioned.status(), 202);
    let (answer, _) = ask_until_revoked(&stack, &new, &url).await;
    assert!(
        answer.contains(&format!("{}: revoked", path(&new))),
        "{answer}"
    );
    assert!(answer.contains("Reason: cessationOfOperation"), "{answer}");
    stack.delete_stream().await;
}

/// A revocation is final for relying parties too: a worker SIGKILLed and replaced, then a
/// rebuild of the certificate_status read model (what OCSP answers from and CRLs are made
/// of), un-revoke nothing; OCSP and the CRL keep answering throughout, and the next
/// revocation reaches both as before.
#[tokio::test]
async fn revocations_survive_a_worker_kill_and_a_rebuild_of_certificate_status() {
    use crate::crl::{crl_path_named_by, wait_for_crl};
    let mut stack = Stack::start().await;
    let quick = [("CRL_MIN_INTERVAL_MS", "200".to_owned())];
    let worker = stack.spawn_worker_with_env(&quick);
    let (revoked_id, revoked, revoked_cert) = provisioned(&stack, "revoked").await;
    let (live_id, live, live_cert) = provisioned(&stack, "live").await;
    let url = ocsp_uri(&revoked_cert).await;
    let crl_path = crl_path_named_by(revoked["certificate"]["pem"].as_str().unwrap());
    let serial = |device: &Value| device["certificate"]["serial"].as_str().unwrap().to_owned();
    let revoke = stack
        .post(
            &format!("/v1/devices/{revoked_id}/certificate:revoke"),
            &json!({ "reason": "affiliationChanged" }),
        )
        .await;
    assert_eq!(revoke.status(), 202);
    let (answer, _) = ask_until_revoked(&stack, &revoked_cert, &url).await;
    assert!(answer.contains("Reason: affiliationChanged"), "{answer}");

    stack.kill_worker(worker);
    stack.spawn_worker_with_env(&quick);
    let outcome = projections::registered_named(projections::CERTIFICATE_STATUS)
        .unwrap()
        .rebuild(stack.pool.clone())
        .run("test-operator", |_| {})
        .await
        .unwrap();
    assert!(
        matches!(outcome, projections::RebuildOutcome::Completed { .. }),
        "{outcome:?}"
    );

    let ca = stack.dir.join("ca.pem");
    let answer = ask(&stack, &ca, &revoked_cert, &url, &[]).await;
    assert!(
        answer.contains(": revoked") && answer.contains("Reason: affiliationChanged"),
        "{answer}"
    );
    let answer = ask(&stack, &ca, &live_cert, &url, &[]).await;
    assert!(
        answer.contains(&format!("{}: good", path(&live_cert))),
        "{answer}"
    );
    let crl = wait_for_crl(&stack, &crl_path, PATIENCE, |crl| {
        crl.serials.contains(&serial(&revoked))
    })
    .await;
    assert!(!crl.serials.contains(&serial(&live)));

    // The replacement worker and the rebuilt table carry the next revocation as before.
    let revoke = stack
        .post(
            &format!("/v1/devices/{live_id}/certificate:revoke"),
            &json!({ "reason": "keyCompromise" }),
        )
        .await;
    assert_eq!(revoke.status(), 202);
    let (answer, latency) = ask_until_revoked(&stack, &live_cert, &url).await;
    assert!(answer.contains("Reason: keyCompromise"), "{answer}");
    assert!(
        latency < Duration::from_secs(1),
        "revoked over OCSP {latency:?} after the 202"
    );
    let both = wait_for_crl(&stack, &crl_path, PATIENCE, |crl| {
        crl.serials.contains(&serial(&live))
    })
    .await;
    assert!(both.serials.contains(&serial(&revoked)));
    assert!(both.number > crl.number);
    stack.assert_read_model_matches_events().await;
    stack.delete_stream().await;
}
