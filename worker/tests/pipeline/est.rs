//! Devices enroll themselves over EST (RFC 7030), with curl as the device and OpenSSL as its
//! toolbox and relying party, against the api over TLS and real workers: an operator creates
//! an enrollment group; a device derives its key from the group key, makes a key and a CSR,
//! and `simpleenroll`s with HTTP Basic: 202 with `Retry-After`, then (repeated) 200 with a
//! certs-only PKCS#7 holding a certificate for its key, CN = serial, chaining to `cacerts`;
//! the device is registered once, with the group's model and labels, however often it asked.
//! It then `simplereenroll`s over mutual TLS with that certificate for a new key; without a
//! client certificate, or with another CA's, it is refused. Every wrong input is a clear EST
//! error, never a 500, and no key appears in an event. A tenant with CAs of its own gets its
//! chain from `cacerts`, and its devices recover with their group credential once its issuing
//! CA is revoked. An independent client, strongSwan's
//! `pki --est` (its own TLS, HTTP and base64: RFC 8951's, one line), enrolls and re-enrolls a
//! device the same way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{unique_serial, Stack, TENANT};
use crate::provisioning::PATIENCE;

/// Runs `script` with `sh` in the stack's directory: whether it succeeded, and its output.
pub(crate) async fn sh(stack: &Stack, script: String) -> (bool, String) {
    crate::openssl::shell(&stack.dir, script).await
}

/// What one curl exchange got: the HTTP status (0 if none), the headers, the body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// `curl --cacert <the api's TLS CA> <args…> https://…<path>`, the body saved as `<out>`.
async fn curl(stack: &Stack, args: &str, path: &str, out: &str) -> Answer {
    let tls_ca = stack.tls_ca.as_ref().unwrap().display().to_string();
    let url = stack.url(path);
    let (_, status) = sh(
        stack,
        format!(
            "curl --silent --max-time 20 --cacert {tls_ca} {args} -D {out}.headers -o {out} \
             --write-out '%{{http_code}}' '{url}'"
        ),
    )
    .await;
    let read = |name: String| std::fs::read_to_string(stack.dir.join(name)).unwrap_or_default();
    Answer {
        status: status.trim().parse().unwrap_or(0),
        headers: read(format!("{out}.headers")),
        body: read(out.to_owned()),
    }
}

