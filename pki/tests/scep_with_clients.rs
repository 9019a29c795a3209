//! `pki::scep` against what SCEP clients send and read: a PKCSReq that micromdm's
//! `scepclient` made (`tests/fixtures/scep/`) is read, its signature checked and its envelope
//! opened (the RA key's decryption by `openssl pkeyutl`, as the RA's token would do it);
//! our `CertRep` answers are checked by OpenSSL: the signature (`openssl cms -verify`), the
//! attributes, and, for a certificate, the envelope opened with the device's key.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pki::scep::{
    open_envelope, CertRep, ContentCipher, MessageType, ScepCertificateRequest, ScepFailInfo,
    ScepRequest, ScepStatus,
};
use pki::{KeyFile, KeyUnavailable, SigningKey};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scep")
        .join(name)
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scep-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The RA key's PKCS#1 v1.5 decryption, by OpenSSL (the token's job in the service).
fn ra_decrypts(dir: &Path) -> impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, KeyUnavailable> + '_ {
    move |ciphertext| {
        std::fs::write(dir.join("transported"), ciphertext).unwrap();
        let key = fixture("ra.key");
        let (ok, _) = openssl(
            dir,
            &[
                "pkeyutl",
                "-decrypt",
                "-inkey",
                key.to_str().unwrap(),
                "-pkeyopt",
                "rsa_padding_mode:pkcs1",
                "-in",
                "transported",
                "-out",
                "cek",
            ],
        );
        Ok(ok.then(|| std::fs::read(dir.join("cek")).unwrap()))
    }
}

fn ra() -> CertRep {
    let ra_pem = std::fs::read_to_string(fixture("ra.pem")).unwrap();
    let der = pem::parse(&ra_pem).unwrap().into_contents();
    let key: Arc<dyn SigningKey> =
        Arc::new(KeyFile::read("SCEP_RA_KEY", &fixture("ra.key")).unwrap());
    CertRep::new(&der, key).unwrap()
}

