//! Devices enroll themselves over SCEP (RFC 8894), with independent clients as the devices,
//! against the api over TLS (its SCEP registration authority's key in a SoftHSM2 token) and
//! a real worker: micromdm's `scepclient` (Debian's `scep` 2.1.0, DES and SHA-1 whatever
//! `GetCACaps` says) enrolls with its group-derived key as the challenge password, through
//! `PENDING` (it polls by sending the same PKCSReq again, every 30 s) to `SUCCESS`, then
//! renews with its certificate (`RenewalReq`, the same key); certmonger enrolls (AES-256,
//! SHA-256; it polls by sending its PKCSReq again when asked to refresh). Every certificate
//! chains to the CA; a wrong challenge registers nothing; no challenge is in an event.

use crate::est::{create_group, derive_device_key, sh, until_status_known};
use crate::helpers::{unique_serial, Stack};
use crate::provisioning::PATIENCE;

/// The SHA-256 fingerprint of the stack's SCEP RA certificate, as `scepclient
/// -ca-fingerprint` takes it.
async fn ra_fingerprint(stack: &Stack) -> String {
    let (ok, out) = sh(
        stack,
        "openssl x509 -in scep-ra.pem -noout -fingerprint -sha256".into(),
    )
    .await;
    assert!(ok, "{out}");
    out.trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase()
}

/// `scepclient` as the device `serial` with `challenge`, its key and certificate in the
/// stack's directory as `<name>.key` and `<name>.pem`: whether it succeeded, what it said.
async fn scepclient(stack: &Stack, serial: &str, challenge: &str, name: &str) -> (bool, String) {
    let tls_ca = stack.tls_ca.as_ref().unwrap().display().to_string();
    let fingerprint = ra_fingerprint(stack).await;
    sh(
        stack,
        format!(
            "SSL_CERT_FILE={tls_ca} timeout {} scepclient -server-url {}/scep/line-7 \
             -private-key {name}.key -certificate {name}.pem -cn '{serial}' \
             -challenge '{challenge}' -ca-fingerprint {fingerprint} 2>&1",
            PATIENCE.as_secs() * 3,
            stack.address
        ),
    )
    .await
}

/// Asserts that `pem` is a certificate for `key` with CN = `serial`, chaining to the CA.
async fn assert_certificate_for(stack: &Stack, pem: &str, key: &str, serial: &str) {
    let (ok, out) = sh(
        stack,
        format!(
            "openssl verify -CAfile ca.pem {pem} && openssl x509 -in {pem} -noout -subject && \
             [ \"$(openssl x509 -in {pem} -noout -pubkey)\" = \"$(openssl pkey -in {key} -pubout)\" ]"
        ),
    )
    .await;
    assert!(ok, "{pem}: {out}");
    assert!(out.contains(&format!("subject=CN = {serial}")), "{out}");
}

/// No event holds `secret`, as stored nor as the analysts' feed shows it; and the feed
/// shows the request as a verified CSR (its key, CNs and digest).
async fn assert_no_event_holds(stack: &Stack, secret: &str) {
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload::text || metadata::text FROM events")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert!(!payloads.is_empty());
    for payload in payloads {
        assert!(!payload.contains(secret), "an event holds the device key");
    }
    let feed = stack.feed().await;
    let registered = feed
        .iter()
        .find(|event| event["type"] == "DeviceRegistered")
        .expect("the registration is in the feed");
    assert!(
        registered["data"]["verified_csr"]["sha256"].is_string(),
        "{registered}"
    );
    assert!(registered["data"].get("csr").is_none(), "{registered}");
    let text = serde_json::to_string(&feed).unwrap();
    assert!(!text.contains(secret), "the feed holds the device key");
}

