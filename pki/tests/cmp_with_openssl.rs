//! `openssl cmp` (OpenSSL 3.0's CMP client) as the judge of `pki::cmp`'s wire format: a
//! loopback HTTP responder that reads its requests with `CmpRequest`, checks their
//! password-based MAC, and answers with `CmpAnswer` protected by the same MAC. The client
//! must accept every answer: an `ir` answered by `ip` and then `certConf` by `pkiconf`, the
//! same with implicit confirmation, and a `genm` for the CA certificates. A device whose
//! secret is wrong gets CMP's own error, not a certificate.
//!
//! No service logic here (credentials, devices, CAs): that is the api's; this proves only
//! that what we write is what a standard client reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use der::Decode;
use pki::cmp::{
    CertAnswerKind, CmpAnswer, CmpAnswerBody, CmpProtection, CmpRequest, CmpRequestBody, PkiFailure,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const SECRET: &[u8] = b"device-secret";

/// A CA for the test, and the device key `openssl cmp` enrolls (written to `dir`).
struct TestCa {
    der: Vec<u8>,
    name: x509_cert::name::Name,
    params: CertificateParams,
    key: KeyPair,
    device_key: KeyPair,
}

impl TestCa {
    fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let name = x509_cert::Certificate::from_der(&der)
            .unwrap()
            .tbs_certificate
            .subject;
        let device_key = KeyPair::generate().unwrap();
        std::fs::write(dir.join("device.key"), device_key.serialize_pem()).unwrap();
        Self {
            der,
            name,
            params,
            key,
            device_key,
        }
    }

    fn issue(&self, common_name: &str) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let issuer = Issuer::from_params(&self.params, &self.key);
        params
            .signed_by(&self.device_key, &issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    /// The answer to one request, as the service would give it.
    fn answer(&self, request: &[u8]) -> Vec<u8> {
        let request = CmpRequest::from_der(request).expect("openssl's request reads");
        let CmpProtection::PasswordBasedMac(pbm) = &request.protection else {
            panic!("MAC-protected");
        };
        let genuine = pbm.verifies(SECRET, &request.protected_part, &request.protection_bits);
        let body = match (&request.body, genuine) {
            (_, false) => CmpAnswerBody::Error {
                failure: PkiFailure::BadMessageCheck,
                text: "the MAC does not verify".to_owned(),
            },
            (CmpRequestBody::Ir(_), true) => CmpAnswerBody::Certified {
                kind: CertAnswerKind::Ip,
                cert_req_id: 0,
                certificate: self.issue("SN-0001"),
                ca_pubs: vec![self.der.clone()],
            },
            (CmpRequestBody::CertConf(_), true) => CmpAnswerBody::Confirmed,
            (CmpRequestBody::Genm(_), true) => {
                CmpAnswerBody::CaCertificates(vec![self.der.clone()])
            }
            (other, true) => panic!("unexpected {}", other.name()),
        };
        let answer = CmpAnswer::new(
            &request,
            self.name.clone(),
            pbm.algorithm().clone(),
            None,
            request.implicit_confirm,
            &body,
        )
        .unwrap();
        let protection = pbm.protect(SECRET, &answer.protected_part().unwrap());
        answer.into_message(&protection, &[]).unwrap()
    }
}

/// Serves CMP over HTTP (RFC 6712) on a loopback port until the test ends: its port.
fn serve(ca: std::sync::Arc<TestCa>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let answer = ca.answer(&body);
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&answer);
        }
    });
    port
}

fn openssl_cmp(dir: &Path, port: u16, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .arg("cmp")
        .args([
            "-server",
            &format!("127.0.0.1:{port}/.well-known/cmp/p/line-7"),
        ])
        .args(["-ref", "SN-0001", "-recipient", "/CN=Test CA"])
        .args(args)
        .output()
        .expect("openssl is installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

fn subject_of(dir: &Path, pem: &str) -> String {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-noout", "-subject", "-in", pem])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cmp-openssl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn openssl_enrolls_with_ir_and_confirms_and_reads_the_ca_certificates() {
    let dir = scratch();
    let ca = std::sync::Arc::new(TestCa::new(&dir));
    let port = serve(ca);
    let enroll = |certout: &str, secret: &str, extra: &[&str]| {
        let mut args = vec![
            "-cmd",
            "ir",
            "-secret",
            secret,
            "-subject",
            "/CN=SN-0001",
            "-newkey",
            "device.key",
            "-certout",
            certout,
        ];
        args.extend_from_slice(extra);
        openssl_cmp(&dir, port, &args)
    };

    // ir → ip, certConf → pkiconf.
    let (ok, said) = enroll("confirmed.pem", "pass:device-secret", &[]);
    assert!(ok, "{said}");
    assert_eq!(subject_of(&dir, "confirmed.pem"), "subject=CN = SN-0001");

    // ir with implicit confirmation → ip alone.
    let (ok, said) = enroll("implicit.pem", "pass:device-secret", &["-implicit_confirm"]);
    assert!(ok, "{said}");
    assert_eq!(subject_of(&dir, "implicit.pem"), "subject=CN = SN-0001");

    // genm for the CA certificates → genp, which OpenSSL 3.0 prints.
    let (ok, said) = openssl_cmp(
        &dir,
        port,
        &[
            "-cmd",
            "genm",
            "-secret",
            "pass:device-secret",
            "-infotype",
            "caCerts",
        ],
    );
    assert!(ok, "{said}");
    assert!(said.contains("caCerts"), "{said}");

    // A wrong secret: the answer is CMP's error, never a certificate (the client, holding
    // another secret, cannot check its MAC either, and says so).
    let (ok, said) = enroll("stolen.pem", "pass:guessed", &[]);
    assert!(!ok, "{said}");
    assert!(!dir.join("stolen.pem").exists());
    std::fs::remove_dir_all(&dir).ok();
}