/// Creates an enrollment group of `TENANT` as an operator; its key.
pub(crate) async fn create_group(stack: &Stack, name: &str) -> String {
    let created: Value = stack
        .client
        .post(stack.url("/admin/enrollment-groups"))
        .bearer_auth(stack.operator_token("admin"))
        .json(&json!({"name": name, "tenant": TENANT, "model": "gateway-x", "labels": {"site": "lyon", "line": "7"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["group_key"].as_str().unwrap().to_owned()
}

/// The device's key, derived from the group key with OpenSSL as a factory would (README).
pub(crate) async fn derive_device_key(stack: &Stack, group_key: &str, serial: &str) -> String {
    let (ok, out) = sh(
        stack,
        format!(
            "printf %s '{serial}' | openssl dgst -sha256 -mac HMAC \
             -macopt hexkey:$(printf %s '{group_key}' | openssl base64 -d -A | od -An -tx1 | tr -d ' \\n') \
             -binary | openssl base64 -A"
        ),
    )
    .await;
    assert!(ok, "{out}");
    out.trim().to_owned()
}

/// A new P-256 key `<name>.key` and a CSR for it with `subject`, base64 DER in `<name>.b64`,
/// in lines of 64 characters as `openssl base64` writes them: the api accepts wrapped requests
/// (strongSwan's test below sends them on one line, as RFC 8951 does).
async fn key_and_csr(stack: &Stack, name: &str, subject: &str) {
    let (ok, out) = sh(
        stack,
        format!(
            "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout {name}.key -subj '{subject}' -outform DER -out {name}.der 2>&1 && \
             openssl base64 -in {name}.der -out {name}.b64"
        ),
    )
    .await;
    assert!(ok, "{out}");
}

/// Repeats the request until it is no longer 202 (or `PATIENCE` passes): the answers.
async fn until_issued(stack: &Stack, args: &str, path: &str, out: &str) -> Vec<Answer> {
    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        let answer = curl(stack, args, path, out).await;
        let pending = answer.status == 202;
        answers.push(answer);
        if !pending || started.elapsed() > PATIENCE {
            return answers;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a certs-only PKCS#7 body (base64 on one line, RFC 8951: `-A`) with OpenSSL into
/// `<pem>`: what it printed.
async fn open_pkcs7(stack: &Stack, body_file: &str, pem: &str) -> String {
    let (ok, out) = sh(
        stack,
        format!(
            "openssl base64 -d -A -in {body_file} \
             | openssl pkcs7 -inform DER -print_certs -out {pem} && cat {pem}"
        ),
    )
    .await;
    assert!(ok, "{out}");
    out
}

/// The public key of a certificate or a private key, as OpenSSL prints it.
async fn public_key(stack: &Stack, command: &str) -> String {
    let (ok, out) = sh(stack, command.to_owned()).await;
    assert!(ok, "{out}");
    out
}

fn enroll_args(serial: &str, key: &str, csr: &str) -> String {
    format!("-u '{serial}:{key}' -H 'Content-Type: application/pkcs10' --data-binary @{csr}")
}

/// curl's arguments for `simplereenroll` with the certificate `cert` (and its key) as the TLS
/// client certificate, for the CSR (base64) in `csr`.
fn reenroll(cert: &std::path::Path, key: &std::path::Path, csr: &str) -> String {
    format!(
        "--cert {} --key {} -H 'Content-Type: application/pkcs10' --data-binary @{csr}",
        cert.display(),
        key.display()
    )
}

/// The EST stack with a worker whose tenant CA keys are made in a token of the test's own,
/// and `TENANT`'s CAs made, its root in `tenant-root.pem`. Keep the token as long as the stack.
async fn stack_with_tenant_cas() -> (Stack, testkit::SoftHsmToken) {
    use crate::tenant_cas::{chain_with, create_cas, spawn_worker_with_key_store};
    let mut stack = Stack::start_with_est().await;
    let token = testkit::SoftHsmToken::new(&stack.dir, "fleet");
    spawn_worker_with_key_store(&mut stack, &token);
    create_cas(&stack, TENANT).await;
    let chain = chain_with(&stack, TENANT, 1).await;
    std::fs::write(
        stack.dir.join("tenant-root.pem"),
        chain["root"].as_str().unwrap(),
    )
    .unwrap();
    (stack, token)
}

/// A device enrolled through `group` (with the label in the URL): its serial, and its key
/// and certificate files.
async fn enrolled(stack: &Stack, group: &str, group_key: &str) -> (String, PathBuf, PathBuf) {
    let serial = unique_serial();
    let key = derive_device_key(stack, group_key, &serial).await;
    key_and_csr(stack, &serial, &format!("/CN={serial}")).await;
    let answers = until_issued(
        stack,
        &enroll_args(&serial, &key, &format!("{serial}.b64")),
        &format!("/.well-known/est/{group}/simpleenroll"),
        &format!("{serial}.p7"),
    )
    .await;
    let last = answers.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    open_pkcs7(stack, &format!("{serial}.p7"), &format!("{serial}.pem")).await;
    (
        serial.clone(),
        stack.dir.join(format!("{serial}.key")),
        stack.dir.join(format!("{serial}.pem")),
    )
}

/// Waits until `certificate_status` knows the certificate in `pem` (its own projector may
/// be a moment behind the device view that answered 200).
pub(crate) async fn until_status_known(stack: &Stack, pem: &std::path::Path) {
    let (ok, out) = sh(
        stack,
        format!("openssl x509 -in {} -noout -serial", pem.display()),
    )
    .await;
    assert!(ok, "{out}");
    let serial = out.trim().trim_start_matches("serial=").to_lowercase();
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        let known: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM certificate_status WHERE serial = $1")
                .bind(&serial)
                .fetch_optional(&stack.pool)
                .await
                .unwrap();
        if known.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("certificate {serial} never reached certificate_status");
}

#[tokio::test]
async fn a_device_enrolls_with_its_group_credential_once_however_often_it_asks() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    key_and_csr(&stack, "device", &format!("/CN={serial}")).await;
    let args = enroll_args(&serial, &device_key, "device.b64");

    // No label: the group is the one whose key derives the credential.
    let first = curl(&stack, &args, "/.well-known/est/simpleenroll", "first").await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(first.header("retry-after").as_deref(), Some("1"));

    let answers = until_issued(&stack, &args, "/.well-known/est/simpleenroll", "device.p7").await;
    let issued = answers.last().unwrap();
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert!(issued
        .header("content-type")
        .unwrap()
        .starts_with("application/pkcs7-mime; smime-type=certs-only"));
    let printed = open_pkcs7(&stack, "device.p7", "device.pem").await;
    assert!(
        printed.contains(&format!("subject=CN = {serial}")),
        "{printed}"
    );
    assert_eq!(
        public_key(&stack, "openssl x509 -in device.pem -noout -pubkey").await,
        public_key(&stack, "openssl pkey -in device.key -pubout").await,
        "the certificate is for the CSR's key"
    );

    let cacerts = curl(&stack, "", "/.well-known/est/cacerts", "cacerts.p7").await;
    assert_eq!(cacerts.status, 200);
    let attributes = curl(&stack, "", "/.well-known/est/line-7/csrattrs", "csrattrs").await;
    assert_eq!(attributes.status, 200);
    assert_eq!(
        attributes.header("content-type").as_deref(),
        Some("application/csrattrs")
    );
    let (ok, parsed) = sh(
        &stack,
        "openssl base64 -d -A -in csrattrs | openssl asn1parse -inform DER".into(),
    )
    .await;
    assert!(
        ok && parsed.contains("ecdsa-with-SHA256") && parsed.contains("prime256v1"),
        "{parsed}"
    );
    open_pkcs7(&stack, "cacerts.p7", "cacerts.pem").await;
    let (ok, out) = sh(
        &stack,
        "openssl verify -CAfile cacerts.pem device.pem".into(),
    )
    .await;
    assert!(ok && out.contains("device.pem: OK"), "{out}");

    // Repeated after issuance: the same certificate again, and still one device.
    for round in 0..3 {
        let again = curl(
            &stack,
            &args,
            "/.well-known/est/simpleenroll",
            &format!("again{round}"),
        )
        .await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body, issued.body);
    }
    let devices: Value = stack
        .get("/v1/devices?label=line:7&limit=100", &stack.reader())
        .await
        .json()
        .await
        .unwrap();
    let mine: Vec<&Value> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["serial_number"] == serial.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{devices}");
    assert_eq!(mine[0]["model"], "gateway-x");
    assert_eq!(mine[0]["labels"], json!({"line": "7", "site": "lyon"}));
    assert_eq!(mine[0]["status"], "provisioned");
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);

    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%' \
         OR payload::text LIKE '%' || $2 || '%' OR metadata::text LIKE '%' || $1 || '%' \
         OR metadata::text LIKE '%' || $2 || '%'",
    )
    .bind(&group_key)
    .bind(&device_key)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0, "no key in any event");
    let log = stack.worker_log(0);
    assert!(!log.contains(&group_key) && !log.contains(&device_key));
}

#[tokio::test]
async fn a_device_reenrolls_over_mutual_tls_with_its_current_certificate() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let (serial, key, cert) = enrolled(&stack, "line-7", &group_key).await;
    until_status_known(&stack, &cert).await;
    key_and_csr(&stack, "renewed", &format!("/CN={serial}")).await;
    let body = "-H 'Content-Type: application/pkcs10' --data-binary @renewed.b64";
    let with_cert = reenroll(&cert, &key, "renewed.b64");

    // Without a client certificate, and with another CA's, it is refused.
    let anonymous = curl(&stack, body, "/.well-known/est/simplereenroll", "anon").await;
    assert_eq!(anonymous.status, 403, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("TLS client authentication"),
        "{}",
        anonymous.body
    );
    let stranger = testkit::TestCa::new(&stack.dir, "stranger").issue_client(&serial, "stranger");
    let foreign = curl(
        &stack,
        &format!(
            "--cert {} --key {} {body}",
            stranger.cert_path.display(),
            stranger.key_path.display()
        ),
        "/.well-known/est/simplereenroll",
        "foreign",
    )
    .await;
    assert_eq!(foreign.status, 0, "the handshake fails: {}", foreign.body);

    // Another subject is refused: re-enrollment keeps it.
    key_and_csr(&stack, "renamed", "/CN=someone-else").await;
    let renamed = curl(
        &stack,
        &reenroll(&cert, &key, "renamed.b64"),
        "/.well-known/est/simplereenroll",
        "renamed",
    )
    .await;
    assert_eq!(renamed.status, 400, "{}", renamed.body);

    let first = curl(
        &stack,
        &with_cert,
        "/.well-known/est/simplereenroll",
        "first",
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(first.header("retry-after").is_some());
    let answers = until_issued(
        &stack,
        &with_cert,
        "/.well-known/est/simplereenroll",
        "renewed.p7",
    )
    .await;
    let issued = answers.last().unwrap();
    assert_eq!(issued.status, 200, "{}", issued.body);
    let printed = open_pkcs7(&stack, "renewed.p7", "renewed.pem").await;
    assert!(
        printed.contains(&format!("subject=CN = {serial}")),
        "{printed}"
    );
    assert_eq!(
        public_key(&stack, "openssl x509 -in renewed.pem -noout -pubkey").await,
        public_key(&stack, "openssl pkey -in renewed.key -pubout").await,
        "the new certificate is for the new key"
    );
    assert_ne!(
        public_key(&stack, "openssl x509 -in renewed.pem -noout -serial").await,
        public_key(
            &stack,
            &format!("openssl x509 -in {} -noout -serial", cert.display())
        )
        .await,
    );
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn a_csr_the_ca_refuses_is_reported_and_a_new_one_enrolls() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    let (ok, out) = sh(
        &stack,
        format!(
            "openssl req -new -newkey rsa:1024 -nodes -keyout weak.key -subj '/CN={serial}' \
             -outform DER -out weak.der 2>&1 && openssl base64 -in weak.der -out weak.b64"
        ),
    )
    .await;
    assert!(ok, "{out}");
    let path = "/.well-known/est/line-7/simpleenroll";
    let answers = until_issued(
        &stack,
        &enroll_args(&serial, &device_key, "weak.b64"),
        path,
        "weak",
    )
    .await;
    assert_eq!(answers[0].status, 202);
    let refused = answers.last().unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("refused") && refused.body.contains("RSA"),
        "a readable reason: {}",
        refused.body
    );

    // A corrected CSR for the same device enrolls (through the renewal path).
    key_and_csr(&stack, "fixed", &format!("/CN={serial}")).await;
    let answers = until_issued(
        &stack,
        &enroll_args(&serial, &device_key, "fixed.b64"),
        path,
        "fixed.p7",
    )
    .await;
    assert_eq!(answers.last().unwrap().status, 200);
    open_pkcs7(&stack, "fixed.p7", "fixed.pem").await;
    assert_eq!(
        public_key(&stack, "openssl x509 -in fixed.pem -noout -pubkey").await,
        public_key(&stack, "openssl pkey -in fixed.key -pubout").await,
    );
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn every_wrong_enrollment_is_a_clear_est_error() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    key_and_csr(&stack, "device", &format!("/CN={serial}")).await;
    key_and_csr(&stack, "misnamed", "/CN=not-the-serial").await;
    std::fs::write(stack.dir.join("garbage.b64"), "this is not base64 !!!").unwrap();
    std::fs::write(stack.dir.join("notcsr.b64"), "aGVsbG8gd29ybGQ=").unwrap();
    let path = "/.well-known/est/line-7/simpleenroll";
    // A key of the right form (base64 of 32 bytes), but not this device's.
    let wrong_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    let cases = [
        (enroll_args(&serial, wrong_key, "device.b64"), path, 401, "not a credential"),
        (enroll_args(&serial, "d3Jvbmcta2V5", "device.b64"), path, 401, "HTTP Basic"),
        (
            "-H 'Content-Type: application/pkcs10' --data-binary @device.b64".to_owned(),
            path,
            401,
            "HTTP Basic",
        ),
        // An unknown group is answered as a wrong credential: whether a group exists is not
        // said.
        (enroll_args(&serial, &device_key, "device.b64"), "/.well-known/est/no-such-group/simpleenroll", 401, "not a credential"),
        (enroll_args(&format!("{serial}@no-such-group"), &device_key, "device.b64"), "/.well-known/est/simpleenroll", 401, "not a credential"),
        (enroll_args(&format!("{serial}@line-8"), &device_key, "device.b64"), path, 401, "not a credential"),
        (enroll_args(&serial, &device_key, "misnamed.b64"), path, 400, "CN"),
        (enroll_args(&serial, &device_key, "garbage.b64"), path, 400, "base64"),
        (enroll_args(&serial, &device_key, "notcsr.b64"), path, 400, "not a certificate request"),
        (
            format!("-u '{serial}:{device_key}' -H 'Content-Type: text/plain' --data-binary @device.b64"),
            path,
            415,
            "application/pkcs10",
        ),
    ];
    for (index, (args, path, status, says)) in cases.iter().enumerate() {
        let answer = curl(&stack, args, path, &format!("case{index}")).await;
        assert_eq!(answer.status, *status, "case {index}: {}", answer.body);
        assert!(answer.body.contains(says), "case {index}: {}", answer.body);
        assert!(answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"));
        if *status == 401 {
            assert!(answer
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic"));
        }
        assert!(!answer.body.contains(&device_key) && !answer.body.contains(&group_key));
    }
    // Nothing was registered by any of them.
    assert_eq!(stack.count_events("DeviceRegistered").await, 0);

    let disabled = stack
        .client
        .post(stack.url("/admin/enrollment-groups/line-7/disable"))
        .bearer_auth(stack.operator_token("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let refused = curl(
        &stack,
        &enroll_args(&serial, &device_key, "device.b64"),
        path,
        "disabled",
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("disabled"), "{}", refused.body);
    assert_eq!(stack.count_events("DeviceRegistered").await, 0);
}

/// Runs strongSwan's `pki` (its own EST client, TLS stack and base64 codec, nothing shared
/// with curl or OpenSSL) with `args` in the stack's directory: whether it succeeded, and what
/// it printed (its log is on stderr; `> file` keeps what it writes on stdout).
async fn pki(stack: &Stack, args: String) -> (bool, String) {
    let (installed, _) = sh(stack, "command -v pki".into()).await;
    assert!(
        installed,
        "strongSwan's pki is not installed: scripts/test-clients installs it (scripts/test runs it)"
    );
    sh(stack, format!("pki {args}")).await
}

/// A new P-256 key `<name>.key` and a DER CSR `<name>.csr` for it with CN = `serial`, both
/// made by strongSwan's `pki`, as a device using it would.
async fn strongswan_key_and_csr(stack: &Stack, name: &str, serial: &str) {
    let (ok, out) = pki(
        stack,
        format!(
            "--gen --type ecdsa --size 256 --outform pem > {name}.key && \
             pki --req --type ecdsa --in {name}.key --dn 'CN={serial}' --outform der > {name}.csr"
        ),
    )
    .await;
    assert!(ok, "{out}");
}

/// Asserts that `pki --est` (what it printed: `out`) got a certificate it trusts, after a
/// 202 when `polled`, and printed no `secret`.
fn assert_pki_issued(out: &str, polled: bool, secret: Option<&str>) {
    if polled {
        assert!(
            out.contains("EST request pending, polling"),
            "202 while the worker issues it: {out}"
        );
    }
    assert!(
        out.to_lowercase().contains("issued certificate is trusted"),
        "{out}"
    );
    if let Some(secret) = secret {
        assert!(!out.contains(secret), "pki logs no credential");
    }
}

/// Asserts that the certificate `pem` is for CN = `serial` and the key `key`, and chains to
/// the fleet CA (OpenSSL's judgement).
async fn assert_certificate_for(stack: &Stack, pem: &str, key: &str, serial: &str) {
    let (ok, subject) = sh(stack, format!("openssl x509 -in {pem} -noout -subject")).await;
    assert!(
        ok && subject.contains(&format!("CN = {serial}")),
        "{subject}"
    );
    assert_eq!(
        public_key(stack, &format!("openssl x509 -in {pem} -noout -pubkey")).await,
        public_key(stack, &format!("openssl pkey -in {key} -pubout")).await,
        "the certificate is for the CSR's key"
    );
    let (ok, out) = sh(stack, format!("openssl verify -CAfile ca.pem {pem}")).await;
    assert!(ok && out.contains(&format!("{pem}: OK")), "{out}");
}

#[tokio::test]
async fn strongswan_pki_enrolls_a_device_and_reenrolls_it_with_its_certificate() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    // strongSwan appends /.well-known/est/<operation> to the URL: the label-less paths. It
    // trusts the api's TLS certificate through the CA that signed it, and checks the issued
    // certificate against the fleet CA (ca.pem). It ignores Retry-After: poll every second.
    let est = format!(
        "--est --url {} --cacert {} --cacert ca.pem --interval 1 --maxpolltime {} --outform pem",
        stack.address,
        stack.tls_ca.as_ref().unwrap().display(),
        PATIENCE.as_secs()
    );

    strongswan_key_and_csr(&stack, "device", &serial).await;
    let (ok, out) = pki(
        &stack,
        format!("{est} --userpass '{serial}:{device_key}' --in device.csr > device.pem"),
    )
    .await;
    println!("pki --est --userpass:\n{out}");
    assert!(ok, "pki --est failed: {out}");
    assert_pki_issued(&out, true, Some(&device_key));
    assert_certificate_for(&stack, "device.pem", "device.key", &serial).await;
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);

    // Re-enrollment: `--cert`/`--key` make pki authenticate with the current certificate over
    // mutual TLS and ask for simplereenroll.
    until_status_known(&stack, &stack.dir.join("device.pem")).await;
    strongswan_key_and_csr(&stack, "renewed", &serial).await;
    let (ok, out) = pki(
        &stack,
        format!("{est} --cert device.pem --key device.key --in renewed.csr > renewed.pem"),
    )
    .await;
    println!("pki --est --cert:\n{out}");
    assert!(ok, "pki --est --cert failed: {out}");
    assert!(
        out.contains("sending TLS client certificate"),
        "mutual TLS: {out}"
    );
    assert_pki_issued(&out, true, None);
    assert_certificate_for(&stack, "renewed.pem", "renewed.key", &serial).await;
    assert_ne!(
        public_key(&stack, "openssl x509 -in renewed.pem -noout -serial").await,
        public_key(&stack, "openssl x509 -in device.pem -noout -serial").await,
    );
    // A renewal of the one device, not a second registration.
    assert_eq!(stack.count_events("CertificateRenewalRequested").await, 1);
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);

    // A device names its group in the user name (`<serial>@<group>`): what a device of a
    // fleet with more groups than EST_LABELLESS_MAX_GROUPS does, since strongSwan cannot
    // put the group in the URL.
    let line_8_key = create_group(&stack, "line-8").await;
    let named = unique_serial();
    let named_key = derive_device_key(&stack, &line_8_key, &named).await;
    strongswan_key_and_csr(&stack, "named", &named).await;
    let (ok, out) = pki(
        &stack,
        format!("{est} --userpass '{named}@line-8:{named_key}' --in named.csr > named.pem"),
    )
    .await;
    println!("pki --est --userpass serial@group:\n{out}");
    assert!(ok, "pki --est failed: {out}");
    assert_pki_issued(&out, false, Some(&named_key));
    assert_certificate_for(&stack, "named.pem", "named.key", &named).await;
    let actor: String = sqlx::query_scalar(
        "SELECT metadata->>'actor' FROM events WHERE event_type = 'DeviceRegistered' \
         AND aggregate_id = $1",
    )
    .bind(device_id(&named).to_string())
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(actor, "est:line-8", "registered through the group it named");
}