#[test]
fn micromdm_s_pkcsreq_is_read_its_signature_checked_and_its_des_envelope_opened() {
    let der = std::fs::read(fixture("micromdm-pkcsreq.der")).unwrap();
    let request = ScepRequest::from_der(&der).unwrap();
    assert_eq!(request.message_type, MessageType::PkcsReq);
    assert_eq!(request.transaction_id, "EIQpcHPnC9G3SvcH3E/MPCKR4NU=");
    assert_eq!(request.sender_nonce.len(), 16);
    assert!(
        request.signed_with_sha1,
        "scepclient 2.1.0 signs with SHA-1"
    );

    let dir = scratch();
    let opened = open_envelope(&request.envelope, &ra().recipient(), ra_decrypts(&dir)).unwrap();
    assert_eq!(
        opened.cipher,
        ContentCipher::DesCbc,
        "whatever GetCACaps said"
    );
    std::fs::write(dir.join("csr.der"), &opened.content).unwrap();
    let (ok, said) = openssl(
        &dir,
        &[
            "req", "-inform", "DER", "-in", "csr.der", "-noout", "-verify", "-text",
        ],
    );
    assert!(ok, "{said}");
    assert!(
        said.contains("CN = SN-SCEP-1") || said.contains("CN=SN-SCEP-1"),
        "{said}"
    );
    assert!(
        said.contains("sekret+/=key"),
        "the challenge password travels inside: {said}"
    );
    // As the service takes it: the signature verified, the challenge handed over apart, the
    // request kept without it.
    let csr = ScepCertificateRequest::from_der(&opened.content).unwrap();
    assert_eq!(
        csr.challenge_password.as_ref().map(|p| p.expose()),
        Some("sekret+/=key")
    );
    assert_eq!(
        format!("{:?}", csr.challenge_password.unwrap()),
        "ChallengePassword(<redacted>)"
    );
    csr.request
        .check_subject(&domain::SerialNumber::parse("SN-SCEP-1").unwrap())
        .unwrap();
    let kept = serde_json::to_string(&csr.request).unwrap();
    assert!(!kept.contains("sekret"), "{kept}");
    let mut forged = opened.content.clone();
    let at = forged.len() - 10;
    forged[at] ^= 0x01;
    assert!(
        ScepCertificateRequest::from_der(&forged).is_err(),
        "a signature that does not verify"
    );

    // A byte changed anywhere in what the signature covers: refused.
    for at in [40, der.len() / 2, der.len() - 300] {
        let mut changed = der.clone();
        changed[at] ^= 0x01;
        assert!(ScepRequest::from_der(&changed).is_err(), "byte {at}");
    }
    // Every truncation is read or refused, never a panic.
    for end in (0..der.len()).step_by(7) {
        let _ = ScepRequest::from_der(&der[..end]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn certmonger_s_pkcsreq_with_its_overlong_serial_is_read_and_its_aes_envelope_opened() {
    let der = std::fs::read(fixture("certmonger-pkcsreq.der")).unwrap();
    let request = ScepRequest::from_der(&der).unwrap();
    assert_eq!(request.message_type, MessageType::PkcsReq);
    assert!(!request.signed_with_sha1);
    assert!(
        request.transaction_id.chars().all(|c| c.is_ascii_digit()),
        "a decimal SHA-256"
    );
    let dir = scratch();
    let opened = open_envelope(&request.envelope, &ra().recipient(), ra_decrypts(&dir)).unwrap();
    assert_eq!(opened.cipher, ContentCipher::Aes256Cbc);
    std::fs::write(dir.join("csr.der"), &opened.content).unwrap();
    let (ok, said) = openssl(
        &dir,
        &[
            "req", "-inform", "DER", "-in", "csr.der", "-noout", "-verify", "-text",
        ],
    );
    assert!(
        ok && said.contains("SN-SCEP-2") && said.contains("sekret+/=key"),
        "{said}"
    );

    // Our answer opens with certmonger's key, its certificate named by issuer and serial as
    // certmonger named it, 33-byte serial and all (legacy PKCS#7 readers know no other way).
    let issued = pem::parse(std::fs::read_to_string(fixture("ra.pem")).unwrap())
        .unwrap()
        .into_contents();
    let answer = ra()
        .answer(
            &request,
            &ScepStatus::Success {
                certificate: issued,
            },
        )
        .unwrap();
    checked_by_openssl(&dir, &answer);
    let key = fixture("certmonger-device.key");
    let (ok, said) = openssl(
        &dir,
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            "content.der",
            "-inkey",
            key.to_str().unwrap(),
            "-out",
            "degenerate.der",
        ],
    );
    assert!(ok, "openssl cms -decrypt: {said}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_envelope_that_does_not_decrypt_is_one_failure_whatever_went_wrong() {
    let der = std::fs::read(fixture("micromdm-pkcsreq.der")).unwrap();
    let request = ScepRequest::from_der(&der).unwrap();
    // The key transport does not decrypt, or decrypts to another key: the same error.
    let refused = open_envelope(&request.envelope, &ra().recipient(), |_| Ok(None));
    let wrong = open_envelope(&request.envelope, &ra().recipient(), |_| {
        Ok(Some(vec![1u8; 8]))
    });
    assert_eq!(
        refused.unwrap_err().to_string(),
        "the pkcsPKIEnvelope does not decrypt"
    );
    assert_eq!(
        wrong.unwrap_err().to_string(),
        "the pkcsPKIEnvelope does not decrypt"
    );
    // Not for this RA.
    let mut other = ra().recipient();
    other.serial_number = x509_cert::serial_number::SerialNumber::new(&[9]).unwrap();
    assert!(matches!(
        open_envelope(&request.envelope, &other, |_| unreachable!()),
        Err(pki::scep::EnvelopeError::NotForUs)
    ));
}

/// `answer` as OpenSSL reads it: the signature verified against the RA certificate, and the
/// signed attributes as `openssl cms -cmsout -print` shows them.
fn checked_by_openssl(dir: &Path, answer: &[u8]) -> String {
    std::fs::write(dir.join("answer.der"), answer).unwrap();
    let ra = fixture("ra.pem");
    let ca = fixture("ca.pem");
    let (ok, said) = openssl(
        dir,
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "answer.der",
            "-CAfile",
            ca.to_str().unwrap(),
            "-certfile",
            ra.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "content.der",
        ],
    );
    assert!(ok, "openssl cms -verify: {said}");
    let (ok, printed) = openssl(
        dir,
        &[
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            "answer.der",
        ],
    );
    assert!(ok, "{printed}");
    printed
}

#[test]
fn our_cert_rep_is_signed_by_the_ra_and_its_certificate_opens_with_the_device_s_key() {
    let der = std::fs::read(fixture("micromdm-pkcsreq.der")).unwrap();
    let request = ScepRequest::from_der(&der).unwrap();
    let dir = scratch();
    // Any certificate will do as the one issued: the RA's own.
    let issued = pem::parse(std::fs::read_to_string(fixture("ra.pem")).unwrap())
        .unwrap()
        .into_contents();
    let answer = ra()
        .answer(
            &request,
            &ScepStatus::Success {
                certificate: issued.clone(),
            },
        )
        .unwrap();
    let printed = checked_by_openssl(&dir, &answer);
    let flat = printed.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("2.16.840.1.113733.1.9.2) set: PRINTABLESTRING:3"),
        "{printed}"
    );
    assert!(
        flat.contains("2.16.840.1.113733.1.9.3) set: PRINTABLESTRING:0"),
        "{printed}"
    );
    assert!(
        flat.contains("PRINTABLESTRING:EIQpcHPnC9G3SvcH3E/MPCKR4NU="),
        "{printed}"
    );
    // The content: an envelope for the device, holding the certificate.
    let signer = pki::scep::signer_certificate_pem(&request);
    std::fs::write(dir.join("device.pem"), signer).unwrap();
    let key = fixture("micromdm-device.key");
    let (ok, said) = openssl(
        &dir,
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            "content.der",
            "-recip",
            "device.pem",
            "-inkey",
            key.to_str().unwrap(),
            "-out",
            "degenerate.der",
        ],
    );
    assert!(ok, "openssl cms -decrypt: {said}");
    let (ok, certs) = openssl(
        &dir,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "degenerate.der",
            "-print_certs",
        ],
    );
    assert!(ok && certs.contains("Fixture SCEP RA"), "{certs}");

    // PENDING and FAILURE: signed, their content present and empty, failInfo on failure.
    for (status, code, fail_info) in [
        (ScepStatus::Pending, "3", None),
        (
            ScepStatus::Failure(ScepFailInfo::BadRequest),
            "2",
            Some("2"),
        ),
    ] {
        let printed = checked_by_openssl(&dir, &ra().answer(&request, &status).unwrap());
        let flat = printed.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&format!(
                "2.16.840.1.113733.1.9.3) set: PRINTABLESTRING:{code}"
            )),
            "{printed}"
        );
        match fail_info {
            Some(info) => assert!(
                flat.contains(&format!(
                    "2.16.840.1.113733.1.9.4) set: PRINTABLESTRING:{info}"
                )),
                "{printed}"
            ),
            None => assert!(!flat.contains("2.16.840.1.113733.1.9.4"), "{printed}"),
        }
        assert_eq!(
            std::fs::read(dir.join("content.der")).unwrap(),
            b"",
            "empty content"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
