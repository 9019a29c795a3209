//! Devices enroll themselves over CMP (RFC 9483's lightweight profile over HTTP, RFC 6712),
//! with `openssl cmp` (OpenSSL 3.0's client) as the device, against the api over TLS and a
//! real worker: an operator creates an enrollment group; a device derives its key from the
//! group key and uses it as the MAC secret, its serial number as the reference
//! (`senderKID`). `ir` (a CRMF request) is answered `waiting`, the client polls, and gets a
//! certificate for its key, CN = serial, chaining to the CA certificates of the `ip`
//! (`caPubs`) and of a `genm`; `p10cr` (a PKCS#10 request) enrolls the same way. A repeated
//! request never registers a second device. Every wrong input (the secret, another group's
//! path, a subject that is not the serial, garbage) is CMP's own error and registers nothing;
//! no device key is in an event.

use crate::est::{create_group, derive_device_key, sh};
use crate::helpers::{unique_serial, Stack};
use crate::provisioning::PATIENCE;

/// The answers' sender, which `openssl cmp` asks to be named (`-recipient`).
const SERVICE: &str = "/CN=Device Provisioning CMP";

/// `openssl cmp` against the group `group`'s path over the api's TLS, as `serial` with
/// `secret`, plus `args`: whether it succeeded, and what it said.
async fn openssl_cmp(
    stack: &Stack,
    group: &str,
    serial: &str,
    secret: &str,
    args: &str,
) -> (bool, String) {
    let server = stack.address.trim_start_matches("https://");
    let tls_ca = stack.tls_ca.as_ref().unwrap().display();
    sh(
        stack,
        format!(
            "openssl cmp -server {server} -path .well-known/cmp/p/{group} -tls_used \
             -tls_trusted {tls_ca} -recipient '{SERVICE}' -ref '{serial}' \
             -secret 'pass:{secret}' -unprotected_errors -total_timeout {} {args} 2>&1",
            PATIENCE.as_secs()
        ),
    )
    .await
}

/// Asserts that `pem` is a certificate for `key` with CN = `serial`, chaining to `ca`.
async fn assert_certificate_for(stack: &Stack, pem: &str, key: &str, serial: &str, ca: &str) {
    let (ok, out) = sh(
        stack,
        format!(
            "openssl verify -CAfile {ca} {pem} && \
             openssl x509 -in {pem} -noout -subject && \
             [ \"$(openssl x509 -in {pem} -noout -pubkey)\" = \"$(openssl pkey -in {key} -pubout)\" ]"
        ),
    )
    .await;
    assert!(ok, "{pem}: {out}");
    assert!(out.contains(&format!("subject=CN = {serial}")), "{out}");
}

