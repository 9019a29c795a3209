//! Operators create, read, rotate and revoke a tenant's certificate authorities
//! (`/admin/tenants/{tenant}/cas`): the decisions are recorded as the CAs' events (naming the
//! operator) and answered from them; retries with the same key are replays; every refusal
//! is a problem with its own status; a tenant's token cannot use these routes, and reads its
//! chain at `/v1/ca` only once its CAs are made (by the worker, tested in its pipeline).

use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_key, spawn_app, TENANT};

fn cas_request() -> Value {
    json!({
        "root": {"common_name": "Acme Root CA", "curve": "P-384", "validity_days": 7300},
        "issuing": {"common_name": "Acme Issuing CA", "validity_days": 730}
    })
}

#[tokio::test]
async fn an_operator_creates_a_tenant_s_cas_once_and_a_retry_is_a_replay() {
    let app = spawn_app().await;
    let admin = app.operator_token("admin");
    let path = format!("/admin/tenants/{TENANT}/cas");
    let key = new_key();

    let created = app.post(&path, &admin, Some(&key), &cas_request()).await;
    assert_eq!(created.status(), 202);
    assert_eq!(created.headers()["location"], path.as_str());
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["tenant"], TENANT);
    assert_eq!(body["version"], 1);
    let cas = body["cas"].as_array().unwrap();
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[0]["role"], "root");
    assert_eq!(cas[0]["curve"], "P-384");
    assert_eq!(cas[1]["role"], "issuing");
    assert_eq!(cas[1]["curve"], "P-256", "the default curve");
    for ca in cas {
        assert_eq!(ca["state"], "created", "made by the worker, not the api");
        assert!(ca.get("certificate").is_none());
    }

    let again = app.post(&path, &admin, Some(&key), &cas_request()).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");

    let other_key = app
        .post(&path, &admin, Some(&new_key()), &cas_request())
        .await;
    let problem = assert_problem(other_key, 409, "ca-state-conflict").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("exist already"));

    let read = app
        .client
        .get(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap()["cas"], body["cas"]);
    assert_eq!(app.count_events("TenantCasCreated").await, 1);
    let actor: String =
        sqlx::query_scalar("SELECT metadata->>'actor' FROM events WHERE aggregate_type = 'ca'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(actor, "test-operator", "the CAs' events name who decided");
}

