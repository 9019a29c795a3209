//! nginx as a tenant's relying party: it requires client certificates chaining to tenant A's
//! root alone (`ssl_verify_client on`) and checks each one's status at the OCSP responder its
//! certificate names (`ssl_ocsp leaf`). It lets A's device in, refuses B's even when B's client
//! sends its whole chain (leaf and issuing CA), and refuses A's device once revoked. Every CA
//! key is in a SoftHSM2 token; nginx is Debian's, run here on a port of the test's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::TestCa;
use uuid::Uuid;

use crate::helpers::{unique_serial, Stack, OTHER_TENANT, TENANT};
use crate::openssl::{path, shell};
use crate::provisioning::PATIENCE;
use crate::tenant_cas::two_tenants_with_cas;

/// A device's key, and its certificate followed by its issuing CA (what a client sends).
struct DeviceFiles {
    key: PathBuf,
    chain: PathBuf,
    id: String,
}

/// Registers a device of `tenant` with a key of its own, and waits for its certificate.
async fn device_of(stack: &Stack, tenant: &str, issuing_pem: &str, dir: &Path) -> DeviceFiles {
    let serial = unique_serial();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, &serial);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let response = stack
        .client
        .post(stack.url("/v1/devices"))
        .bearer_auth(stack.token(tenant, "devices:write"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({"serial_number": serial, "model": "X1", "csr": csr}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = stack.token(tenant, "devices:read");
    let deadline = Instant::now() + PATIENCE;
    let certificate = loop {
        let device: Value = stack
            .get(&format!("/v1/devices/{id}?min_version=2&wait=2"), &reader)
            .await
            .json()
            .await
            .unwrap();
        if device["status"] == "provisioned" {
            break device["certificate"]["pem"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "never provisioned: {device}");
    };
    let key_path = dir.join(format!("{tenant}.key"));
    let chain_path = dir.join(format!("{tenant}-chain.pem"));
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&chain_path, format!("{certificate}{issuing_pem}")).unwrap();
    DeviceFiles {
        key: key_path,
        chain: chain_path,
        id,
    }
}

/// nginx on a free port of its own, trusting `root` for client certificates; stopped when
/// dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(dir: &Path, root: &Path, server: &testkit::IssuedFiles) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir.join("temp")).unwrap();
        let temp = path(&dir.join("temp"));
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {log} info;\npid {pid};\nevents {{}}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};\n\
               uwsgi_temp_path {temp}; scgi_temp_path {temp};\n\
               server {{\n    listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                 ssl_client_certificate {root};\n    ssl_verify_client on;\n\
                 ssl_verify_depth 2;\n    ssl_ocsp leaf;\n\
                 location / {{ return 200 \"welcome $ssl_client_s_dn\\n\"; }}\n  }}\n}}\n",
            log = path(&dir.join("error.log")),
            pid = path(&dir.join("nginx.pid")),
            cert = path(&server.cert_path),
            key = path(&server.key_path),
            root = path(root),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .args(["-p", &path(dir), "-c", &path(&conf_path)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (scripts/test-clients installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

/// What nginx answers a client presenting `device` (`curl --cert`): the status and body.
async fn visit(dir: &Path, nginx: &Nginx, tls_ca: &Path, device: &DeviceFiles) -> (u16, String) {
    let (_, said) = shell(
        dir,
        format!(
            "curl -s --max-time 10 --cacert {ca} --cert {chain} --key {key} \
             -w '\\n%{{http_code}}' https://localhost:{port}/ --resolve localhost:{port}:127.0.0.1",
            ca = path(tls_ca),
            chain = path(&device.chain),
            key = path(&device.key),
            port = nginx.port,
        ),
    )
    .await;
    let (body, status) = said
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", said.trim()));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test]
async fn nginx_trusting_one_tenant_s_root_admits_its_devices_only_and_not_once_revoked() {
    let mut stack = Stack::start().await;
    let (_token, acme, globex) = two_tenants_with_cas(&mut stack).await;
    let dir = stack.dir.join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let issuing = |chain: &Value| {
        chain["issuing"][0]["certificate"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let acme_device = device_of(&stack, TENANT, &issuing(&acme), &dir).await;
    let globex_device = device_of(&stack, OTHER_TENANT, &issuing(&globex), &dir).await;

    let root = dir.join("acme-root.pem");
    std::fs::write(&root, acme["root"].as_str().unwrap()).unwrap();
    let tls = TestCa::new(&dir, "tls");
    let server = tls.issue_server("server");
    let nginx = Nginx::start(&dir, &root, &server);

    let (status, body) = visit(&dir, &nginx, &tls.cert_path(), &acme_device).await;
    assert_eq!(status, 200, "acme's device is let in: {body}");
    assert!(body.contains("welcome"), "{body}");
    let (status, body) = visit(&dir, &nginx, &tls.cert_path(), &globex_device).await;
    assert_eq!(
        status, 400,
        "globex's device, its whole chain sent, is refused: {body}"
    );

    // acme revokes its device: nginx asks the OCSP responder its certificate names.
    let revoked = stack
        .client
        .post(stack.url(&format!(
            "/v1/devices/{}/certificate:revoke",
            acme_device.id
        )))
        .bearer_auth(stack.token(TENANT, "devices:write"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = visit(&dir, &nginx, &tls.cert_path(), &acme_device).await;
        if status == 400 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "nginx still lets the revoked device in"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(log.contains("revoked"), "nginx says why: {log}");
}