#[tokio::test]
async fn openssl_cmp_enrolls_devices_with_ir_and_p10cr_through_polling() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;

    // ir, MAC-protected with HMAC-SHA1 (OpenSSL's default): waiting, polls, then ip.
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    let (ok, out) = sh(
        &stack,
        "openssl ecparam -genkey -name prime256v1 -noout -out device.key".into(),
    )
    .await;
    assert!(ok, "{out}");
    let ir = format!(
        "-cmd ir -subject /CN={serial} -newkey device.key -certout device.pem \
         -cacertsout capubs.pem"
    );
    let (ok, out) = openssl_cmp(&stack, "line-7", &serial, &device_key, &ir).await;
    println!("openssl cmp -cmd ir:\n{out}");
    assert!(ok, "ir failed: {out}");
    assert!(out.contains("starting to poll"), "polled: {out}");
    assert_certificate_for(&stack, "device.pem", "device.key", &serial, "ca.pem").await;
    // caPubs holds the platform CA, the one the device chains to.
    assert_certificate_for(&stack, "device.pem", "device.key", &serial, "capubs.pem").await;
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
    let actor: String = sqlx::query_scalar(
        "SELECT metadata->>'actor' FROM events WHERE event_type = 'DeviceRegistered'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(actor, "cmp:line-7");

    // The same ir again, and with HMAC-SHA256 and implicit confirmation: the device's
    // certificate, the device registered once.
    let again = format!(
        "-cmd ir -subject /CN={serial} -newkey device.key -certout again.pem \
         -mac hmacWithSHA256 -implicit_confirm"
    );
    let (ok, out) = openssl_cmp(&stack, "line-7", &serial, &device_key, &again).await;
    assert!(ok, "ir again failed: {out}");
    let (_, same) = sh(&stack, "cmp device.pem again.pem && echo same".into()).await;
    assert!(same.contains("same"), "the same certificate: {same}");
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);

    // p10cr: a PKCS#10 request, answered with cp.
    let other = unique_serial();
    let other_key = derive_device_key(&stack, &group_key, &other).await;
    let (ok, out) = sh(
        &stack,
        format!(
            "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout other.key -subj /CN={other} -out other.csr 2>&1"
        ),
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = openssl_cmp(
        &stack,
        "line-7",
        &other,
        &other_key,
        "-cmd p10cr -csr other.csr -certout other.pem",
    )
    .await;
    println!("openssl cmp -cmd p10cr:\n{out}");
    assert!(ok, "p10cr failed: {out}");
    assert_certificate_for(&stack, "other.pem", "other.key", &other, "ca.pem").await;
    assert_eq!(stack.count_events("DeviceRegistered").await, 2);

    // genm: the CA certificates, in the saved answer.
    let (ok, out) = openssl_cmp(
        &stack,
        "line-7",
        &serial,
        &device_key,
        "-cmd genm -infotype caCerts -rspout genp.der",
    )
    .await;
    assert!(ok, "genm failed: {out}");
    let genp = std::fs::read(stack.dir.join("genp.der")).unwrap();
    let ca = pem::parse(std::fs::read(stack.dir.join("ca.pem")).unwrap()).unwrap();
    assert!(
        genp.windows(ca.contents().len())
            .any(|w| w == ca.contents()),
        "the genp holds the CA certificate"
    );

    // No device key in any event.
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload::text || metadata::text FROM events")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    for payload in payloads {
        assert!(!payload.contains(&device_key) && !payload.contains(&other_key));
    }
    // The analysts' feed: the ir's request as CRMF, the p10cr's as a CSR, no key.
    let feed = stack.feed().await;
    let registered: Vec<&serde_json::Value> = feed
        .iter()
        .filter(|event| event["type"] == "DeviceRegistered")
        .collect();
    assert!(
        registered[0]["data"]["crmf"].is_string(),
        "{}",
        registered[0]
    );
    assert!(
        registered[1]["data"]["csr"].is_string(),
        "{}",
        registered[1]
    );
    let text = serde_json::to_string(&feed).unwrap();
    assert!(!text.contains(&device_key) && !text.contains(&other_key));
}

#[tokio::test]
async fn every_wrong_cmp_request_is_cmp_s_own_error_and_registers_nothing() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let other_group_key = create_group(&stack, "line-8").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    let (ok, out) = sh(
        &stack,
        "openssl ecparam -genkey -name prime256v1 -noout -out device.key".into(),
    )
    .await;
    assert!(ok, "{out}");
    let ir = |subject: &str| {
        format!("-cmd ir -subject /CN={subject} -newkey device.key -certout refused.pem")
    };

    // A wrong secret, another group's path, an unknown group: one refusal, badMessageCheck.
    let line_8_key = derive_device_key(&stack, &other_group_key, &serial).await;
    for (group, secret) in [
        ("line-7", "guessed"),
        ("line-8", device_key.as_str()),
        ("line-9", device_key.as_str()),
        ("line-7", line_8_key.as_str()),
    ] {
        let (ok, out) = openssl_cmp(&stack, group, &serial, secret, &ir(&serial)).await;
        assert!(!ok, "{group}: {out}");
        assert!(out.contains("badMessageCheck"), "{group}: {out}");
    }
    // A subject that is not the serial: badCertTemplate.
    let (ok, out) = openssl_cmp(&stack, "line-7", &serial, &device_key, &ir("SOMEONE-ELSE")).await;
    assert!(!ok, "{out}");
    assert!(out.contains("badCertTemplate"), "{out}");
    assert!(!stack.dir.join("refused.pem").exists());
    assert_eq!(stack.count_events("DeviceRegistered").await, 0);

    // Garbage, a wrong content type, an unknown path's group name: HTTP answers a CMP
    // client reads, never a 500.
    let tls_ca = stack.tls_ca.as_ref().unwrap().display().to_string();
    let url = stack.url("/.well-known/cmp/p/line-7");
    let (ok, out) = sh(
        &stack,
        format!(
            "head -c 300 /dev/urandom > garbage.der; \
             curl --silent --cacert {tls_ca} -H 'Content-Type: application/pkixcmp' \
             --data-binary @garbage.der -o answer.der -w '%{{http_code}} %{{content_type}}' '{url}'; echo; \
             openssl asn1parse -inform DER -in answer.der | grep -c 'INTEGER' ; \
             curl --silent --cacert {tls_ca} -H 'Content-Type: text/plain' --data x -o /dev/null -w '%{{http_code}}' '{url}'"
        ),
    )
    .await;
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "200 application/pkixcmp", "{out}");
    assert_eq!(lines.last().copied(), Some("415"), "{out}");
    assert_eq!(stack.count_events("DeviceRegistered").await, 0);
}