/// The device id of `serial` in `TENANT` (the id is derived, as the api derives it).
fn device_id(serial: &str) -> domain::DeviceId {
    domain::DeviceId::derive(
        &domain::TenantId::parse(TENANT).unwrap(),
        &domain::SerialNumber::parse(serial).unwrap(),
    )
}

/// The serial of the certificate in `pem`, lowercase hex.
async fn serial_of(stack: &Stack, pem: &str) -> String {
    let out = public_key(stack, &format!("openssl x509 -in {pem} -noout -serial")).await;
    out.trim().trim_start_matches("serial=").to_lowercase()
}

#[tokio::test]
async fn a_revoked_certificate_never_reenrolls_even_while_the_read_models_lag() {
    let mut stack = Stack::start_with_est().await;
    let worker = stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let (serial, key, cert) = enrolled(&stack, "line-7", &group_key).await;
    until_status_known(&stack, &cert).await;

    // The worker stops (so the read models stay where they are), and the certificate is
    // revoked: its key was stolen.
    stack.stop_worker(worker, Duration::from_secs(10)).await;
    let revoked = stack
        .post(
            &format!("/v1/devices/{}/certificate:revoke", device_id(&serial)),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(revoked.status(), 202, "{}", revoked.text().await.unwrap());

    // The thief re-enrolls with the stolen certificate and key, for a key of its own.
    key_and_csr(&stack, "thief", &format!("/CN={serial}")).await;
    let stolen = format!(
        "--cert {} --key {} -H 'Content-Type: application/pkcs10' --data-binary @thief.b64",
        cert.display(),
        key.display()
    );
    let refused = curl(
        &stack,
        &stolen,
        "/.well-known/est/simplereenroll",
        "thief.p7",
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("revoked"), "{}", refused.body);
    // And again once the read models have caught up: still refused, nothing was requested.
    stack.spawn_worker();
    until_status_revoked(
        &stack,
        &serial_of(&stack, &cert.display().to_string()).await,
    )
    .await;
    let again = curl(
        &stack,
        &stolen,
        "/.well-known/est/simplereenroll",
        "thief.p7",
    )
    .await;
    assert_eq!(again.status, 403, "{}", again.body);
    assert_eq!(stack.count_events("CertificateRenewalRequested").await, 0);
}

/// Waits until `certificate_status` shows the certificate `serial` revoked.
async fn until_status_revoked(stack: &Stack, serial: &str) {
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        let revoked: Option<bool> = sqlx::query_scalar(
            "SELECT revoked_at IS NOT NULL FROM certificate_status WHERE serial = $1",
        )
        .bind(serial)
        .fetch_optional(&stack.pool)
        .await
        .unwrap();
        if revoked == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("certificate {serial} never showed revoked in certificate_status");
}

#[tokio::test]
async fn a_device_renews_for_the_same_key_and_its_superseded_certificate_renews_nothing() {
    let mut stack = Stack::start_with_est().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let (serial, key, cert) = enrolled(&stack, "line-7", &group_key).await;
    until_status_known(&stack, &cert).await;
    let old_serial = serial_of(&stack, &cert.display().to_string()).await;

    // A new CSR for the key it already has (RFC 7030 allows it; SCEP clients renew so).
    let (ok, out) = sh(
        &stack,
        format!(
            "openssl req -new -key {} -subj '/CN={serial}' -outform DER -out same-key.der 2>&1 && \
             openssl base64 -A -in same-key.der -out same-key.b64",
            key.display()
        ),
    )
    .await;
    assert!(ok, "{out}");
    let renew = format!(
        "--cert {} --key {} -H 'Content-Type: application/pkcs10' --data-binary @same-key.b64",
        cert.display(),
        key.display()
    );
    let answers = until_issued(&stack, &renew, "/.well-known/est/simplereenroll", "same.p7").await;
    let issued = answers.last().unwrap();
    assert_eq!(issued.status, 200, "{}", issued.body);
    open_pkcs7(&stack, "same.p7", "same.pem").await;
    let new_serial = serial_of(&stack, "same.pem").await;
    assert_ne!(new_serial, old_serial, "a renewal issues a new certificate");
    assert_eq!(
        public_key(&stack, "openssl x509 -in same.pem -noout -pubkey").await,
        public_key(
            &stack,
            &format!("openssl pkey -in {} -pubout", key.display())
        )
        .await,
    );
    assert_eq!(stack.count_events("CertificateRenewalRequested").await, 1);

    // The very request again (its certificate, now superseded, and its CSR): where it stands.
    let repeated = curl(
        &stack,
        &renew,
        "/.well-known/est/simplereenroll",
        "again.p7",
    )
    .await;
    assert_eq!(repeated.status, 200, "{}", repeated.body);
    open_pkcs7(&stack, "again.p7", "again.pem").await;
    assert_eq!(serial_of(&stack, "again.pem").await, new_serial);

    // Any other request with the superseded certificate is refused.
    key_and_csr(&stack, "later", &format!("/CN={serial}")).await;
    let later = curl(
        &stack,
        &format!(
            "--cert {} --key {} -H 'Content-Type: application/pkcs10' --data-binary @later.b64",
            cert.display(),
            key.display()
        ),
        "/.well-known/est/simplereenroll",
        "later.p7",
    )
    .await;
    assert_eq!(later.status, 403, "{}", later.body);
    assert_eq!(stack.count_events("CertificateRenewalRequested").await, 1);
}

#[tokio::test]
async fn under_tls_relying_parties_fetch_status_over_plain_http_from_the_first_certificate() {
    let mut stack = Stack::start_with_est().await;
    // CRLs at most every 30 s: the first one must still come before the first certificate.
    stack.spawn_worker_with_env(&[("CRL_MIN_INTERVAL_MS", "30000".to_owned())]);
    let group_key = create_group(&stack, "line-7").await;
    let (_, _, cert) = enrolled(&stack, "line-7", &group_key).await;
    let cert = cert.display().to_string();

    // The certificate names plain-HTTP status URLs (the api's PKI listener), not https.
    let text = public_key(&stack, &format!("openssl x509 -in {cert} -noout -text")).await;
    let pki = format!("URI:{}/pki/", stack.pki_address);
    assert!(
        stack.pki_address.starts_with("http://"),
        "{}",
        stack.pki_address
    );
    assert!(text.matches(&pki).count() >= 2, "{text}");

    // A relying party downloads the CRL named in the certificate, at once.
    let (ok, out) = sh(
        &stack,
        format!("openssl verify -crl_check -crl_download -CAfile ca.pem {cert} 2>&1"),
    )
    .await;
    assert!(ok && out.contains(": OK"), "{out}");
    // And asks the OCSP responder named in it.
    let ocsp_url = public_key(&stack, &format!("openssl x509 -in {cert} -noout -ocsp_uri")).await;
    let (ok, out) = sh(
        &stack,
        format!(
            "openssl ocsp -issuer ca.pem -cert {cert} -url {} -CAfile ca.pem 2>&1",
            ocsp_url.trim()
        ),
    )
    .await;
    assert!(ok && out.contains(": good"), "{out}");
    // The plain-HTTP listener serves status and nothing else: no command, no EST.
    for path in ["/v1/devices", "/.well-known/est/cacerts"] {
        let answer = stack
            .client
            .get(format!("{}{path}", stack.pki_address))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }
}

/// A tenant with CAs of its own: `cacerts` for its group is its chain, its devices enroll to
/// its issuing CA; once that CA is revoked, a device enrolls again with its group credential
/// (its certificate of the revoked CA no longer counts) and chains to the replacement.
#[tokio::test]
async fn after_its_ca_is_revoked_a_tenant_s_device_enrolls_again_with_its_group_credential() {
    use crate::tenant_cas::chain_with;
    let (stack, _token) = stack_with_tenant_cas().await;
    let group_key = create_group(&stack, "line-9").await;

    // cacerts for the group: the tenant's chain (issuing CA, root); without a group: the
    // platform's CA.
    let answer = curl(
        &stack,
        "",
        "/.well-known/est/line-9/cacerts",
        "tenant-cacerts.p7",
    )
    .await;
    assert_eq!(answer.status, 200);
    let opened = open_pkcs7(&stack, "tenant-cacerts.p7", "tenant-cacerts.pem").await;
    assert_eq!(opened.matches("BEGIN CERTIFICATE").count(), 2, "{opened}");
    let platform = curl(
        &stack,
        "",
        "/.well-known/est/cacerts",
        "platform-cacerts.p7",
    )
    .await;
    assert_eq!(platform.status, 200);
    assert_ne!(platform.body, answer.body);

    let (serial, key, pem) = enrolled(&stack, "line-9", &group_key).await;
    let verify = |chain: &str, pem: &std::path::Path| {
        format!(
            "openssl verify -CAfile tenant-root.pem -untrusted {chain} {}",
            pem.display()
        )
    };
    let (ok, said) = sh(&stack, verify("tenant-cacerts.pem", &pem)).await;
    assert!(ok, "enrolled to the tenant's issuing CA: {said}");

    // Asking again with its group credential while its certificate stands: refused.
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    key_and_csr(&stack, &format!("{serial}-2"), &format!("/CN={serial}")).await;
    let again = curl(
        &stack,
        &enroll_args(&serial, &device_key, &format!("{serial}-2.b64")),
        "/.well-known/est/line-9/simpleenroll",
        "again.p7",
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);

    // The tenant's issuing CA is revoked; its replacement is made.
    let revoked = stack
        .client
        .post(stack.url(&format!("/admin/tenants/{TENANT}/cas/1/revoke")))
        .bearer_auth(stack.operator_token("admin"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"reason": "cACompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let chain = chain_with(&stack, TENANT, 1).await;
        if chain["issuing"][0]["generation"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no replacement: {chain}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Its certificate of the revoked CA re-enrolls nothing any more.
    key_and_csr(&stack, "after-revocation", &format!("/CN={serial}")).await;
    let refused = curl(
        &stack,
        &reenroll(&pem, &key, "after-revocation.b64"),
        "/.well-known/est/simplereenroll",
        "after-revocation",
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("revoked"), "{}", refused.body);

    // The device enrolls again with its group credential, and chains to the replacement.
    let answers = until_issued(
        &stack,
        &enroll_args(&serial, &device_key, &format!("{serial}-2.b64")),
        "/.well-known/est/line-9/simpleenroll",
        "recovered.p7",
    )
    .await;
    let last = answers.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    open_pkcs7(&stack, "recovered.p7", "recovered.pem").await;
    let answer = curl(
        &stack,
        "",
        "/.well-known/est/line-9/cacerts",
        "new-cacerts.p7",
    )
    .await;
    assert_eq!(answer.status, 200);
    open_pkcs7(&stack, "new-cacerts.p7", "new-cacerts.pem").await;
    let (ok, said) = sh(
        &stack,
        verify("new-cacerts.pem", &stack.dir.join("recovered.pem")),
    )
    .await;
    assert!(ok, "chains to the replacement: {said}");
    let (ok, _) = sh(&stack, verify("new-cacerts.pem", &pem)).await;
    assert!(!ok, "the old certificate's CA is no longer in the chain");
    let devices: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DeviceRegistered'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(devices, 1, "recovered, not registered again");
}

/// A device of a tenant with CAs of its own re-enrolls over mutual TLS with the certificate
/// its tenant's CA issued, as a device of the platform's CA does. Once the tenant's issuing CA
/// is rotated, its next re-enrollment is issued by the new CA, and operators watch the live
/// certificates move from the old CA to the new one; a superseded certificate re-enrolls
/// nothing.
#[tokio::test]
async fn a_tenant_s_device_reenrolls_over_mutual_tls_and_moves_to_the_rotated_ca() {
    use crate::tenant_cas::{cas_of, chain_with, rotate};
    let (stack, _token) = stack_with_tenant_cas().await;
    let group_key = create_group(&stack, "line-4").await;
    let (serial, key, cert) = enrolled(&stack, "line-4", &group_key).await;
    until_status_known(&stack, &cert).await;
    let verified_by = |ca: &str, pem: &str| {
        format!("openssl verify -CAfile tenant-root.pem -untrusted {ca} {pem}")
    };

    // Re-enrolled with the certificate of the tenant's first issuing CA, by that CA.
    key_and_csr(&stack, "renewed", &format!("/CN={serial}")).await;
    let answers = until_issued(
        &stack,
        &reenroll(&cert, &key, "renewed.b64"),
        "/.well-known/est/simplereenroll",
        "renewed.p7",
    )
    .await;
    let last = answers.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    open_pkcs7(&stack, "renewed.p7", "renewed.pem").await;
    let cas = cas_of(&stack, TENANT).await;
    std::fs::write(
        stack.dir.join("first-ca.pem"),
        cas["cas"][1]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let (ok, said) = sh(&stack, verified_by("first-ca.pem", "renewed.pem")).await;
    assert!(ok, "issued by the tenant's issuing CA: {said}");

    // The operator rotates the tenant's issuing CA; once the new one has taken over, the
    // device's next re-enrollment is issued by it.
    assert_eq!(rotate(&stack, TENANT).await.status(), 202);
    chain_with(&stack, TENANT, 2).await;
    tokio::time::sleep(
        (domain::HANDOVER + chrono::Duration::seconds(1))
            .to_std()
            .unwrap(),
    )
    .await;
    let cacerts = curl(&stack, "", "/.well-known/est/line-4/cacerts", "both.p7").await;
    assert_eq!(cacerts.status, 200);
    let opened = open_pkcs7(&stack, "both.p7", "both.pem").await;
    assert_eq!(
        opened.matches("BEGIN CERTIFICATE").count(),
        3,
        "both issuing CAs and the root during the overlap: {opened}"
    );
    let cas = cas_of(&stack, TENANT).await;
    std::fs::write(
        stack.dir.join("next-ca.pem"),
        cas["cas"][2]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let renewed = (stack.dir.join("renewed.pem"), stack.dir.join("renewed.key"));
    until_status_known(&stack, &renewed.0).await;
    key_and_csr(&stack, "moved", &format!("/CN={serial}")).await;
    let answers = until_issued(
        &stack,
        &reenroll(&renewed.0, &renewed.1, "moved.b64"),
        "/.well-known/est/simplereenroll",
        "moved.p7",
    )
    .await;
    let last = answers.last().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    open_pkcs7(&stack, "moved.p7", "moved.pem").await;
    let (ok, said) = sh(&stack, verified_by("next-ca.pem", "moved.pem")).await;
    assert!(ok, "issued by the new issuing CA: {said}");
    let (ok, _) = sh(&stack, verified_by("first-ca.pem", "moved.pem")).await;
    assert!(!ok, "not by the old one");

    // The operator sees the device's live certificate move to the new CA.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let cas = cas_of(&stack, TENANT).await;
        let (old, new) = (&cas["cas"][1], &cas["cas"][2]);
        if old["live_certificates"] == 0 && new["live_certificates"] == 1 {
            assert_eq!(old["state"], "rotating");
            assert_eq!(new["state"], "active");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "live certificates never moved: {cas}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A superseded certificate of the tenant's CA re-enrolls nothing.
    key_and_csr(&stack, "stale", &format!("/CN={serial}")).await;
    let stale = curl(
        &stack,
        &reenroll(&renewed.0, &renewed.1, "stale.b64"),
        "/.well-known/est/simplereenroll",
        "stale",
    )
    .await;
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
}
