//! TLS on the api's socket, checked with curl as the client: the configured certificate is
//! served and trusted through its CA; client certificates are optional, but one from another
//! CA than `TLS_CLIENT_CA_PATH` fails the handshake; a renewed certificate is served without
//! a restart, and a broken renewal leaves the previous one in place.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use api::tls::{ServerTls, TlsLoadError, TlsSettings};
use testkit::{IssuedFiles, TestCa};

use crate::helpers::serve_application;

/// A directory of the test's own for certificate files.
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("api-tls-{}", uuid::Uuid::new_v4().simple()))
}

fn settings(server: &IssuedFiles, client_ca: Option<&Path>) -> TlsSettings {
    TlsSettings {
        cert_path: server.cert_path.clone(),
        key_path: server.key_path.clone(),
        client_ca_path: client_ca.map(Path::to_owned),
        reload_interval: Duration::from_secs(3600),
    }
}

/// Serves the api over TLS; returns its port and the TLS configuration (to reload it).
async fn serve_tls(settings: &TlsSettings) -> (u16, Arc<ServerTls>) {
    let tls = Arc::new(ServerTls::load(settings).unwrap());
    let addr = serve_application(|app| app.with_tls(tls.clone())).await;
    (addr.port(), tls)
}

/// `curl` with `args`, off the runtime (the server under test runs on it).
async fn curl(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("curl runs")
    })
    .await
    .unwrap()
}

/// `GET /livez` over HTTPS trusting `ca`, optionally with a client certificate: the HTTP
/// status, or curl's error.
async fn livez(port: u16, ca: &Path, client: Option<&IssuedFiles>) -> Result<String, String> {
    let mut args = vec![
        "--cacert".to_owned(),
        ca.display().to_string(),
        "--output".to_owned(),
        "/dev/null".to_owned(),
        "--write-out".to_owned(),
        "%{http_code}".to_owned(),
    ];
    if let Some(client) = client {
        args.extend([
            "--cert".to_owned(),
            client.cert_path.display().to_string(),
            "--key".to_owned(),
            client.key_path.display().to_string(),
        ]);
    }
    args.push(format!("https://127.0.0.1:{port}/livez"));
    let out = curl(args).await;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn https_is_served_with_the_configured_certificate_and_plain_http_is_not() {
    let dir = scratch_dir();
    let ca = TestCa::new(&dir, "server");
    let server = ca.issue_server("server");
    let (port, _) = serve_tls(&settings(&server, None)).await;

    assert_eq!(
        livez(port, &ca.cert_path(), None).await.as_deref(),
        Ok("200")
    );

    // Another CA's certificate is not trusted: the client refuses the server.
    let stranger = TestCa::new(&dir, "stranger");
    assert!(livez(port, &stranger.cert_path(), None).await.is_err());

    // Plain HTTP on the TLS port gets no HTTP answer.
    let out = curl(vec![
        "--output".into(),
        "/dev/null".into(),
        "--write-out".into(),
        "%{http_code}".into(),
        format!("http://127.0.0.1:{port}/livez"),
    ])
    .await;
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn client_certificates_are_optional_but_must_come_from_the_client_ca() {
    let dir = scratch_dir();
    let server_ca = TestCa::new(&dir, "server");
    let server = server_ca.issue_server("server");
    let fleet = TestCa::new(&dir, "fleet");
    let (port, _) = serve_tls(&settings(&server, Some(&fleet.cert_path()))).await;

    // Without a client certificate: served (the routes decide what needs one).
    assert_eq!(
        livez(port, &server_ca.cert_path(), None).await.as_deref(),
        Ok("200")
    );
    // With one the fleet CA issued: served.
    let device = fleet.issue_client("DEV-0001", "device");
    assert_eq!(
        livez(port, &server_ca.cert_path(), Some(&device))
            .await
            .as_deref(),
        Ok("200")
    );
    // With one from another CA: the handshake fails.
    let other = TestCa::new(&dir, "other").issue_client("DEV-0001", "impostor");
    let refused = livez(port, &server_ca.cert_path(), Some(&other)).await;
    assert!(refused.is_err(), "{refused:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = scratch_dir();
    let first_ca = TestCa::new(&dir, "first");
    let server = first_ca.issue_server("server");
    let (port, tls) = serve_tls(&settings(&server, None)).await;
    assert_eq!(
        livez(port, &first_ca.cert_path(), None).await.as_deref(),
        Ok("200")
    );
    assert!(!tls.reload_if_changed().unwrap(), "nothing changed yet");

    // The files are replaced by a certificate of another CA, as a renewal would.
    let second_ca = TestCa::new(&dir, "second");
    let renewed = second_ca.issue_server("renewed");
    std::fs::copy(&renewed.cert_path, &server.cert_path).unwrap();
    std::fs::copy(&renewed.key_path, &server.key_path).unwrap();
    assert!(tls.reload_if_changed().unwrap());
    assert_eq!(
        livez(port, &second_ca.cert_path(), None).await.as_deref(),
        Ok("200")
    );
    assert!(livez(port, &first_ca.cert_path(), None).await.is_err());

    // A key that is not the certificate's: refused, and the renewed certificate stays.
    let unrelated = second_ca.issue_server("unrelated");
    std::fs::copy(&unrelated.key_path, &server.key_path).unwrap();
    assert!(matches!(
        tls.reload_if_changed(),
        Err(TlsLoadError::KeyNotUsable { .. })
    ));
    assert_eq!(
        livez(port, &second_ca.cert_path(), None).await.as_deref(),
        Ok("200")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_at_start() {
    let dir = scratch_dir();
    let ca = TestCa::new(&dir, "server");
    let server = ca.issue_server("server");
    let other = ca.issue_server("other");
    let mut mismatched = settings(&server, None);
    mismatched.key_path = other.key_path.clone();
    let err = ServerTls::load(&mismatched).err().expect("refused");
    assert!(matches!(err, TlsLoadError::KeyNotUsable { .. }), "{err}");
    let mut missing = settings(&server, None);
    missing.cert_path = dir.join("absent.pem");
    let err = ServerTls::load(&missing).err().expect("refused");
    assert!(err.to_string().contains("absent.pem"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