/// `openssl ocsp` about `cert` at the responder the certificate names, until it answers
/// `expected` (the read models trail the events by moments) or `PATIENCE` passes: what it
/// said last.
async fn ocsp_until(stack: &Stack, cert: &str, expected: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let (_, out) = sh(
            stack,
            format!(
                "openssl ocsp -issuer ca.pem -cert {cert} -url $(openssl x509 -in {cert} -noout -ocsp_uri) \
                 -CAfile ca.pem 2>&1"
            ),
        )
        .await;
        if out.contains(&format!(": {expected}")) || started.elapsed() > PATIENCE {
            return out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn openssl_cmp_renews_with_kur_and_revokes_with_rr_signed_by_the_device_s_certificate() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    let (ok, out) = sh(
        &stack,
        "openssl ecparam -genkey -name prime256v1 -noout -out device.key && \
         openssl ecparam -genkey -name prime256v1 -noout -out renewed.key"
            .into(),
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = openssl_cmp(
        &stack,
        "line-7",
        &serial,
        &device_key,
        &format!("-cmd ir -subject /CN={serial} -newkey device.key -certout device.pem"),
    )
    .await;
    assert!(ok, "ir failed: {out}");
    // The certificate must be known to the status read model before it authenticates.
    assert!(ocsp_until(&stack, "device.pem", "good")
        .await
        .contains(": good"));

    // kur, signed with the current certificate; the answer is checked against the CA that
    // certified the api's CMP signer (-trusted), not with a secret.
    let tls_ca = stack.tls_ca.as_ref().unwrap().display().to_string();
    let server = stack.address.trim_start_matches("https://").to_owned();
    let signed = |args: String| {
        format!(
            "openssl cmp -server {server} -path .well-known/cmp/p/line-7 -tls_used \
             -tls_trusted {tls_ca} -trusted ca.pem -total_timeout {} {args} 2>&1",
            PATIENCE.as_secs()
        )
    };
    let (ok, out) = sh(
        &stack,
        signed(
            "-cmd kur -cert device.pem -key device.key -newkey renewed.key -certout renewed.pem"
                .into(),
        ),
    )
    .await;
    println!("openssl cmp -cmd kur:\n{out}");
    assert!(ok, "kur failed: {out}");
    assert!(out.contains("received KUP"), "{out}");
    assert_certificate_for(&stack, "renewed.pem", "renewed.key", &serial, "ca.pem").await;
    assert_eq!(stack.count_events("CertificateRenewalRequested").await, 1);
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
    // The renewed certificate supersedes the one that asked.
    assert!(ocsp_until(&stack, "device.pem", "revoked")
        .await
        .contains(": revoked"));

    // The superseded certificate renews nothing more (the device decides from its events).
    let (ok, out) = sh(
        &stack,
        signed(
            "-cmd kur -cert device.pem -key device.key -newkey device.key -certout stale.pem"
                .into(),
        ),
    )
    .await;
    assert!(!ok, "{out}");
    assert!(out.contains("certRevoked"), "{out}");
    assert!(!stack.dir.join("stale.pem").exists());

    // rr, signed with the renewed certificate, revokes it: OCSP says so.
    assert!(ocsp_until(&stack, "renewed.pem", "good")
        .await
        .contains(": good"));
    let (ok, out) = sh(
        &stack,
        signed(
            "-cmd rr -cert renewed.pem -key renewed.key -oldcert renewed.pem -revreason 1".into(),
        ),
    )
    .await;
    println!("openssl cmp -cmd rr:\n{out}");
    assert!(ok, "rr failed: {out}");
    let said = ocsp_until(&stack, "renewed.pem", "revoked").await;
    assert!(
        said.contains(": revoked") && said.contains("Reason: keyCompromise"),
        "{said}"
    );
    // Revoked: it neither renews nor revokes anything more.
    let (ok, out) = sh(
        &stack,
        signed("-cmd rr -cert renewed.pem -key renewed.key -oldcert renewed.pem".into()),
    )
    .await;
    assert!(!ok, "{out}");
}
