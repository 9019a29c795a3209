//! Each tenant its own trust anchor, every CA key in a SoftHSM2 token: operators create a
//! tenant's CAs over the api, the worker makes their keys in the token and their certificates
//! (the root's self-signed, the issuing CA's by the root), and the tenant's devices are issued
//! by its own issuing CA from then on. OpenSSL, as the tenant's relying party holding only its
//! root, accepts its devices and refuses another tenant's, also when that tenant's issuing CA
//! is offered; a tenant without CAs of its own is issued by the platform's CA as before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::SoftHsmToken;
use uuid::Uuid;

use crate::helpers::{registration, unique_serial, Stack, OTHER_TENANT, TENANT};
use crate::openssl::{openssl, path};
use crate::provisioning::PATIENCE;

/// The worker, its tenant CA keys made in a token of the test's own.
pub(crate) fn spawn_worker_with_key_store(stack: &mut Stack, token: &SoftHsmToken) -> usize {
    let mut env = token.env();
    env.extend([
        ("CA_KEY_STORE", format!("pkcs11:token={}", token.label)),
        ("CA_STEWARD_INTERVAL_MS", "200".to_owned()),
    ]);
    stack.spawn_worker_with_env(&env)
}

/// Creates `tenant`'s CAs as an operator does; the answer's body.
pub(crate) async fn create_cas(stack: &Stack, tenant: &str) -> Value {
    let response = stack
        .client
        .post(stack.url(&format!("/admin/tenants/{tenant}/cas")))
        .bearer_auth(stack.operator_token("admin"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({
            "root": {"common_name": format!("{tenant} Root CA"), "curve": "P-384", "validity_days": 3650},
            "issuing": {"common_name": format!("{tenant} Issuing CA"), "validity_days": 730}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

/// Starts a rotation of `tenant`'s issuing CA as an operator does; the answer.
pub(crate) async fn rotate(stack: &Stack, tenant: &str) -> reqwest::Response {
    stack
        .client
        .post(stack.url(&format!("/admin/tenants/{tenant}/cas/rotate")))
        .bearer_auth(stack.operator_token("admin"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

/// Two tenants' CAs (`TENANT`'s and `OTHER_TENANT`'s) made by a worker whose keys are in a
/// token of the test's own: the token (keep it as long as the stack) and each tenant's chain.
pub(crate) async fn two_tenants_with_cas(stack: &mut Stack) -> (SoftHsmToken, Value, Value) {
    let token = SoftHsmToken::new(&stack.dir, "fleet");
    spawn_worker_with_key_store(stack, &token);
    create_cas(stack, TENANT).await;
    create_cas(stack, OTHER_TENANT).await;
    let acme = chain_with(stack, TENANT, 1).await;
    let globex = chain_with(stack, OTHER_TENANT, 1).await;
    (token, acme, globex)
}

/// `tenant`'s chain (`GET /v1/ca`) once the worker has made its root and `issuing` issuing
/// CAs.
pub(crate) async fn chain_with(stack: &Stack, tenant: &str, issuing: usize) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = stack
            .get("/v1/ca", &stack.token(tenant, "devices:read"))
            .await;
        if response.status() == 200 {
            let chain: Value = response.json().await.unwrap();
            if chain["issuing"].as_array().unwrap().len() == issuing {
                return chain;
            }
        } else {
            assert_eq!(response.status(), 404);
        }
        assert!(Instant::now() < deadline, "{tenant}'s CAs were never made");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers a device of `tenant` and waits for its certificate; the device.
pub(crate) async fn provisioned_device_of(stack: &Stack, tenant: &str) -> Value {
    let response = stack
        .client
        .post(stack.url("/v1/devices"))
        .bearer_auth(stack.token(tenant, "devices:write"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&registration(&unique_serial()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let device: Value = stack
            .get(
                &format!("/v1/devices/{id}?min_version=3&wait=2"),
                &stack.token(tenant, "devices:read"),
            )
            .await
            .json()
            .await
            .unwrap();
        if device["status"] == "provisioned" {
            return device;
        }
        assert!(
            Instant::now() < deadline,
            "{tenant}'s device never provisioned: {device}"
        );
    }
}

/// Whether OpenSSL, trusting only `root`, accepts `device` with `intermediates` offered.
pub(crate) async fn verifies(
    stack: &Stack,
    root: &str,
    intermediates: &str,
    device: &str,
) -> (bool, String) {
    let name = Uuid::new_v4().simple().to_string();
    let dir = stack.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, pem) in [
        ("root.pem", root),
        ("untrusted.pem", intermediates),
        ("device.pem", device),
    ] {
        std::fs::write(dir.join(file), pem).unwrap();
    }
    openssl(vec![
        "verify".into(),
        "-x509_strict".into(),
        "-CAfile".into(),
        path(&dir.join("root.pem")),
        "-untrusted".into(),
        path(&dir.join("untrusted.pem")),
        path(&dir.join("device.pem")),
    ])
    .await
}

#[tokio::test]
async fn each_tenant_s_devices_chain_to_its_own_root_only_with_keys_in_the_token() {
    let mut stack = Stack::start().await;
    let (_token, acme, globex) = two_tenants_with_cas(&mut stack).await;
    assert_ne!(acme["root"], globex["root"]);
    assert_eq!(acme["issuing"].as_array().unwrap().len(), 1);

    let acme_device = provisioned_device_of(&stack, TENANT).await;
    let globex_device = provisioned_device_of(&stack, OTHER_TENANT).await;
    let pem = |device: &Value| device["certificate"]["pem"].as_str().unwrap().to_owned();
    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let acme_issuing = acme["issuing"][0]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_issuing = globex["issuing"][0]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();

    let (ok, said) = verifies(
        &stack,
        &text(&acme, "root"),
        &acme_issuing,
        &pem(&acme_device),
    )
    .await;
    assert!(ok, "acme's relying party accepts acme's device: {said}");
    let (ok, said) = verifies(
        &stack,
        &text(&acme, "root"),
        &globex_issuing,
        &pem(&globex_device),
    )
    .await;
    assert!(!ok, "and refuses globex's, its issuing CA offered: {said}");
    let (ok, said) = verifies(
        &stack,
        &text(&globex, "root"),
        &globex_issuing,
        &pem(&globex_device),
    )
    .await;
    assert!(ok, "{said}");
    // The chain bundle is what a relying party needs besides the root.
    let (ok, said) = verifies(
        &stack,
        &text(&acme, "root"),
        &text(&acme, "chain"),
        &pem(&acme_device),
    )
    .await;
    assert!(ok, "{said}");
    let issuer: Option<String> = sqlx::query_scalar(
        "SELECT payload->'certificate'->>'issuer' FROM events
          WHERE aggregate_id = $1 AND event_type = 'CertificateIssued'",
    )
    .bind(acme_device["id"].as_str().unwrap())
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        issuer.as_deref(),
        acme["issuing"][0]["id"].as_str(),
        "the device's certificate records its issuing CA"
    );

    // Operators see the device among the live certificates of acme's issuing CA.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let cas = cas_of(&stack, TENANT).await;
        if cas["cas"][1]["live_certificates"] == 1 {
            assert!(
                cas["cas"][0].get("live_certificates").is_none(),
                "a root issues no device"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never counted: {cas}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every CA key is in the token, named by the CA's events; nothing else was recorded.
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'key' FROM events WHERE aggregate_type = 'ca' AND event_type = 'CaCertified'",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(keys.len(), 4);
    for key in &keys {
        assert!(key.starts_with("pkcs11:token=fleet;object=ca-"), "{key}");
    }
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload::text FROM events WHERE aggregate_type = 'ca'")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert!(payloads.iter().all(|p| !p.contains("PRIVATE KEY")));

    // A tenant without CAs of its own: the platform's CA, as before.
    let initech = provisioned_device_of(&stack, "initech").await;
    let (ok, said) = verifies(
        &stack,
        &stack.ca_cert_pem,
        &stack.ca_cert_pem,
        &pem(&initech),
    )
    .await;
    assert!(ok, "{said}");
}

/// Writes `crl` (DER) as PEM into `dir/name`; its path.
async fn crl_pem(dir: &std::path::Path, name: &str, der: &[u8]) -> String {
    let der_path = dir.join(format!("{name}.der"));
    let pem_path = dir.join(format!("{name}.pem"));
    std::fs::write(&der_path, der).unwrap();
    let (ok, said) = openssl(
        [
            "crl",
            "-inform",
            "DER",
            "-in",
            &path(&der_path),
            "-out",
            &path(&pem_path),
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(ok, "{said}");
    path(&pem_path)
}

/// `openssl verify -crl_check_all` of `device` against `root`, `issuing` offered, with both
/// CRLs: what a relying party that checks the whole chain's revocation concludes.
async fn verify_with_crls(
    stack: &Stack,
    root: &str,
    issuing: &str,
    device: &str,
    crls: &[&[u8]],
) -> (bool, String) {
    let dir = stack.dir.join(format!("crls-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, pem) in [
        ("root.pem", root),
        ("issuing.pem", issuing),
        ("device.pem", device),
    ] {
        std::fs::write(dir.join(file), pem).unwrap();
    }
    let mut args: Vec<String> = ["verify", "-crl_check_all", "-CAfile"]
        .map(String::from)
        .to_vec();
    args.push(path(&dir.join("root.pem")));
    args.extend(["-untrusted".to_owned(), path(&dir.join("issuing.pem"))]);
    for (n, der) in crls.iter().enumerate() {
        args.push("-CRLfile".into());
        args.push(crl_pem(&dir, &format!("crl{n}"), der).await);
    }
    args.push(path(&dir.join("device.pem")));
    openssl(args).await
}

/// The tenant's CAs as operators read them.
pub(crate) async fn cas_of(stack: &Stack, tenant: &str) -> Value {
    stack
        .get(
            &format!("/admin/tenants/{tenant}/cas"),
            &stack.operator_token("admin"),
        )
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn tenant_cas_publish_crls_and_a_revoked_issuing_ca_is_replaced_at_once() {
    use crate::crl::{crl_path_named_by, wait_for_crl};
    let mut stack = Stack::start().await;
    let token = SoftHsmToken::new(&stack.dir, "fleet");
    let mut env = token.env();
    env.extend([
        ("CA_KEY_STORE", format!("pkcs11:token={}", token.label)),
        ("CA_STEWARD_INTERVAL_MS", "200".to_owned()),
        ("CRL_MIN_INTERVAL_MS", "200".to_owned()),
    ]);
    stack.spawn_worker_with_env(&env);
    create_cas(&stack, TENANT).await;
    let chain = chain_with(&stack, TENANT, 1).await;
    let root = chain["root"].as_str().unwrap().to_owned();
    let issuing = chain["issuing"][0]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let cas = cas_of(&stack, TENANT).await;
    let root_crl_path = format!("/pki/{}/crl", cas["cas"][0]["id"].as_str().unwrap());
    let issuing_serial = cas["cas"][1]["serial"].as_str().unwrap().to_owned();

    // Each CA publishes its CRL; the device's names its issuing CA's, and the chain verifies
    // with the revocation of every link checked.
    let device = provisioned_device_of(&stack, TENANT).await;
    let device_pem = device["certificate"]["pem"].as_str().unwrap().to_owned();
    let issuing_crl_path = crl_path_named_by(&device_pem);
    assert_eq!(
        issuing_crl_path,
        format!("/pki/{}/crl", chain["issuing"][0]["id"].as_str().unwrap())
    );
    let patience = Duration::from_secs(10);
    let issuing_crl = wait_for_crl(&stack, &issuing_crl_path, patience, |_| true).await;
    let root_crl = wait_for_crl(&stack, &root_crl_path, patience, |_| true).await;
    let (ok, said) = verify_with_crls(
        &stack,
        &root,
        &issuing,
        &device_pem,
        &[&root_crl.der, &issuing_crl.der],
    )
    .await;
    assert!(ok, "{said}");

    // The tenant's issuing CA answers OCSP (its signer: the api's key, certified by it).
    let ocsp_url = format!(
        "{}/pki/{}/ocsp",
        stack.pki_address,
        chain["issuing"][0]["id"].as_str().unwrap()
    );
    let status = wait_for_ocsp(&stack, &root, &issuing, &device_pem, &ocsp_url, ": good").await;
    assert!(status.contains("Response verify OK"), "{status}");

    // The issuing CA is revoked: OCSP says every certificate it issued is revoked, the root's
    // CRL lists it, the chain no longer verifies, and the tenant's next issuing CA is made at
    // once, which the next device chains to.
    let revoked = stack
        .client
        .post(stack.url(&format!("/admin/tenants/{TENANT}/cas/1/revoke")))
        .bearer_auth(stack.operator_token("admin"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({"reason": "cACompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let revoked: Value = revoked.json().await.unwrap();
    assert_eq!(revoked["cas"][1]["state"], "revoked");
    assert_eq!(revoked["cas"][2]["state"], "created", "its replacement");
    let status = wait_for_ocsp(&stack, &root, &issuing, &device_pem, &ocsp_url, ": revoked").await;
    assert!(status.contains("Reason: cACompromise"), "{status}");
    let root_crl = wait_for_crl(&stack, &root_crl_path, patience, |crl| {
        crl.serials.contains(&issuing_serial)
    })
    .await;
    let (ok, said) = verify_with_crls(
        &stack,
        &root,
        &issuing,
        &device_pem,
        &[&root_crl.der, &issuing_crl.der],
    )
    .await;
    assert!(!ok && said.contains("revoked"), "{said}");

    let chain = chain_with(&stack, TENANT, 1).await;
    assert_eq!(chain["issuing"][0]["generation"], 2);
    let replacement = chain["issuing"][0]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = provisioned_device_of(&stack, TENANT).await;
    let device_pem = device["certificate"]["pem"].as_str().unwrap().to_owned();
    let (ok, said) = verifies(&stack, &root, &replacement, &device_pem).await;
    assert!(ok, "the next device chains to the replacement: {said}");
}

/// Asks `url` with `openssl ocsp` about `device` (issued by `issuing`, under `root`) until the
/// answer holds `expected`, for a few seconds; what OpenSSL said.
async fn wait_for_ocsp(
    stack: &Stack,
    root: &str,
    issuing: &str,
    device: &str,
    url: &str,
    expected: &str,
) -> String {
    let dir = stack.dir.join(format!("ocsp-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, pem) in [
        ("root.pem", root),
        ("issuing.pem", issuing),
        ("device.pem", device),
    ] {
        std::fs::write(dir.join(file), pem).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, said) = openssl(
            [
                "ocsp",
                "-issuer",
                &path(&dir.join("issuing.pem")),
                "-cert",
                &path(&dir.join("device.pem")),
                "-url",
                url,
                "-CAfile",
                &path(&dir.join("root.pem")),
                "-verify_other",
                &path(&dir.join("issuing.pem")),
            ]
            .map(String::from)
            .to_vec(),
        )
        .await;
        if said.contains(expected) {
            return said;
        }
        assert!(
            Instant::now() < deadline,
            "OCSP never said {expected:?}: {said}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers a device with `token` (its tenant's) without waiting for its certificate, as a
/// well-behaved client does: a request the api sheds (503 with `Retry-After`: a dependency or
/// an in-flight bound, never the CAs, which registration does not touch) is sent again, same
/// key and body, after the time it names. Its id, or what refused it otherwise.
async fn register_with(stack: &Stack, token: &str) -> Result<String, String> {
    let key = Uuid::new_v4().to_string();
    let body = registration(&unique_serial());
    for _ in 0..5 {
        let response = stack
            .client
            .post(stack.url("/v1/devices"))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match (status.as_u16(), retry_after) {
            (202, _) => {
                return Ok(response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned())
            }
            (503, Some(seconds)) => {
                let problem = response.text().await.unwrap_or_default();
                println!("shed, retried after {seconds} s: {problem}");
                tokio::time::sleep(Duration::from_secs(seconds)).await;
            }
            _ => {
                return Err(format!(
                    "{status}: {}",
                    response.text().await.unwrap_or_default()
                ))
            }
        }
    }
    Err("shed five times".to_owned())
}

/// Registrations at 100/s across a rotation: every one is accepted (a request shed for load,
/// 503 with `Retry-After`, is sent again as clients are told to; any other answer fails the
/// test), every device is issued, each certificate by the CA that issued at its signing time,
/// all chain to the tenant's unchanged root, and the old CA's still answer `good`.
#[tokio::test]
async fn a_rotation_under_load_fails_no_request_and_each_certificate_has_the_ca_active_when_signed()
{
    let mut stack = Stack::start().await;
    let token = SoftHsmToken::new(&stack.dir, "fleet");
    spawn_worker_with_key_store(&mut stack, &token);
    create_cas(&stack, TENANT).await;
    let before = chain_with(&stack, TENANT, 1).await;
    let writer = stack.token(TENANT, "devices:write");

    // Registrations at 100/s for 12 s; the rotation is asked for 3 s in.
    let stack = Arc::new(stack);
    let mut registrations = tokio::task::JoinSet::new();
    let mut every = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut rotated = false;
    while started.elapsed() < Duration::from_secs(12) {
        every.tick().await;
        let (shared, writer) = (stack.clone(), writer.clone());
        registrations.spawn(async move { register_with(&shared, &writer).await });
        if !rotated && started.elapsed() >= Duration::from_secs(3) {
            rotated = true;
            assert_eq!(rotate(&stack, TENANT).await.status(), 202);
        }
    }
    let mut ids = Vec::new();
    while let Some(registered) = registrations.join_next().await {
        ids.push(
            registered
                .unwrap()
                .expect("no registration fails across the rotation"),
        );
    }
    assert!(ids.len() > 1_000, "{} registrations", ids.len());

    // Every device provisioned; each certificate by the CA that issued at its signing time.
    let deadline = Instant::now() + PATIENCE * 2;
    let issued = loop {
        let rows = issued_certificates(&stack).await;
        if rows.len() == ids.len() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} issued",
            rows.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let after = chain_with(&stack, TENANT, 2).await;
    let cas = cas_of(&stack, TENANT).await;
    let (old, new) = (&cas["cas"][1], &cas["cas"][2]);
    assert_eq!(old["state"], "rotating");
    assert_eq!(new["state"], "active");
    let signed_by = issued_by_the_ca_active_when_signed(&cas, &issued);
    let (by_old, by_new) = (signed_by[&1], signed_by[&2]);
    assert!(
        by_old > 0 && by_new > 0,
        "{by_old} by the old CA, {by_new} by the new one"
    );

    // Every certificate chains to the tenant's root, through the chain it publishes now
    // (both issuing CAs); the old CA's still answer `good`.
    let dir = stack.dir.join("rotation");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("root.pem"), after["root"].as_str().unwrap()).unwrap();
    std::fs::write(dir.join("chain.pem"), after["chain"].as_str().unwrap()).unwrap();
    let mut args: Vec<String> = ["verify", "-CAfile"].map(String::from).to_vec();
    args.push(path(&dir.join("root.pem")));
    args.extend(["-untrusted".to_owned(), path(&dir.join("chain.pem"))]);
    for (n, (pem, _)) in issued.iter().enumerate() {
        let file = dir.join(format!("{n}.pem"));
        std::fs::write(&file, pem).unwrap();
        args.push(path(&file));
    }
    let (ok, said) = openssl(args).await;
    assert!(ok, "{said}");
    assert_eq!(said.matches(": OK").count(), issued.len());
    assert_eq!(after["root"], before["root"], "the root never changes");
    let (old_pem, _) = issued
        .iter()
        .find(|(_, issuer)| issuer == old["id"].as_str().unwrap())
        .unwrap();
    let old_issuing = old["certificate"].as_str().unwrap();
    let url = format!(
        "{}/pki/{}/ocsp",
        stack.pki_address,
        old["id"].as_str().unwrap()
    );
    let root = after["root"].as_str().unwrap();
    wait_for_ocsp(&stack, root, old_issuing, old_pem, &url, ": good").await;
}

/// Asserts that each of `issued` (certificate PEM, issuer id) was signed by the tenant's
/// issuing CA that issued at its signing time (`cas`: the tenant's CAs as operators read
/// them); how many each generation signed.
fn issued_by_the_ca_active_when_signed(
    cas: &Value,
    issued: &[(String, String)],
) -> std::collections::HashMap<u64, usize> {
    let issuing: Vec<(u64, String, chrono::DateTime<chrono::Utc>)> = cas["cas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ca| ca["role"] == "issuing" && ca.get("issues_from").is_some())
        .map(|ca| {
            (
                ca["generation"].as_u64().unwrap(),
                ca["id"].as_str().unwrap().to_owned(),
                ca["issues_from"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let mut signed = std::collections::HashMap::new();
    for (pem, issuer) in issued {
        let der = pem::parse(pem).unwrap().into_contents();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        // The CA signs with notBefore five minutes back (devices' clock skew); X.509 times
        // have second precision, so the takeover's own second may hold either CA.
        let signed_at = chrono::DateTime::from_timestamp(cert.validity().not_before.timestamp(), 0)
            .unwrap()
            + chrono::Duration::minutes(5);
        let (generation, _, from) = issuing
            .iter()
            .find(|(_, id, _)| id == issuer)
            .unwrap_or_else(|| panic!("{issuer} is none of the tenant's issuing CAs"));
        assert!(
            signed_at >= *from - chrono::Duration::seconds(1),
            "generation {generation} signed at {signed_at}, before it took over at {from}"
        );
        if let Some((_, _, next)) = issuing.iter().find(|(g, _, _)| *g == generation + 1) {
            assert!(
                signed_at <= *next,
                "generation {generation} signed at {signed_at}, after its successor took over at {next}"
            );
        }
        *signed.entry(*generation).or_insert(0) += 1;
    }
    signed
}

/// Every device certificate recorded so far: (PEM, issuer id).
async fn issued_certificates(stack: &Stack) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT payload->'certificate'->>'pem', payload->'certificate'->>'issuer' FROM events
          WHERE aggregate_type = 'device' AND event_type = 'CertificateIssued'",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_worker_killed_while_making_cas_leaves_none_half_made() {
    let mut stack = Stack::start().await;
    // Keys in a directory of key files here: SoftHSM2's file store is not safe against a
    // process killed while it writes (its token can be left unreadable, which a real HSM's
    // atomic key generation does not do); a key file is written whole or not at all.
    let keys = stack.dir.join("ca-keys");
    create_cas(&stack, TENANT).await;

    // A creation that crashed after making the root's key: the key is in the store under the
    // name the CA's events give it, and no certificate was recorded.
    let tenant = domain::TenantId::parse(TENANT).unwrap();
    let root_key = domain::TenantCasId::of(&tenant).key_name(domain::CaGeneration::ROOT);
    let crashed = stack.dir.join("crashed");
    pki::dev_ca::write_dev_ca(&crashed, "crashed", false).unwrap();
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::copy(crashed.join("ca.key"), keys.join(format!("{root_key}.key"))).unwrap();
    let env = [
        ("CA_KEY_STORE", path(&keys)),
        ("CA_STEWARD_INTERVAL_MS", "200".to_owned()),
    ];

    // Workers killed (SIGKILL) at moments of the creation and of rotations.
    let writer = stack.token(TENANT, "devices:write");
    for (round, after) in [150u64, 400, 900, 250, 600].into_iter().enumerate() {
        let worker = stack.spawn_worker_with_env(&env);
        if round > 0 {
            let _ = rotate(&stack, TENANT).await;
        }
        for _ in 0..5 {
            register_with(&stack, &writer).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(after)).await;
        stack.kill_worker(worker);
    }
    stack.spawn_worker_with_env(&env);

    // Every CA made once, with the key its events name (the root's: the one made before the
    // crash), none left half-made.
    let deadline = Instant::now() + PATIENCE;
    let cas = loop {
        let cas = cas_of(&stack, TENANT).await;
        let all = cas["cas"].as_array().unwrap();
        if all.iter().all(|ca| ca["state"] != "created") {
            break cas;
        }
        assert!(Instant::now() < deadline, "CAs left unmade: {cas}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let key_of = |pem: &str| {
        let der = pem::parse(pem).unwrap().into_contents();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.public_key().raw.to_vec()
    };
    let premade = std::fs::read_to_string(crashed.join("ca.pem")).unwrap();
    assert_eq!(
        key_of(cas["cas"][0]["certificate"].as_str().unwrap()),
        key_of(&premade),
        "the key made before the crash"
    );
    let certified: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->>'key', (payload->>'generation')::bigint FROM events
          WHERE aggregate_type = 'ca' AND event_type = 'CaCertified' ORDER BY 2",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let generations: Vec<i64> = certified.iter().map(|(_, g)| *g).collect();
    let expected: Vec<i64> = (0..generations.len() as i64).collect();
    assert_eq!(generations, expected, "each CA certified once, in order");
    for (key, generation) in &certified {
        assert!(key.ends_with(&format!("-{generation}")), "{key}");
    }
    let active = cas["cas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ca| ca["state"] == "active" && ca["role"] == "issuing")
        .count();
    assert_eq!(active, 1, "{cas}");

    // Every device issued, each by the CA that issued when it was signed.
    let deadline = Instant::now() + PATIENCE;
    let issued = loop {
        let issued = issued_certificates(&stack).await;
        if issued.len() == 25 {
            break issued;
        }
        assert!(Instant::now() < deadline, "{} of 25 issued", issued.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    issued_by_the_ca_active_when_signed(&cas, &issued);
}
