//! A tenant's CAs as a relying party sees them, judged by OpenSSL: a root made for its key,
//! an issuing CA certified by the root, a device certificate by the issuing CA; the chain
//! verifies against the tenant's root alone (the issuing CA offered as untrusted), never
//! against another tenant's root, even with that tenant's issuing CA offered; nothing the
//! issuing CA issues outlives it. Keys in a key-file store here; in a token in
//! `pkcs11_key.rs` and the worker's pipeline.

use std::path::{Path, PathBuf};
use std::process::Command;

use app::pki::PublicBaseUrl;
use app::CertificateRequest;
use chrono::Utc;
use domain::{
    CaCommonName, CaKeyCurve, CaSpec, CertificateRequestId, CertificateSigningRequest, DeviceId,
    SerialNumber, TenantId,
};
use pki::ca_certification::{certify_issuing, certify_root};
use pki::{IssuingCa, KeyStore};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pki-chain-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec(name: &str, curve: CaKeyCurve, days: u32) -> CaSpec {
    CaSpec {
        curve,
        common_name: CaCommonName::parse(name).unwrap(),
        validity_days: days,
    }
}

/// A tenant's root and issuing CA, keys in `store`; (root PEM, issuing CA ready to issue).
fn tenant_cas(store: &KeyStore, tenant: &str, issuing_days: u32) -> (String, String, IssuingCa) {
    let tenant = TenantId::parse(tenant).unwrap();
    let now = Utc::now();
    let (_, root_key) = store
        .make_or_open(&format!("{}-root", tenant.as_str()), CaKeyCurve::P384)
        .unwrap();
    let root_spec = spec("Root CA", CaKeyCurve::P384, 3650);
    let root = certify_root(&tenant, &root_spec, root_key.clone(), now).unwrap();
    let root_ca = IssuingCa::new(&root.pem, root_key, chrono::Duration::days(1)).unwrap();
    let (_, issuing_key) = store
        .make_or_open(&format!("{}-issuing", tenant.as_str()), CaKeyCurve::P256)
        .unwrap();
    let base = PublicBaseUrl::parse("http://pki.example.com").unwrap();
    let issuing_spec = spec("Issuing CA", CaKeyCurve::P256, issuing_days);
    let issuing = certify_issuing(
        &root_ca,
        root.not_after,
        &tenant,
        &issuing_spec,
        issuing_key.clone(),
        &base,
        now,
    )
    .unwrap();
    let issuing_ca = IssuingCa::new(&issuing.pem, issuing_key, chrono::Duration::days(365))
        .unwrap()
        .with_status_urls(&base);
    assert_eq!(
        issuing_ca.id(),
        &issuing.id,
        "the id events record is the CA's"
    );
    (root.pem, issuing.pem, issuing_ca)
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
fn a_tenant_s_chain_verifies_against_its_root_only() {
    let dir = scratch();
    let store = KeyStore::Directory(dir.join("keys"));
    let (a_root, a_issuing, a_ca) = tenant_cas(&store, "acme", 730);
    let (b_root, b_issuing, b_ca) = tenant_cas(&store, "globex", 730);
    let a_device = a_ca
        .issue_verified(&request("A-1"), Utc::now())
        .unwrap()
        .unwrap();
    let b_device = b_ca
        .issue_verified(&request("B-1"), Utc::now())
        .unwrap()
        .unwrap();
    for (file, pem) in [
        ("a-root.pem", &a_root),
        ("a-issuing.pem", &a_issuing),
        ("a-device.pem", &a_device.pem),
        ("b-root.pem", &b_root),
        ("b-issuing.pem", &b_issuing),
        ("b-device.pem", &b_device.pem),
    ] {
        std::fs::write(dir.join(file), pem).unwrap();
    }
    let verify = |root: &str, untrusted: &str, device: &str| {
        openssl(
            &dir,
            &[
                "verify",
                "-x509_strict",
                "-CAfile",
                root,
                "-untrusted",
                untrusted,
                device,
            ],
        )
    };
    let (ok, said) = verify("a-root.pem", "a-issuing.pem", "a-device.pem");
    assert!(ok && said.contains("a-device.pem: OK"), "{said}");
    // B's device, B's issuing CA offered as an intermediate: not A's relying parties'.
    let (ok, said) = verify("a-root.pem", "b-issuing.pem", "b-device.pem");
    assert!(!ok, "{said}");
    let (ok, said) = verify("b-root.pem", "b-issuing.pem", "b-device.pem");
    assert!(ok, "{said}");
    // Without its issuing CA, a device certificate verifies against nothing.
    let (ok, _) = openssl(&dir, &["verify", "-CAfile", "a-root.pem", "a-device.pem"]);
    assert!(!ok);

    // What each CA may do: the root certifies CAs, the issuing CA only end entities.
    let (_, text) = openssl(&dir, &["x509", "-in", "a-issuing.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(
        text.contains("O=acme, CN=Issuing CA") || text.contains("O = acme, CN = Issuing CA"),
        "{text}"
    );
    assert!(
        text.contains("http://pki.example.com/pki/"),
        "names the root's CRL: {text}"
    );
    let (_, text) = openssl(&dir, &["x509", "-in", "a-root.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:1"), "{text}");
    assert!(
        text.contains("secp384r1") || text.contains("P-384"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nothing_outlives_the_ca_that_issued_it() {
    let dir = scratch();
    let store = KeyStore::Directory(dir.join("keys"));
    // An issuing CA of 10 days issuing certificates of a year.
    let (_, _, ca) = tenant_cas(&store, "acme", 10);
    let issued = ca
        .issue_verified(&request("A-2"), Utc::now())
        .unwrap()
        .unwrap();
    assert_eq!(issued.not_after, ca.not_after());
    assert!(issued.not_after < Utc::now() + chrono::Duration::days(11));
    // Once it has ended it signs nothing: an outage, not a refusal of the device.
    let later = ca.not_after() + chrono::Duration::seconds(1);
    assert!(ca.issue(&request("A-3"), later).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_issuing_ca_never_outlives_its_root() {
    let dir = scratch();
    let store = KeyStore::Directory(dir.join("keys"));
    let tenant = TenantId::parse("acme").unwrap();
    let now = Utc::now();
    let (_, root_key) = store.make_or_open("short-root", CaKeyCurve::P256).unwrap();
    let root = certify_root(
        &tenant,
        &spec("Root", CaKeyCurve::P256, 30),
        root_key.clone(),
        now,
    )
    .unwrap();
    let root_ca = IssuingCa::new(&root.pem, root_key, chrono::Duration::days(1)).unwrap();
    let (_, key) = store
        .make_or_open("long-issuing", CaKeyCurve::P256)
        .unwrap();
    let base = PublicBaseUrl::parse("http://pki.example.com").unwrap();
    let issuing = certify_issuing(
        &root_ca,
        root.not_after,
        &tenant,
        &spec("Issuing", CaKeyCurve::P256, 3650),
        key,
        &base,
        now,
    )
    .unwrap();
    assert_eq!(issuing.not_after, root.not_after);
    std::fs::remove_dir_all(dir).unwrap();
}
