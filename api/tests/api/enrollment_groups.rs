//! Operators manage enrollment groups (`/admin/enrollment-groups`) on the real `api` binary:
//! a group's key is in the answer to its creation and nowhere else (not in reads, not in the
//! log, not in the clear in the database); every change is an operator action on record; a
//! tenant's token cannot manage groups; names are unique and checked; without
//! `ENROLLMENT_KEY_ENCRYPTION_KEY` the routes say they are not configured.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, migrated_database, spawn_app, ApiProcess, JWT_SECRET, OTHER_TENANT, TENANT,
};

/// A key-encryption key as `openssl rand -base64 32` makes one.
pub const KEY_ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

struct Admin {
    api: ApiProcess,
    client: reqwest::Client,
    operator: String,
}

impl Admin {
    async fn start() -> (Self, sqlx::PgPool) {
        Self::start_with(&[]).await
    }

    /// The api with enrollment groups on, logging at debug, and `extra` environment.
    async fn start_with(extra: &[(&str, String)]) -> (Self, sqlx::PgPool) {
        let (url, pool) = migrated_database().await;
        let mut env = vec![
            (
                "ENROLLMENT_KEY_ENCRYPTION_KEY",
                KEY_ENCRYPTION_KEY.to_owned(),
            ),
            ("RUST_LOG", "debug".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        let api = ApiProcess::start(&url, &env).await;
        let operator = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue_operator(
            "ops-alice",
            "admin",
            Duration::from_secs(600),
        );
        let admin = Self {
            api,
            client: reqwest::Client::new(),
            operator,
        };
        (admin, pool)
    }

    async fn post(&self, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.api.base))
            .bearer_auth(&self.operator);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.api.base))
            .bearer_auth(&self.operator)
            .send()
            .await
            .unwrap()
    }
}

fn group(name: &str, tenant: &str) -> Value {
    json!({"name": name, "tenant": tenant, "model": "thermostat-v2", "labels": {"site": "lyon", "line": "7"}})
}

#[tokio::test]
async fn a_created_group_shows_its_key_once_and_keeps_it_sealed() {
    let (admin, pool) = Admin::start().await;
    let created = admin
        .post("/admin/enrollment-groups", Some(group("line-7", TENANT)))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.headers()["location"],
        "/admin/enrollment-groups/line-7"
    );
    assert_eq!(created.headers()["cache-control"], "no-store");
    let created: Value = created.json().await.unwrap();
    let key = created["group_key"].as_str().unwrap().to_owned();
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .unwrap();
    assert_eq!(key_bytes.len(), 32);
    assert_eq!(created["tenant"], TENANT);
    assert_eq!(created["model"], "thermostat-v2");
    assert_eq!(created["labels"], json!({"line": "7", "site": "lyon"}));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["created_by"], "ops-alice");

    let read: Value = admin
        .get("/admin/enrollment-groups/line-7")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["name"], "line-7");
    assert!(read.get("group_key").is_none(), "{read}");
    let listed = admin
        .get("/admin/enrollment-groups")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("line-7") && !listed.contains(&key),
        "{listed}"
    );

    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed_key FROM enrollment_groups WHERE name = 'line-7'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !sealed.windows(32).any(|w| w == key_bytes.as_slice()),
        "the key is sealed at rest"
    );
    let anywhere: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operator_actions WHERE target LIKE '%' || $1 || '%'",
    )
    .bind(&key)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(anywhere, 0);
    let audit: (String, String) = sqlx::query_as(
        "SELECT actor, action FROM operator_actions WHERE target = 'enrollment_group:line-7'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        audit,
        ("ops-alice".to_owned(), "create-enrollment-group".to_owned())
    );
    let log = admin.api.log();
    assert!(log.contains("operator action"), "the log is read");
    assert!(!log.contains(&key), "the group key is never logged");
    assert!(
        !log.contains(KEY_ENCRYPTION_KEY),
        "nor the key-encryption key"
    );
}

