use api::auth::{Claims, JwtKeys};

use crate::helpers::*;

#[tokio::test]
async fn requests_without_a_valid_bearer_token_are_401() {
    let app = spawn_app().await;
    let body = registration(&unique_serial());
    let forged = JwtKeys::from_secret(b"not the server's secret, 32 bytes").issue(
        "x",
        TENANT,
        "devices:write",
        std::time::Duration::from_secs(60),
    );
    let expired = JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue_claims(&Claims {
        sub: "x".into(),
        tenant: Some(TENANT.into()),
        role: None,
        scope: "devices:write".into(),
        exp: 1_700_000_000,
        nbf: None,
    });

    for authorization in [
        None,
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer not.a.jwt".to_owned()),
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {expired}")),
    ] {
        let mut request = app
            .client
            .post(app.url("/v1/devices"))
            .header("Idempotency-Key", "k")
            .json(&body);
        if let Some(value) = &authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
        let problem = assert_problem(response, 401, "unauthenticated").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            !detail.contains(&forged) && !detail.contains(&expired),
            "never echo the token"
        );
    }
    assert_eq!(app.count_events("DeviceRegistered").await, 0);
}

#[tokio::test]
async fn a_token_without_the_write_scope_is_403() {
    let app = spawn_app().await;
    let reader = app.token(TENANT, "devices:read events:read");

    let response = app
        .post(
            "/v1/devices",
            &reader,
            Some("k"),
            &registration(&unique_serial()),
        )
        .await;

    let problem = assert_problem(response, 403, "forbidden").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("devices:write"));
}

#[tokio::test]
async fn only_a_platform_operator_reaches_the_admin_routes_and_acts_for_no_tenant() {
    let app = spawn_app().await;
    let get = |path: &'static str, token: String| {
        let request = app.client.get(app.url(path)).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    // A tenant's token, even one granted `admin`, is refused every admin route.
    let tenant_admin = app.token(TENANT, "admin devices:read");
    for path in ["/admin/dead-letters", "/admin/projections"] {
        let problem =
            assert_problem(get(path, tenant_admin.clone()).await, 403, "operators-only").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("platform operators"),
            "{problem}"
        );
    }
    // An operator's token reaches them, and needs `admin` to.
    assert_eq!(
        get("/admin/projections", app.operator_token("admin"))
            .await
            .status(),
        200
    );
    assert_problem(
        get("/admin/projections", app.operator_token("devices:read")).await,
        403,
        "forbidden",
    )
    .await;
    // It names no tenant, so it reads no tenant's devices.
    assert_problem(
        get("/v1/devices", app.operator_token("admin devices:read")).await,
        403,
        "tenants-only",
    )
    .await;
    // A token claiming both is neither.
    let both = signed(&serde_json::json!({
        "sub": "mallory", "tenant": TENANT, "role": "platform-operator", "scope": "admin",
        "exp": 4_000_000_000u64,
    }));
    assert_problem(
        get("/admin/projections", both).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn auth_is_checked_before_the_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/devices"))
        .header("content-type", "text/plain")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthenticated").await;
}

/// An HS256 token with these claims, signed with the server's secret.
fn signed(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_not_valid_yet_is_401_beyond_the_leeway() {
    let app = spawn_app().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token_with_nbf = |nbf: u64| {
        signed(&serde_json::json!({
            "sub": "x", "tenant": TENANT, "scope": "devices:read",
            "exp": now + 7200, "nbf": nbf,
        }))
    };
    let list = |token: String| {
        let request = app.client.get(app.url("/v1/devices")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };

    let not_yet = list(token_with_nbf(now + 3600)).await;
    let problem = assert_problem(not_yet, 401, "unauthenticated").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not valid yet"),
        "{problem}"
    );

    // Already valid, or valid within the clock-skew leeway that exp gets too.
    assert_eq!(list(token_with_nbf(now - 60)).await.status(), 200);
    assert_eq!(list(token_with_nbf(now + 5)).await.status(), 200);
}

/// A token's `sub` is stored as the actor of every event its commands append (and of the
/// operator actions it takes): one the event store cannot hold (a U+0000, which Postgres's
/// `jsonb` and `text` refuse), or that is not a sane name, is a bad token (401 naming the
/// claim), never a failed append (503).
#[tokio::test]
async fn a_token_whose_sub_cannot_be_recorded_is_401_naming_the_claim() {
    let app = spawn_app().await;
    let keys = JwtKeys::from_secret(JWT_SECRET.as_bytes());
    let too_long = "s".repeat(256);
    for sub in [
        "evil\u{0}client",
        "bell\u{7}",
        "line\nbreak",
        "",
        too_long.as_str(),
    ] {
        let tenants = keys.issue(
            sub,
            TENANT,
            "devices:write",
            std::time::Duration::from_secs(60),
        );
        let response = app
            .post(
                "/v1/devices",
                &tenants,
                Some(&new_key()),
                &registration(&unique_serial()),
            )
            .await;
        let problem = assert_problem(response, 401, "unauthenticated").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("sub"),
            "{sub:?}: {problem}"
        );
        let operators = keys.issue_operator(sub, "admin", std::time::Duration::from_secs(60));
        let response = app
            .client
            .get(app.url("/admin/projections"))
            .bearer_auth(&operators)
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "unauthenticated").await;
    }
    assert_eq!(app.count_events("DeviceRegistered").await, 0);
}

/// One tenant's client sending a `sub` Postgres refuses, concurrently with another tenant's
/// commands: the other tenant's commands all succeed (before, the bad value failed the
/// group-commit batch it shared with them: 503s for everyone in it).
#[tokio::test]
async fn one_clients_bad_sub_never_fails_another_tenants_commands() {
    let app = spawn_app().await;
    let keys = JwtKeys::from_secret(JWT_SECRET.as_bytes());
    let bad = keys.issue(
        "evil\u{0}client",
        OTHER_TENANT,
        "devices:write",
        std::time::Duration::from_secs(60),
    );
    let good = app.writer();
    let send = |token: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/devices",
                &token,
                Some(&new_key()),
                &registration(&unique_serial()),
            )
            .await
            .status()
            .as_u16()
        }
    };
    // 50 connections at once: below the per-address bound on connections still sending
    // their request's head (`overloaded` past it).
    let (goods, bads) = tokio::join!(
        futures::future::join_all((0..25).map(|_| send(good.clone()))),
        futures::future::join_all((0..25).map(|_| send(bad.clone()))),
    );
    assert!(
        goods.iter().all(|s| *s == 202),
        "the good tenant got {goods:?}"
    );
    assert!(bads.iter().all(|s| *s == 401), "the bad token got {bads:?}");
    assert_eq!(app.count_events("DeviceRegistered").await, 25);
}
