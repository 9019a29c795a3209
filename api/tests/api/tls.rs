//! TLS on the api's socket, checked with curl as the client: the configured certificate is
//! served and trusted through its CA; client certificates are optional, but one from another
//! CA than `TLS_CLIENT_CA_PATH` fails the handshake; a renewed certificate is served without
//! a restart, and a broken renewal leaves the previous one in place. An answer sent before a
//! large body was read (a 413) reaches the client, not a reset (over plain HTTP too).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use api::tls::{ServerTls, TlsLoadError, TlsSettings};
use testkit::{IssuedFiles, TestCa};

use crate::helpers::{build_app, serve_application, serve_built, token_for};

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
    let app = build_app(|config| config.tls = Some(settings.clone())).await;
    let tls = app.tls().expect("the api serves TLS");
    (serve_built(app).port(), tls)
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

/// POSTs a `body_len`-byte body (over TLS trusting `ca`, or plain HTTP without), writing all
/// of it before reading anything (as a client busy uploading does), then reads the answer:
/// its status line, or what failed (the write, or the read).
async fn post_everything_then_read(
    port: u16,
    ca: Option<&Path>,
    token: &str,
    body_len: usize,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut io: Box<dyn Io> = match ca {
        None => Box::new(tcp),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            Box::new(tls)
        }
    };
    let head = format!(
        "POST /v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: \"large\"\r\n\
         Content-Length: {body_len}\r\n\r\n"
    );
    let chunk = vec![b'a'; 64 * 1024];
    let written = async {
        io.write_all(head.as_bytes()).await?;
        let mut sent = 0;
        while sent < body_len {
            let n = chunk.len().min(body_len - sent);
            io.write_all(&chunk[..n]).await?;
            sent += n;
        }
        io.flush().await
    }
    .await;
    let mut answer = Vec::new();
    let read = io.read_to_end(&mut answer).await;
    let status_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    // A failed write is a failure even if the answer can be read afterwards: clients report
    // the send's error (curl: "Failed sending data to the peer") and never read on.
    match (written, read) {
        (Ok(()), Ok(_)) if !status_line.is_empty() => Ok(status_line),
        (written, read) => Err(format!(
            "write: {written:?}, read: {read:?}, answer: {status_line:?}"
        )),
    }
}

/// A body past the limit is answered 413 before it has been read, and the server then closes
/// the connection. Closing a socket with the client's bytes still unread resets it: a client
/// still sending saw its write fail with "broken pipe" and never read the 413 (curl over TLS:
/// "Failed sending data to the peer", for about half of 1 MB bodies) until the close lingered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_reaches_a_client_still_sending_its_body() {
    let dir = scratch_dir();
    let ca = TestCa::new(&dir, "server");
    let server = ca.issue_server("server");
    let (tls_port, _) = serve_tls(&settings(&server, None)).await;
    let plain_port = serve_application(|_| {}).await.port();
    let token = token_for("acme", "devices:write");
    // 16 MiB: far more than the server reads before answering (the test's limit, 64 KiB,
    // twice) and than the sockets' buffers hold, so the client is still writing when the
    // server closes.
    for (port, ca) in [(tls_port, Some(ca.cert_path())), (plain_port, None)] {
        for _ in 0..3 {
            let answer = post_everything_then_read(port, ca.as_deref(), &token, 16 << 20).await;
            assert_eq!(
                answer.as_deref(),
                Ok("HTTP/1.1 413 Payload Too Large"),
                "TLS: {}",
                ca.is_some()
            );
        }
    }
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
    let err = ServerTls::load(&mismatched, Default::default())
        .err()
        .expect("refused");
    assert!(matches!(err, TlsLoadError::KeyNotUsable { .. }), "{err}");
    let mut missing = settings(&server, None);
    missing.cert_path = dir.join("absent.pem");
    let err = ServerTls::load(&missing, Default::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("absent.pem"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