#[tokio::test]
async fn groups_are_listed_by_tenant_and_disabled_and_enabled_on_record() {
    let (admin, pool) = Admin::start().await;
    for (name, tenant) in [("a-line", TENANT), ("b-line", OTHER_TENANT)] {
        let created = admin
            .post("/admin/enrollment-groups", Some(group(name, tenant)))
            .await;
        assert_eq!(created.status(), 201);
    }
    let acme: Value = admin
        .get(&format!("/admin/enrollment-groups?tenant={TENANT}"))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = acme["enrollment_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-line"]);

    let disabled = admin
        .post("/admin/enrollment-groups/a-line/disable", None)
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(disabled.json::<Value>().await.unwrap()["enabled"], false);
    let read: Value = admin
        .get("/admin/enrollment-groups/a-line")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["enabled"], false);
    let enabled = admin
        .post("/admin/enrollment-groups/a-line/enable", None)
        .await;
    assert_eq!(enabled.json::<Value>().await.unwrap()["enabled"], true);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM operator_actions WHERE target = 'enrollment_group:a-line' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "create-enrollment-group",
            "disable-enrollment-group",
            "enable-enrollment-group"
        ]
    );
    assert_problem(
        admin
            .post("/admin/enrollment-groups/no-such/disable", None)
            .await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn names_are_unique_and_every_field_is_checked() {
    let (admin, _pool) = Admin::start().await;
    let first = admin
        .post("/admin/enrollment-groups", Some(group("line-7", TENANT)))
        .await;
    assert_eq!(first.status(), 201);
    let again = admin
        .post(
            "/admin/enrollment-groups",
            Some(group("line-7", OTHER_TENANT)),
        )
        .await;
    assert_problem(again, 409, "enrollment-group-exists").await;
    for (body, field) in [
        (group("simpleenroll", TENANT), "name"),
        (group("Line 7", TENANT), "name"),
        (group("ok-name", ""), "tenant"),
        (
            json!({"name": "x1", "tenant": TENANT, "model": "", "labels": {}}),
            "model",
        ),
        (
            json!({"name": "x2", "tenant": TENANT, "model": "m", "labels": {"Bad Key": "v"}}),
            "labels",
        ),
    ] {
        let problem = assert_problem(
            admin.post("/admin/enrollment-groups", Some(body)).await,
            400,
            "invalid-field",
        )
        .await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_problem(
        admin.get("/admin/enrollment-groups/Not_A_Name").await,
        400,
        "invalid-field",
    )
    .await;
}

#[tokio::test]
async fn an_est_enrollment_leaves_no_key_in_the_api_log() {
    let dir = std::env::temp_dir().join(format!("api-est-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = testkit::TestCa::new(&dir, "fleet");
    let (admin, _pool) =
        Admin::start_with(&[("CA_CERT_PATH", ca.cert_path().display().to_string())]).await;
    let (api, client) = (&admin.api, &admin.client);
    let created: Value = admin
        .post("/admin/enrollment-groups", Some(group("line-7", TENANT)))
        .await
        .json()
        .await
        .unwrap();
    let group_key = created["group_key"].as_str().unwrap().to_owned();
    let serial = crate::helpers::unique_serial();
    let device_key = domain::GroupKey::from_base64(&group_key)
        .unwrap()
        .device_key(&domain::SerialNumber::parse(&serial).unwrap());
    let csr = crate::helpers::csr_for(&serial);
    let der = pem_der(&csr);
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let enroll = |password: String| {
        client
            .post(format!("{}/.well-known/est/line-7/simpleenroll", api.base))
            .basic_auth(&serial, Some(password))
            .header("content-type", "application/pkcs10")
            .body(body.clone())
            .send()
    };
    // No worker runs: the enrollment stays pending.
    let pending = enroll(device_key.clone()).await.unwrap();
    assert_eq!(pending.status(), 202);
    assert_eq!(pending.headers()["retry-after"], "2");
    let wrong = enroll("d3Jvbmc=".into()).await.unwrap();
    assert_eq!(wrong.status(), 401);

    let log = api.log();
    let pending_line = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["route"] == "/.well-known/est/{label}/simpleenroll" && line["status"] == 202
        })
        .expect("the enrollment's request line");
    assert_eq!(pending_line["tenant"], TENANT, "{pending_line}");
    assert!(!pending_line["device_id"].as_str().unwrap().is_empty());
    for secret in [group_key.as_str(), device_key.as_str(), KEY_ENCRYPTION_KEY] {
        assert!(!log.contains(secret), "a key in the log");
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{serial}:{device_key}"));
    assert!(!log.contains(&basic), "the Authorization header in the log");
    let _ = std::fs::remove_dir_all(dir);
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn a_tenant_cannot_manage_enrollment_groups() {
    let (admin, _pool) = Admin::start().await;
    let tenant = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue(
        "client-7",
        TENANT,
        "admin devices:write",
        Duration::from_secs(600),
    );
    let refused = admin
        .client
        .post(format!("{}/admin/enrollment-groups", admin.api.base))
        .bearer_auth(tenant)
        .json(&group("line-7", TENANT))
        .send()
        .await
        .unwrap();
    assert_problem(refused, 403, "operators-only").await;
}

#[tokio::test]
async fn without_a_key_encryption_key_enrollment_groups_are_not_configured() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/admin/enrollment-groups",
            &app.operator_token("admin"),
            None,
            &group("line-7", TENANT),
        )
        .await;
    assert_problem(response, 501, "enrollment-not-configured").await;
}
