//! CA keys in a real PKCS#11 token (SoftHSM2, which `scripts/test-clients` installs; a token
//! made for this run in a temporary directory): generated there, never readable, and
//! everything the CA signs through them (certificates, CRLs) is checked by OpenSSL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use testkit::SoftHsmToken;

use app::pki::{CrlSigner, RevocationListContent};
use app::CertificateRequest;
use chrono::Utc;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use domain::{CertificateRequestId, CertificateSigningRequest, DeviceId, SerialNumber};
use pki::{CaCurve, IssuingCa, Pkcs11Module, Pkcs11Uri, RcgenKey, SigningKey};

/// The token of this test process (`testkit::SoftHsmToken`), its configuration set for this
/// process before the module is first loaded. Every test makes keys of its own labels in it.
fn token() -> &'static SoftHsmToken {
    static TOKEN: OnceLock<SoftHsmToken> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pki-softhsm-{}", uuid::Uuid::new_v4()));
        let token = SoftHsmToken::new(&dir, "pki-tests");
        std::env::set_var("SOFTHSM2_CONF", &token.conf);
        token
    })
}

/// One test at a time in the token: SoftHSM 2.6 now and then refuses a key generation that
/// runs beside other work in the same token (CKR_GENERAL_ERROR, CKR_TEMPLATE_INCONSISTENT);
/// concurrent signing, which the CA does, is tested on its own below.
fn one_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TOKEN_IN_USE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TOKEN_IN_USE.lock().unwrap_or_else(|e| e.into_inner())
}

fn user_pin() -> String {
    let pin = std::fs::read_to_string(&token().pin_file).unwrap();
    pin.trim_end().to_owned()
}

fn module() -> Pkcs11Module {
    Pkcs11Module::load(&SoftHsmToken::module_path(), &token().pin_file).unwrap()
}

fn uri(object: &str) -> Pkcs11Uri {
    Pkcs11Uri::parse(&token().uri(object)).unwrap()
}

/// A self-signed CA certificate for `key`, signed in the token.
fn ca_certificate(key: Arc<dyn SigningKey>, name: &str) -> String {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.self_signed(&RcgenKey(key)).unwrap().pem()
}

fn request(serial: &str) -> CertificateRequest {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, serial);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    CertificateRequest {
        device_id: DeviceId::from_uuid(uuid::Uuid::new_v4()),
        request_id: CertificateRequestId::from_uuid(uuid::Uuid::new_v4()),
        serial_number: SerialNumber::parse(serial).unwrap(),
        request: CertificateSigningRequest::from_pem(&csr).unwrap().into(),
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pki-hsm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `openssl <args>` in `dir`: whether it succeeded, and what it said.
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

#[test]
fn a_key_made_in_the_token_never_leaves_it() {
    let _token = one_test_at_a_time();
    let key = module()
        .generate(&uri("never-leaves"), CaCurve::P256)
        .unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);

    // Another client of the token, logged in as its user, asks for the private key's value.
    let pkcs11 = Pkcs11::new(SoftHsmToken::module_path()).unwrap();
    let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|slot| pkcs11.get_token_info(*slot).unwrap().label().trim_end() == token().label)
        .unwrap();
    let session = pkcs11.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(user_pin())));
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"never-leaves".to_vec()),
        ])
        .unwrap();
    assert_eq!(private.len(), 1);
    let info = session
        .get_attribute_info(private[0], &[AttributeType::Value])
        .unwrap();
    assert!(
        matches!(info.as_slice(), [AttributeInfo::Sensitive]),
        "the value is not given out: {info:?}"
    );
    let flags = session
        .get_attributes(
            private[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
            ],
        )
        .unwrap();
    assert!(flags.contains(&Attribute::Sensitive(true)), "{flags:?}");
    assert!(flags.contains(&Attribute::Extractable(false)), "{flags:?}");
    assert!(
        flags.contains(&Attribute::NeverExtractable(true)),
        "{flags:?}"
    );
}

