//! The CA's CRL as relying parties use it: fetched without a token from the URL every
//! certificate names, checked by OpenSSL (`openssl verify -crl_check`). A revocation reaches
//! it within seconds; it is re-issued before `nextUpdate` with nothing new; its number only
//! grows, across worker restarts and kills.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::helpers::{registration, unique_serial, Stack};
use crate::openssl::{openssl, path};
use crate::provisioning::PATIENCE;

/// The path part of the certificate's CRL distribution point (`/pki/<ca>/crl`).
pub(crate) fn crl_path_named_by(cert_pem: &str) -> String {
    let der = pem::parse(cert_pem).unwrap().into_contents();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    for extension in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = extension.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    if let Some(GeneralName::URI(uri)) = names.first() {
                        let path = &uri[uri.find("/pki/").expect("a /pki/ URL")..];
                        return path.to_owned();
                    }
                }
            }
        }
    }
    panic!("the certificate names no CRL distribution point");
}

pub(crate) struct FetchedCrl {
    pub der: Vec<u8>,
    etag: String,
    pub number: u64,
    pub serials: Vec<String>,
}

async fn fetch_crl(stack: &Stack, path: &str) -> Option<FetchedCrl> {
    // No token: CRLs are public.
    let response = stack.client.get(stack.url(path)).send().await.unwrap();
    if response.status() == 404 {
        return None;
    }
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pkix-crl");
    let cache_control = response.headers()["cache-control"].to_str().unwrap();
    assert!(
        cache_control.starts_with("public, max-age="),
        "{cache_control}"
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let der = response.bytes().await.unwrap().to_vec();
    let (_, crl) = CertificateRevocationList::from_der(&der).expect("a DER CRL");
    let number = crl.crl_number().expect("a CRL number").to_u64_digits()[0];
    let serials = crl
        .iter_revoked_certificates()
        .map(|entry| hex::encode(entry.raw_serial()))
        .collect();
    Some(FetchedCrl {
        der,
        etag,
        number,
        serials,
    })
}

pub(crate) async fn wait_for_crl(
    stack: &Stack,
    path: &str,
    timeout: Duration,
    accept: impl Fn(&FetchedCrl) -> bool,
) -> FetchedCrl {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(crl) = fetch_crl(stack, path).await {
            if accept(&crl) {
                return crl;
            }
        }
        assert!(Instant::now() < deadline, "no such CRL within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `openssl verify -crl_check` of `cert_pem` against the CA and `crl`: (ok, output).
async fn openssl_verify(stack: &Stack, cert_pem: &str, crl: &FetchedCrl) -> (bool, String) {
    let dir = stack
        .dir
        .join(format!("verify-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, crl_der, crl_pem) = (
        dir.join("device.pem"),
        dir.join("crl.der"),
        dir.join("crl.pem"),
    );
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&crl_der, &crl.der).unwrap();
    let (converted, out) = openssl(args(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path(&crl_der),
        "-out",
        &path(&crl_pem),
    ]))
    .await;
    assert!(converted, "{out}");
    openssl(args(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &path(&stack.dir.join("ca.pem")),
        "-CRLfile",
        &path(&crl_pem),
        &path(&cert),
    ]))
    .await
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[tokio::test]
async fn a_revoked_certificate_is_on_the_crl_and_openssl_refuses_it() {
    let mut stack = Stack::start().await;
    stack.spawn_worker_with_env(&[("CRL_MIN_INTERVAL_MS", "200".into())]);
    let id = stack.register(&registration(&unique_serial())).await;
    let device = stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let cert_pem = device["certificate"]["pem"].as_str().unwrap().to_owned();
    let serial = device["certificate"]["serial"].as_str().unwrap().to_owned();
    let crl_path = crl_path_named_by(&cert_pem);

    let before = wait_for_crl(&stack, &crl_path, PATIENCE, |_| true).await;
    assert!(!before.serials.contains(&serial));
    let (trusted, output) = openssl_verify(&stack, &cert_pem, &before).await;
    assert!(
        trusted,
        "a live certificate verifies with the CRL: {output}"
    );

    let response = stack
        .post(
            &format!("/v1/devices/{id}/certificate:revoke"),
            &json!({ "reason": "keyCompromise" }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let revoked_at = Instant::now();
    let after = wait_for_crl(&stack, &crl_path, PATIENCE, |crl| {
        crl.serials.contains(&serial)
    })
    .await;
    println!("revocation on the CRL after {:?}", revoked_at.elapsed());
    assert!(after.number > before.number, "CRL numbers only grow");
    let (trusted, output) = openssl_verify(&stack, &cert_pem, &after).await;
    assert!(!trusted, "a revoked certificate must not verify");
    assert!(output.contains("certificate revoked"), "{output}");
    let dir = stack.dir.join("crl-text");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("crl.der"), &after.der).unwrap();
    let (printed, text) = openssl(args(&[
        "crl",
        "-inform",
        "DER",
        "-noout",
        "-text",
        "-in",
        &path(&dir.join("crl.der")),
    ]))
    .await;
    assert!(printed, "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Next Update"), "{text}");

    // A client holding the current CRL is told so.
    let not_modified = stack
        .client
        .get(stack.url(&crl_path))
        .header("If-None-Match", &after.etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), after.etag);

    // An unknown CA, or no CA id at all.
    for missing in ["/pki/0000000000000000/crl", "/pki/not-a-ca/crl"] {
        let response = stack.client.get(stack.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    stack.assert_read_model_matches_events().await;
}

#[tokio::test]
async fn the_crl_is_reissued_before_next_update_and_its_number_survives_a_worker_kill() {
    let mut stack = Stack::start().await;
    let quick = [
        ("CRL_MIN_INTERVAL_MS", "200".to_owned()),
        ("CRL_VALIDITY_SECONDS", "10".to_owned()),
    ];
    let worker = stack.spawn_worker_with_env(&quick);
    let id = stack.register(&registration(&unique_serial())).await;
    let device = stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let serial = device["certificate"]["serial"].as_str().unwrap().to_owned();
    let crl_path = crl_path_named_by(device["certificate"]["pem"].as_str().unwrap());
    let response = stack
        .post(
            &format!("/v1/devices/{id}/decommission"),
            &json!({ "reason": "returned to vendor" }),
        )
        .await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let listed = wait_for_crl(&stack, &crl_path, PATIENCE, |crl| {
        crl.serials.contains(&serial)
    })
    .await;

    // Nothing changes, yet a new CRL comes once half of its validity (5 s) has passed.
    let reissued = wait_for_crl(&stack, &crl_path, PATIENCE, |crl| {
        crl.number > listed.number
    })
    .await;
    assert_eq!(reissued.serials, listed.serials);

    stack.kill_worker(worker);
    stack.spawn_worker_with_env(&quick);
    let later = wait_for_crl(&stack, &crl_path, PATIENCE, |crl| {
        crl.number > reissued.number
    })
    .await;
    assert_eq!(
        later.serials, listed.serials,
        "a restarted worker un-revokes nothing"
    );
}