#[tokio::test]
async fn micromdm_s_scepclient_enrolls_through_pending_and_renews_with_its_key() {
    let mut stack = Stack::start_with_scep().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;

    let (ok, out) = scepclient(&stack, &serial, &device_key, "device").await;
    println!("scepclient (PKCSReq):\n{out}");
    assert!(ok, "scepclient failed: {out}");
    assert!(
        out.contains("pkiStatus=PENDING"),
        "answered PENDING first: {out}"
    );
    assert!(out.contains("pkiStatus=SUCCESS"), "{out}");
    assert_certificate_for(&stack, "device.pem", "device.key", &serial).await;
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
    let actor: String = sqlx::query_scalar(
        "SELECT metadata->>'actor' FROM events WHERE event_type = 'DeviceRegistered'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(actor, "scep:line-7");
    assert_no_event_holds(&stack, &device_key).await;

    // Renewal: the certificate exists, so scepclient sends a RenewalReq signed with it, for
    // the same key. The certificate must be known to the status read model first.
    let first_serial = sh(&stack, "openssl x509 -in device.pem -noout -serial".into())
        .await
        .1;
    until_status_known(&stack, &stack.dir.join("device.pem")).await;
    let (ok, out) = scepclient(&stack, &serial, &device_key, "device").await;
    println!("scepclient (RenewalReq):\n{out}");
    assert!(ok, "renewal failed: {out}");
    assert_certificate_for(&stack, "device.pem", "device.key", &serial).await;
    let renewed_serial = sh(&stack, "openssl x509 -in device.pem -noout -serial".into())
        .await
        .1;
    assert_ne!(first_serial, renewed_serial, "a new certificate");
    assert_eq!(stack.count_events("CertificateRenewalRequested").await, 1);
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
}

#[tokio::test]
async fn every_wrong_scep_request_is_scep_s_failure_and_registers_nothing() {
    let mut stack = Stack::start_with_scep().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let other_group_key = create_group(&stack, "line-8").await;
    let serial = unique_serial();
    // Another device's key; the right key for a CSR whose CN is another serial; the right
    // device's key of another group (the path names line-7).
    for (cn, challenge) in [
        (
            serial.clone(),
            derive_device_key(&stack, &group_key, "SOMEONE-ELSE").await,
        ),
        (
            "SOMEONE-ELSE".to_owned(),
            derive_device_key(&stack, &group_key, &serial).await,
        ),
        (
            serial.clone(),
            derive_device_key(&stack, &other_group_key, &serial).await,
        ),
    ] {
        let (ok, out) = scepclient(&stack, &cn, &challenge, "device").await;
        assert!(!ok, "{out}");
        assert!(out.contains("badMessageCheck"), "{out}");
        assert!(!stack.dir.join("device.pem").exists());
    }
    assert_eq!(stack.count_events("DeviceRegistered").await, 0);

    // Garbage and an unknown operation: plain HTTP errors, never a 500; the capabilities.
    let url = format!("{}/scep/line-7", stack.pki_address);
    let (ok, out) = sh(
        &stack,
        format!(
            "head -c 500 /dev/urandom > garbage.der; \
             curl --silent -o /dev/null -w '%{{http_code}} ' --data-binary @garbage.der \
               '{url}?operation=PKIOperation'; \
             curl --silent -o /dev/null -w '%{{http_code}} ' '{url}?operation=PKIOperation&message=%%%%'; \
             curl --silent -o /dev/null -w '%{{http_code}} ' '{url}?operation=Nonsense'; \
             curl --silent '{url}?operation=GetCACaps'"
        ),
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.starts_with("400 400 400 "), "{out}");
    assert!(out.contains("SHA-256") && out.contains("AES"), "{out}");
    assert_eq!(stack.count_events("DeviceRegistered").await, 0);
}

/// A certmonger daemon of the test's own, without D-Bus (its state in `dir`), stopped when
/// dropped.
struct Certmonger {
    dir: std::path::PathBuf,
    daemon: std::process::Child,
}

impl Certmonger {
    fn start(dir: &std::path::Path) -> Self {
        let dir = dir.join("certmonger");
        for sub in ["requests", "cas", "config", "local", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let log = std::fs::File::create(dir.join("certmonger.log")).unwrap();
        let daemon = std::process::Command::new("certmonger")
            .args(["-n", "-L", "-d", "3", "-P"])
            .arg(dir.join("cm.sock"))
            .envs(Self::env_of(&dir))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("certmonger is installed (scripts/test-clients)");
        let started = std::time::Instant::now();
        while !dir.join("cm.sock").exists() && started.elapsed() < PATIENCE {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { dir, daemon }
    }

    fn env_of(dir: &std::path::Path) -> Vec<(&'static str, String)> {
        let at = |sub: &str| dir.join(sub).display().to_string();
        vec![
            ("CERTMONGER_REQUESTS_DIR", at("requests")),
            ("CERTMONGER_CAS_DIR", at("cas")),
            ("CERTMONGER_CONFIG_DIR", at("config")),
            ("CERTMONGER_LOCAL_CA_DIR", at("local")),
            ("CERTMONGER_TMPDIR", at("tmp")),
            ("CERTMONGER_SYSTEM_LOCK_FILE", at("lock")),
            (
                "CERTMONGER_PVT_ADDRESS",
                format!("unix:path={}", at("cm.sock")),
            ),
        ]
    }

    /// Adds the stack's SCEP CA (as `fleet`, over its plain-HTTP PKI listener: certmonger's
    /// PKIOperation trusts only the system's CAs for TLS, whatever `-R` says) and asks it for
    /// a certificate of device `serial` with `challenge`, its key and certificate in `key` and
    /// `cert`, tracked as `id`.
    fn request(
        &self,
        stack: &Stack,
        id: &str,
        serial: &str,
        challenge: &str,
        key: &str,
        cert: &str,
    ) {
        let url = format!("{}/scep/line-7", stack.pki_address);
        let (ok, said) = self.getcert(&["add-scep-ca", "-c", "fleet", "-u", &url]);
        assert!(ok, "add-scep-ca: {said}");
        let at = |file: &str| stack.dir.join(file).display().to_string();
        let subject = format!("CN={serial}");
        let (ok, said) = self.getcert(&[
            "request",
            "-I",
            id,
            "-c",
            "fleet",
            "-f",
            &at(cert),
            "-k",
            &at(key),
            "-N",
            &subject,
            "-L",
            challenge,
        ]);
        assert!(ok, "request: {said}");
    }

    /// `getcert <args>` against this daemon: whether it succeeded, what it said.
    fn getcert(&self, args: &[&str]) -> (bool, String) {
        let output = std::process::Command::new("getcert")
            .args(args)
            .envs(Self::env_of(&self.dir))
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }
}

impl Drop for Certmonger {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[tokio::test]
async fn certmonger_enrolls_a_device_polling_with_its_pkcsreq() {
    let mut stack = Stack::start_with_scep().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    let certmonger = Certmonger::start(&stack.dir);
    certmonger.request(
        &stack,
        "device",
        &serial,
        &device_key,
        "certmonger-device.key",
        "certmonger-device.pem",
    );
    // PENDING leaves the request waiting (for days, by certmonger's own schedule): ask it to
    // poll, which it does by sending its PKCSReq again, until it is monitoring the
    // certificate.
    let started = std::time::Instant::now();
    let status = loop {
        let (_, listed) = certmonger.getcert(&["list", "-i", "device"]);
        if listed.contains("status: MONITORING") || started.elapsed() > PATIENCE * 2 {
            break listed;
        }
        if listed.contains("status: CA_WORKING") || listed.contains("status: CA_UNREACHABLE") {
            certmonger.getcert(&["refresh", "-i", "device"]);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    println!("getcert list:\n{status}");
    assert!(status.contains("status: MONITORING"), "{status}");
    assert_certificate_for(
        &stack,
        "certmonger-device.pem",
        "certmonger-device.key",
        &serial,
    )
    .await;
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
    assert_no_event_holds(&stack, &device_key).await;
}

/// The value of `field` in certmonger's record of request `id` (a value's further lines
/// start with a space).
fn record_field(certmonger: &Certmonger, field: &str) -> Option<String> {
    let requests = certmonger.dir.join("requests");
    for entry in std::fs::read_dir(requests).ok()? {
        let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(first) = line.strip_prefix(&format!("{field}=")) {
                let mut value = first.to_owned();
                for more in lines.by_ref() {
                    match more.strip_prefix(' ') {
                        Some(rest) => {
                            value.push('\n');
                            value.push_str(rest);
                        }
                        None => break,
                    }
                }
                return Some(value);
            }
        }
    }
    None
}

#[tokio::test]
async fn certmonger_s_scep_helper_polls_with_cert_poll_until_the_certificate_is_issued() {
    let mut stack = Stack::start_with_scep().await;
    stack.spawn_worker();
    let group_key = create_group(&stack, "line-7").await;
    let serial = unique_serial();
    let device_key = derive_device_key(&stack, &group_key, &serial).await;
    let certmonger = Certmonger::start(&stack.dir);
    certmonger.request(
        &stack,
        "polled",
        &serial,
        &device_key,
        "polled.key",
        "polled-daemon.pem",
    );
    let url = format!("{}/scep/line-7", stack.pki_address);
    // The daemon's PKCSReq is answered PENDING; it then holds a GetCertInitial (CertPoll)
    // message of the request, signed with the requested key, which its SCEP helper sends in
    // its POLL mode (the daemon itself would send its PKCSReq again).
    let started = std::time::Instant::now();
    let cert_poll = loop {
        let (_, listed) = certmonger.getcert(&["list", "-i", "polled"]);
        let stored = record_field(&certmonger, "scep_gic_next")
            .or_else(|| record_field(&certmonger, "scep_gic"));
        match stored {
            Some(message) if listed.contains("status: CA_WORKING") => break message,
            _ if started.elapsed() > PATIENCE => panic!("never pending: {listed}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    };
    let sent = pem::parse(&cert_poll).unwrap();
    assert_eq!(
        pki::scep::ScepRequest::from_der(sent.contents())
            .unwrap()
            .message_type,
        pki::scep::MessageType::CertPoll,
        "a GetCertInitial (20)"
    );
    let ra_certificate = std::fs::read_to_string(stack.dir.join("scep-ra.pem")).unwrap();
    let ca_certificate = std::fs::read_to_string(stack.dir.join("ca.pem")).unwrap();
    let started = std::time::Instant::now();
    let envelope = loop {
        // Off the runtime: the api answering it runs on this test's runtime.
        let mut helper = std::process::Command::new("/usr/lib/certmonger/scep-submit");
        helper
            .args(["-u", &url])
            .env("CERTMONGER_OPERATION", "POLL")
            .env("CERTMONGER_PKCSREQ", &cert_poll)
            .env("CERTMONGER_SCEP_RA_CERTIFICATE", &ra_certificate)
            .env("CERTMONGER_SCEP_CA_CERTIFICATE", &ca_certificate)
            .stdin(std::process::Stdio::null());
        let polled = tokio::task::spawn_blocking(move || helper.output().unwrap())
            .await
            .unwrap();
        let out = String::from_utf8_lossy(&polled.stdout).into_owned();
        if polled.status.success() && out.contains("-----BEGIN PKCS7-----") {
            break out;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "CertPoll never answered the certificate: {out}{}",
            String::from_utf8_lossy(&polled.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    // The certificate, in an envelope for the requested key: the daemon keeps the key it is
    // enrolling beside the key file (`polled.key.<random>.key`) until it has the certificate.
    std::fs::write(stack.dir.join("polled.p7.pem"), &envelope).unwrap();
    let (ok, out) = sh(
        &stack,
        "for key in polled.key.*.key; do \
           openssl smime -decrypt -inform PEM -in polled.p7.pem -inkey $key -out polled.p7 \
             2>/dev/null && cp $key requested.key && break; \
         done && openssl pkcs7 -inform DER -in polled.p7 -print_certs -out polled.pem"
            .into(),
    )
    .await;
    assert!(ok, "{out}");
    assert_certificate_for(&stack, "polled.pem", "requested.key", &serial).await;
    assert_eq!(stack.count_events("DeviceRegistered").await, 1);
}
