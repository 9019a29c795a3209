//! Whatever a client sends, the answer is a problem+json 4xx, never a 5xx.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let app = spawn_app().await;
    for body in ["", "{", "[1,2", "null", "\"text\"", "{\"serial_number\": }"] {
        let response = app
            .client
            .post(app.url("/v1/devices"))
            .bearer_auth(app.writer())
            .header("Idempotency-Key", "k")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 400, "body {body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
}

#[tokio::test]
async fn another_content_type_is_a_415() {
    let app = spawn_app().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .client
            .post(app.url("/v1/devices"))
            .bearer_auth(app.writer())
            .header("Idempotency-Key", "k")
            .body(registration(&unique_serial()).to_string());
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        assert_problem(request.send().await.unwrap(), 415, "unsupported-media-type").await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = spawn_app().await;
    let mut body = registration(&unique_serial());
    body["model"] = "x".repeat(100 * 1024).into();

    let response = app.register(&new_key(), &body).await;

    let problem = assert_problem(response, 413, "payload-too-large").await;
    assert!(problem["detail"].as_str().unwrap().contains("65536"));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
    let response = app
        .client
        .delete(app.url("/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn hostile_input_never_produces_a_server_error() {
    let app = spawn_app().await;
    let long = "A".repeat(20_000);
    let bodies = [
        json!({"serial_number": "\u{0000}", "model": "m", "csr": "c"}),
        json!({"serial_number": 1, "model": [], "csr": {}}),
        json!({"serial_number": "SN-1", "model": "m", "csr": long}),
        json!({"serial_number": "SN-1", "model": "m", "csr": "-----BEGIN CERTIFICATE REQUEST-----\n\u{1F600}\n-----END CERTIFICATE REQUEST-----"}),
        json!({"serial_number": "SN-1", "model": "m", "csr": "c", "labels": []}),
        json!({"serial_number": "SN-1", "model": "m", "csr": "c", "labels": {"k": null}}),
        json!([{"serial_number": "SN-1"}]),
        json!(1e308),
    ];
    for body in bodies {
        let response = app.register(&new_key(), &body).await;
        assert!(
            response.status().is_client_error(),
            "{body}: {}",
            response.status()
        );
    }
    let paths = [
        "/v1/devices/%00/decommission",
        "/v1/devices/00000000-0000-0000-0000-000000000000/decommission",
        "/v1/devices/../../etc/passwd/decommission",
        "/v1/devices/ffffffff-ffff-ffff-ffff-ffffffffffff/certificate:renew",
    ];
    for path in paths {
        let response = app
            .post(
                path,
                &app.writer(),
                Some("k"),
                &json!({"reason": "x", "csr": "y"}),
            )
            .await;
        assert!(
            response.status().is_client_error(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_a_400_naming_id() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/v1/devices/%FF%FE/decommission",
            &app.writer(),
            Some("k"),
            &json!({"reason": "x"}),
        )
        .await;
    assert_eq!(
        assert_problem(response, 400, "invalid-field").await["field"],
        "id"
    );
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_without_waiting_for_it() {
    let app = spawn_app().await;
    // Content-Length promises 100 MB; only a few bytes follow. The answer must not wait for
    // the rest (nor for the request deadline).
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "POST /v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nIdempotency-Key: k\r\nContent-Length: 100000000\r\n\r\n{{}}",
        app.writer()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut head),
    )
    .await
    .expect("answered before the request deadline")
    .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
}

#[tokio::test]
async fn nul_characters_in_query_parameters_are_a_400_not_a_failed_query() {
    let app = spawn_app().await;
    let admin = app.operator_token("admin");
    let reader = app.token(TENANT, "devices:read");
    for (path, token) in [
        ("/admin/dead-letters?consumer=a%00b", &admin),
        ("/admin/dead-letters?error=%00", &admin),
        ("/v1/devices?label=site:lyon%00", &reader),
        ("/v1/devices?model=X%00", &reader),
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "invalid-field").await;
    }
}

/// A CSR's PEM text is stored in the registration event: a U+0000 around the PEM block (which
/// PEM parsers skip, and `jsonb` cannot hold) is a 400 naming `csr`, never a failed append.
#[tokio::test]
async fn a_nul_around_the_csr_block_is_a_400_naming_csr() {
    let app = spawn_app().await;
    let serial = unique_serial();
    let pem = csr_for(&serial);
    for csr in [format!("\u{0}\n{pem}"), format!("{pem}\u{0}")] {
        let body = json!({"serial_number": serial, "model": "m", "csr": csr});
        let response = app.register(&new_key(), &body).await;
        let problem = assert_problem(response, 400, "invalid-field").await;
        assert_eq!(problem["field"], "csr", "{problem}");
    }
    assert_eq!(app.count_events("DeviceRegistered").await, 0);
}
