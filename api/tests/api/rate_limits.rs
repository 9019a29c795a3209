//! A tenant over its rate gets 429 problem+json with Retry-After; other tenants do not
//! notice.

use crate::helpers::*;

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let app = spawn_app_with(|config| {
        config.rate_limit_per_second = 1;
        config.rate_limit_burst = 2;
    })
    .await;
    let busy = app.token(TENANT, "devices:read");
    let other = app.token(OTHER_TENANT, "devices:read");
    let list = |token: String| {
        let request = app.client.get(app.url("/v1/devices")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };

    assert_eq!(list(busy.clone()).await.status(), 200);
    assert_eq!(list(busy.clone()).await.status(), 200);
    let refused = list(busy.clone()).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_problem(refused, 429, "rate-limited").await;

    assert_eq!(list(other).await.status(), 200);
    // Liveness is never limited.
    let live = app.client.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn refused_requests_for_a_missing_scope_do_not_spend_the_tenants_quota() {
    let app = spawn_app_with(|config| {
        config.rate_limit_per_second = 1;
        config.rate_limit_burst = 2;
    })
    .await;
    let reader = app.token(TENANT, "devices:read");

    // A read-only token trying to write, more often than the tenant's burst allows.
    for _ in 0..5 {
        let response = app
            .post(
                "/v1/devices",
                &reader,
                Some(&new_key()),
                &registration(&unique_serial()),
            )
            .await;
        assert_problem(response, 403, "forbidden").await;
    }

    // The tenant's writers still have their whole burst.
    for _ in 0..2 {
        let response = app
            .register(&new_key(), &registration(&unique_serial()))
            .await;
        assert_eq!(response.status(), 202);
    }
}
