//! Tokens from an identity provider: ES256 and RS256 JWTs verified against the JWKS of
//! `AUTH_JWKS_PATH`, with `iss` and `aud` checked. A token signed by a key the JWKS does not
//! hold, for another issuer or audience, or not valid yet is a 401 problem. (The RSA key in
//! `tests/fixtures` exists for these tests only.)

use std::sync::Arc;
use std::time::Duration;

use api::config::{Secret, TokenSettings};
use api::startup::token_keys;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

const ISSUER: &str = "https://idp.example.test/";
const AUDIENCE: &str = "device-provisioning";

/// A P-256 key: its signing half, and its public half as a JWK named `kid`.
fn p256_key(kid: &str) -> (EncodingKey, Value) {
    let key = rcgen::KeyPair::generate().unwrap();
    let point = key.public_key_raw(); // 0x04 ‖ x ‖ y
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    (EncodingKey::from_ec_der(&key.serialize_der()), jwk)
}

fn rsa_key() -> (EncodingKey, Value) {
    // PKCS#1 DER, as jsonwebtoken takes it.
    let der = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/idp-rsa.der"
    ))
    .unwrap();
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/idp-rsa.jwks.json"
        ))
        .unwrap(),
    )
    .unwrap();
    (EncodingKey::from_rsa_der(&der), jwks["keys"][0].clone())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "sub": "svc-fleet", "tenant": TENANT, "scope": "devices:read",
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600,
    })
}

fn sign(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The app verifying tokens as `api serve` does with `AUTH_JWKS_PATH` (a file holding `jwks`),
/// `AUTH_JWT_ISSUER` and `AUTH_JWT_AUDIENCE`, and HS256 as well when `with_secret`.
async fn app_trusting(jwks: &Value, with_secret: bool) -> TestApp {
    let path = std::env::temp_dir().join(format!("jwks-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, jwks.to_string()).unwrap();
    let settings = TokenSettings {
        jwt_secret: with_secret.then(|| Secret::new(JWT_SECRET.to_owned())),
        jwks_path: Some(path.clone()),
        jwks_url: None,
        jwks_refresh: Duration::from_secs(300),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
    };
    let app = spawn_app_with(|config| config.tokens = settings).await;
    let _ = std::fs::remove_file(path);
    app
}

async fn list(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/v1/devices"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn es256_and_rs256_tokens_of_the_jwks_are_accepted() {
    let (ec, ec_jwk) = p256_key("idp-ec-1");
    let (rsa, rsa_jwk) = rsa_key();
    let app = app_trusting(&json!({ "keys": [ec_jwk, rsa_jwk] }), false).await;

    let es256 = sign(Algorithm::ES256, "idp-ec-1", &ec, &claims());
    assert_eq!(list(&app, &es256).await.status(), 200);
    let rs256 = sign(Algorithm::RS256, "idp-rsa-1", &rsa, &claims());
    assert_eq!(list(&app, &rs256).await.status(), 200);
}

#[tokio::test]
async fn other_keys_issuers_audiences_and_future_tokens_are_401() {
    let (ec, ec_jwk) = p256_key("idp-ec-1");
    let app = app_trusting(&json!({ "keys": [ec_jwk] }), false).await;
    let refused = |token: String, says: &'static str| {
        let app = &app;
        async move {
            let problem = assert_problem(list(app, &token).await, 401, "unauthenticated").await;
            assert!(
                problem["detail"].as_str().unwrap().contains(says),
                "{problem}"
            );
        }
    };

    // Another key under the same kid: the signature does not verify.
    let (impostor, _) = p256_key("idp-ec-1");
    refused(
        sign(Algorithm::ES256, "idp-ec-1", &impostor, &claims()),
        "invalid",
    )
    .await;
    // A kid the JWKS does not hold.
    refused(sign(Algorithm::ES256, "unknown", &ec, &claims()), "invalid").await;
    // HS256 is off when only a JWKS is configured, whatever the secret.
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    refused(hs256, "invalid").await;

    let mut wrong_issuer = claims();
    wrong_issuer["iss"] = json!("https://elsewhere.example.test/");
    refused(
        sign(Algorithm::ES256, "idp-ec-1", &ec, &wrong_issuer),
        "iss",
    )
    .await;
    let mut wrong_audience = claims();
    wrong_audience["aud"] = json!("another-service");
    refused(
        sign(Algorithm::ES256, "idp-ec-1", &ec, &wrong_audience),
        "aud",
    )
    .await;
    let mut not_yet = claims();
    not_yet["nbf"] = json!(now() + 3600);
    refused(
        sign(Algorithm::ES256, "idp-ec-1", &ec, &not_yet),
        "not valid yet",
    )
    .await;
}

#[tokio::test]
async fn hs256_stays_available_beside_a_jwks_when_the_secret_is_set() {
    let (_, ec_jwk) = p256_key("idp-ec-1");
    let app = app_trusting(&json!({ "keys": [ec_jwk] }), true).await;
    let mut local = claims();
    local["exp"] = json!(now() + 600);
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &local,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(list(&app, &hs256).await.status(), 200);
}

/// An identity provider's JWKS endpoint, serving whatever `jwks` holds.
async fn jwks_endpoint(jwks: Arc<std::sync::Mutex<Value>>) -> String {
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks.lock().unwrap().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn url_settings(url: String) -> TokenSettings {
    TokenSettings {
        jwt_secret: None,
        jwks_path: None,
        jwks_url: Some(url),
        jwks_refresh: Duration::from_secs(3600),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
    }
}

#[tokio::test]
async fn a_jwks_url_is_fetched_at_start_and_again_when_a_token_names_a_new_key() {
    let (first, first_jwk) = p256_key("2026-a");
    let served = Arc::new(std::sync::Mutex::new(json!({ "keys": [first_jwk] })));
    let url = jwks_endpoint(served.clone()).await;
    // The api fetches it at start and runs the refresh itself, as `api serve` does.
    let app = spawn_app_with(|config| config.tokens = url_settings(url)).await;

    let by_first = sign(Algorithm::ES256, "2026-a", &first, &claims());
    assert_eq!(list(&app, &by_first).await.status(), 200);

    // The provider rotates: a new key replaces the first.
    let (second, second_jwk) = p256_key("2026-b");
    *served.lock().unwrap() = json!({ "keys": [second_jwk] });
    let by_second = sign(Algorithm::ES256, "2026-b", &second, &claims());
    // Refused while unknown; naming it makes the api fetch the JWKS again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = list(&app, &by_second).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 401);
        assert!(
            std::time::Instant::now() < deadline,
            "the new key was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first key is gone with the JWKS that held it.
    assert_eq!(list(&app, &by_first).await.status(), 401);
}

#[tokio::test]
async fn a_jwks_url_that_cannot_be_fetched_stops_the_start_within_the_timeout() {
    // Nobody listens.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = token_keys(&url_settings(format!("http://{closed}/jwks.json")))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("AUTH_JWKS_URL"), "{err}");

    // Someone listens and never answers: bounded by the fetch timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = silent.accept().await.unwrap();
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let err = token_keys(&url_settings(format!("http://{addr}/jwks.json")))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("AUTH_JWKS_URL"), "{err}");
    assert!(
        started.elapsed() < api::auth::FETCH_TIMEOUT + Duration::from_secs(5),
        "bounded by the fetch timeout"
    );
    held.abort();
}