#[tokio::test]
async fn what_the_cas_state_forbids_is_refused_and_bad_input_is_named() {
    let app = spawn_app().await;
    let admin = app.operator_token("admin");
    let path = format!("/admin/tenants/{TENANT}/cas");

    // Nothing to rotate or revoke before the tenant has CAs.
    let rotate = app
        .post(
            &format!("{path}/rotate"),
            &admin,
            Some(&new_key()),
            &json!({}),
        )
        .await;
    assert_problem(rotate, 404, "not-found").await;
    let read = app
        .client
        .get(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(read, 404, "not-found").await;

    assert_eq!(
        app.post(&path, &admin, Some(&new_key()), &cas_request())
            .await
            .status(),
        202
    );
    // Neither CA is certified yet (no worker here).
    let rotate = app
        .post(
            &format!("{path}/rotate"),
            &admin,
            Some(&new_key()),
            &json!({}),
        )
        .await;
    let problem = assert_problem(rotate, 409, "ca-state-conflict").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("nothing to rotate"));
    let revoke = async |generation: &str| {
        let body = json!({"reason": "cACompromise"});
        let path = format!("{path}/{generation}/revoke");
        app.post(&path, &admin, Some("revoke-key"), &body).await
    };
    assert_problem(revoke("0").await, 409, "ca-state-conflict").await;
    assert_problem(revoke("1").await, 409, "ca-state-conflict").await;
    assert_problem(revoke("7").await, 404, "not-found").await;
    assert_problem(revoke("one").await, 400, "invalid-field").await;

    for (body, field) in [
        (
            json!({"root": {"common_name": "R", "curve": "Ed25519", "validity_days": 1},
                   "issuing": {"common_name": "I", "validity_days": 1}}),
            "root",
        ),
        (
            json!({"root": {"common_name": "R", "validity_days": 1},
                   "issuing": {"common_name": "", "validity_days": 1}}),
            "issuing",
        ),
        (
            json!({"root": {"common_name": "R", "validity_days": 0},
                   "issuing": {"common_name": "I", "validity_days": 1}}),
            "root",
        ),
    ] {
        let refused = app
            .post("/admin/tenants/globex/cas", &admin, Some(&new_key()), &body)
            .await;
        let problem = assert_problem(refused, 400, "invalid-field").await;
        assert_eq!(problem["field"], field, "{body}");
    }
    let bad_reason = app
        .post(
            &format!("{path}/1/revoke"),
            &admin,
            Some(&new_key()),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_problem(bad_reason, 400, "invalid-field").await;
    let bad_tenant = app
        .post(
            "/admin/tenants/Not%20A%20Tenant/cas",
            &admin,
            Some(&new_key()),
            &cas_request(),
        )
        .await;
    assert_problem(bad_tenant, 400, "invalid-field").await;
    let no_key = app
        .post("/admin/tenants/globex/cas", &admin, None, &cas_request())
        .await;
    assert_problem(no_key, 400, "idempotency-key-missing").await;
}

#[tokio::test]
async fn a_tenant_cannot_manage_cas_and_has_no_chain_until_its_cas_are_made() {
    let app = spawn_app().await;
    let tenant_admin = app.token(TENANT, "devices:write devices:read admin");
    let path = format!("/admin/tenants/{TENANT}/cas");
    let refused = app
        .post(&path, &tenant_admin, Some(&new_key()), &cas_request())
        .await;
    assert_problem(refused, 403, "operators-only").await;

    let chain = app
        .client
        .get(app.url("/v1/ca"))
        .bearer_auth(app.token(TENANT, "devices:read"))
        .send()
        .await
        .unwrap();
    assert_problem(chain, 404, "not-found").await;
    let admin = app.operator_token("admin");
    assert_eq!(
        app.post(&path, &admin, Some(&new_key()), &cas_request())
            .await
            .status(),
        202
    );
    let chain = app
        .client
        .get(app.url("/v1/ca"))
        .bearer_auth(app.token(TENANT, "devices:read"))
        .send()
        .await
        .unwrap();
    assert_problem(chain, 404, "not-found").await;
    let unauthenticated = app.client.get(app.url("/v1/ca")).send().await.unwrap();
    assert_problem(unauthenticated, 401, "unauthenticated").await;
}

fn cas_command(database_url: &str, args: &[&str]) -> std::process::Output {
    let args: Vec<&str> = std::iter::once("cas").chain(args.iter().copied()).collect();
    crate::helpers::operator_command(database_url, &args)
}

#[tokio::test]
async fn operators_manage_a_tenant_s_cas_from_the_command_line_as_themselves() {
    let (database_url, pool) = crate::helpers::migrated_database().await;
    let create = [
        "create",
        "--tenant",
        "acme",
        "--root-name",
        "Acme Root CA",
        "--issuing-name",
        "Acme Issuing CA",
        "--idempotency-key",
        "cli-create-1",
    ];
    let created = cas_command(&database_url, &create);
    assert!(created.status.success(), "{created:?}");
    let out = String::from_utf8(created.stdout).unwrap();
    assert!(out.starts_with("0\troot\tcreated\tAcme Root CA"), "{out}");
    assert!(
        out.contains("1\tissuing\tcreated\tAcme Issuing CA"),
        "{out}"
    );

    // The same key again: the first run's outcome; another run: refused by the CAs' state.
    let again = cas_command(&database_url, &create);
    assert!(again.status.success(), "{again:?}");
    let refused = cas_command(
        &database_url,
        &[
            "create",
            "--tenant",
            "acme",
            "--root-name",
            "R",
            "--issuing-name",
            "I",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exist already"));
    let rotate = cas_command(&database_url, &["rotate", "--tenant", "acme"]);
    assert!(!rotate.status.success(), "nothing to rotate yet");
    let bad = cas_command(&database_url, &["show", "--tenant", "Not A Tenant"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--tenant"));

    let shown = cas_command(&database_url, &["show", "--tenant", "acme"]);
    assert!(shown.status.success());
    assert_eq!(String::from_utf8(shown.stdout).unwrap().lines().count(), 2);
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT metadata->>'actor' FROM events WHERE aggregate_type = 'ca'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(actors, ["cli:tester"], "the CAs' events name the operator");
}