#[test]
fn a_ca_in_the_token_issues_certificates_and_crls_that_openssl_verifies() {
    let _token = one_test_at_a_time();
    for (curve, object) in [(CaCurve::P256, "ca-p256"), (CaCurve::P384, "ca-p384")] {
        let key: Arc<dyn SigningKey> = Arc::new(module().generate(&uri(object), curve).unwrap());
        let ca_pem = ca_certificate(key.clone(), object);
        // The key found again by its URI, as a worker that starts later would.
        let reopened: Arc<dyn SigningKey> = Arc::new(module().open(&uri(object)).unwrap());
        assert_eq!(reopened.public_key(), key.public_key());
        let ca = IssuingCa::new(&ca_pem, reopened, chrono::Duration::days(30)).unwrap();

        let issued = ca
            .issue_verified(&request("HSM-1"), Utc::now())
            .expect("the token signs")
            .expect("issued");
        let now = Utc::now();
        let crl = ca
            .sign_crl(&RevocationListContent {
                number: 1,
                this_update: now,
                next_update: now + chrono::Duration::hours(1),
                entries: Vec::new(),
            })
            .unwrap();

        let dir = scratch();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.join("device.pem"), &issued.pem).unwrap();
        std::fs::write(dir.join("crl.der"), &crl).unwrap();
        let (ok, said) = openssl(&dir, &["verify", "-CAfile", "ca.pem", "device.pem"]);
        assert!(ok && said.contains("device.pem: OK"), "{object}: {said}");
        let (ok, said) = openssl(
            &dir,
            &[
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
            ],
        );
        assert!(ok && said.contains("verify OK"), "{object}: {said}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn the_token_signs_for_many_threads_at_once() {
    let _token = one_test_at_a_time();
    let key: Arc<dyn SigningKey> = Arc::new(
        module()
            .generate(&uri("many-threads"), CaCurve::P256)
            .unwrap(),
    );
    let ca_pem = ca_certificate(key.clone(), "many-threads");
    let ca = Arc::new(IssuingCa::new(&ca_pem, key, chrono::Duration::days(30)).unwrap());
    let signers: Vec<_> = (0..8)
        .map(|thread| {
            let ca = ca.clone();
            std::thread::spawn(move || {
                for n in 0..10 {
                    ca.issue_verified(&request(&format!("T{thread}-{n}")), Utc::now())
                        .expect("the token signs")
                        .expect("issued");
                }
            })
        })
        .collect();
    for signer in signers {
        signer.join().unwrap();
    }
}

#[test]
fn a_missing_key_or_token_is_named_and_the_pin_never_is() {
    let _token = one_test_at_a_time();
    let missing = module().open(&uri("no-such-key")).err().expect("refused");
    assert!(missing.to_string().contains("no-such-key"), "{missing}");
    let no_token = module()
        .open(&Pkcs11Uri::parse("pkcs11:token=elsewhere;object=k").unwrap())
        .err()
        .expect("refused");
    assert!(no_token.to_string().contains("elsewhere"), "{no_token}");
    for error in [missing.to_string(), no_token.to_string()] {
        assert!(!error.contains(&user_pin()), "{error}");
    }
}

#[test]
fn a_token_that_goes_away_is_an_outage_and_signing_resumes_when_it_is_back() {
    let _token = one_test_at_a_time();
    let key: Arc<dyn SigningKey> = Arc::new(
        module()
            .generate(&uri("comes-and-goes"), CaCurve::P256)
            .unwrap(),
    );
    key.sign(b"before").expect("the token signs");

    // The token's store vanishes, as an HSM that stops answering does.
    token().take_away();
    for attempt in ["first", "second"] {
        let refused = key.sign(attempt.as_bytes()).unwrap_err();
        assert!(refused.0.contains("PKCS#11"), "{refused}");
    }

    token().bring_back();
    // At most one re-initialisation a second: the next one after the token is back resumes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match key.sign(b"after") {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() > deadline => panic!("never resumed: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

#[test]
fn an_rsa_key_in_the_token_signs_and_decrypts_what_openssl_encrypted_to_it() {
    let _token = one_test_at_a_time();
    let module = module();
    let key = Arc::new(module.generate_rsa(&uri("scep-ra")).unwrap());
    assert_eq!(key.algorithm(), &rcgen::PKCS_RSA_SHA256);
    assert!(
        module.generate_rsa(&uri("scep-ra")).is_err(),
        "one key per label"
    );
    assert!(
        module.open(&uri("scep-ra")).is_err(),
        "not a CA key: CAs are ECDSA"
    );
    assert_eq!(
        module.open_rsa(&uri("scep-ra")).unwrap().public_key(),
        key.public_key()
    );

    // Signed in the token: OpenSSL checks the self-signed certificate's signature.
    let dir = scratch();
    let signer: Arc<dyn SigningKey> = key.clone();
    std::fs::write(dir.join("ra.pem"), ca_certificate(signer, "RA")).unwrap();
    let (ok, said) = openssl(&dir, &["verify", "-CAfile", "ra.pem", "ra.pem"]);
    assert!(ok, "{said}");
    let (ok, said) = openssl(&dir, &["x509", "-in", "ra.pem", "-noout", "-text"]);
    assert!(ok && said.contains("Public-Key: (2048 bit)"), "{said}");

    // A content-encryption key encrypted to it with OpenSSL (PKCS#1 v1.5), decrypted there.
    std::fs::write(dir.join("cek"), [7u8; 16]).unwrap();
    let (ok, said) = openssl(
        &dir,
        &[
            "pkeyutl",
            "-encrypt",
            "-certin",
            "-inkey",
            "ra.pem",
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
            "-in",
            "cek",
            "-out",
            "cek.enc",
        ],
    );
    assert!(ok, "{said}");
    let encrypted = std::fs::read(dir.join("cek.enc")).unwrap();
    assert_eq!(
        key.decrypt_pkcs1v15(&encrypted).unwrap(),
        Some(vec![7u8; 16])
    );
    // What does not decrypt is said as such, never as an outage, and the key works on.
    let mut tampered = encrypted.clone();
    tampered[0] ^= 0xff;
    tampered[1] ^= 0xff;
    assert_eq!(key.decrypt_pkcs1v15(&tampered).unwrap(), None);
    assert_eq!(key.decrypt_pkcs1v15(b"short").unwrap(), None);
    assert_eq!(
        key.decrypt_pkcs1v15(&encrypted).unwrap(),
        Some(vec![7u8; 16])
    );
    std::fs::remove_dir_all(&dir).ok();
}
