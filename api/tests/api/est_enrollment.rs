//! EST `simpleenroll`'s credential on the real `api` binary (no worker: an accepted enrollment
//! stays pending, 202): a device may name its group in the HTTP Basic user name
//! (`<serial>@<group>`), which clients that cannot put a label in the URL need (strongSwan's
//! `pki --est`); a label and a different `@group` are a wrong credential; without a name, the
//! api tries at most `EST_LABELLESS_MAX_GROUPS` groups and past it tells the device to name
//! its group, so what a label-less request costs does not grow with the groups (measured in
//! the api's CPU time against 3,000 groups); an unknown group is answered exactly as a wrong
//! credential; and requests whose credential is wrong, or whose body is still arriving, hold
//! no command slot (`COMMAND_MAX_IN_FLIGHT`), so a tenant's commands go on.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::enrollment_groups::KEY_ENCRYPTION_KEY;
use crate::helpers::{
    csr_for, migrated_database, new_key, registration, unique_serial, ApiProcess, JWT_SECRET,
    TENANT,
};

/// The real api with enrollment groups and EST on (plain HTTP: enough for Basic
/// credentials), with `extra` environment.
struct EstApi {
    api: ApiProcess,
    client: reqwest::Client,
    pool: sqlx::PgPool,
    dir: std::path::PathBuf,
}

impl Drop for EstApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl EstApi {
    async fn start(extra: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join(format!("api-est-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = testkit::TestCa::new(&dir, "fleet");
        let (url, pool) = migrated_database().await;
        let mut env = vec![
            (
                "ENROLLMENT_KEY_ENCRYPTION_KEY",
                KEY_ENCRYPTION_KEY.to_owned(),
            ),
            ("CA_CERT_PATH", ca.cert_path().display().to_string()),
        ];
        env.extend(extra.iter().cloned());
        let api = ApiProcess::start(&url, &env).await;
        Self {
            api,
            client: reqwest::Client::new(),
            pool,
            dir,
        }
    }

    /// Creates group `name` of `TENANT`: its key.
    async fn create_group(&self, name: &str) -> String {
        let operator = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue_operator(
            "ops-alice",
            "admin",
            Duration::from_secs(600),
        );
        let created = self
            .client
            .post(format!("{}/admin/enrollment-groups", self.api.base))
            .bearer_auth(operator)
            .json(&json!({"name": name, "tenant": TENANT, "model": "gateway-x", "labels": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        created["group_key"].as_str().unwrap().to_owned()
    }

    /// `simpleenroll` at `path` with HTTP Basic `user`:`password` and `csr` (base64).
    async fn enroll(&self, path: &str, user: &str, password: &str, csr: &str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.api.base))
            .basic_auth(user, Some(password))
            .header("content-type", "application/pkcs10")
            .body(csr.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// The api process's CPU time so far (user and system).
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.api.pid())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // utime and stime: fields 14 and 15 of stat(5), here 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let per_second = 100; // USER_HZ on Linux
        Duration::from_millis(ticks * 1000 / per_second)
    }
}

/// A CSR for `serial` as EST sends it: base64 of the DER.
fn csr_body(serial: &str) -> String {
    let pem = csr_for(serial);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.encode(STANDARD.decode(body).unwrap())
}

/// The key a factory burns into device `serial` of the group whose key is `group_key`.
fn device_key(group_key: &str, serial: &str) -> String {
    domain::GroupKey::from_base64(group_key)
        .unwrap()
        .device_key(&domain::SerialNumber::parse(serial).unwrap())
}

#[tokio::test]
async fn a_device_names_its_group_in_the_user_name_and_a_different_label_is_refused() {
    let est = EstApi::start(&[]).await;
    let line_7 = est.create_group("line-7").await;
    let line_8 = est.create_group("line-8").await;

    // strongSwan's paths (no label), the group in the user name.
    let serial = unique_serial();
    let csr = csr_body(&serial);
    let key = device_key(&line_7, &serial);
    let user = format!("{serial}@line-7");
    let named = est
        .enroll("/.well-known/est/simpleenroll", &user, &key, &csr)
        .await;
    assert_eq!(named.status(), 202, "{}", named.text().await.unwrap());
    // The same, with the label in the URL too.
    let both = est
        .enroll("/.well-known/est/line-7/simpleenroll", &user, &key, &csr)
        .await;
    assert_eq!(both.status(), 202);

    // Another group's name with this group's key: a wrong credential.
    let other = unique_serial();
    let other_csr = csr_body(&other);
    let other_key = device_key(&line_7, &other);
    let wrong_group = est
        .enroll(
            "/.well-known/est/simpleenroll",
            &format!("{other}@line-8"),
            &other_key,
            &other_csr,
        )
        .await;
    assert_eq!(wrong_group.status(), 401);
    // A label and a different @group: a wrong credential, even when the key is right for
    // the user's group.
    let line_8_key = device_key(&line_8, &other);
    let mismatch = est
        .enroll(
            "/.well-known/est/line-7/simpleenroll",
            &format!("{other}@line-8"),
            &line_8_key,
            &other_csr,
        )
        .await;
    assert_eq!(mismatch.status(), 401);
    assert!(mismatch.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    // Not a group name, or two of them: a wrong credential.
    for user in [
        format!("{other}@Line_8"),
        format!("{other}@line-8@line-8"),
        format!("{other}@"),
    ] {
        let odd = est
            .enroll(
                "/.well-known/est/simpleenroll",
                &user,
                &line_8_key,
                &other_csr,
            )
            .await;
        assert_eq!(odd.status(), 401, "{user}");
    }
    // The device registered under its serial only, once.
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DeviceRegistered'")
            .fetch_one(&est.pool)
            .await
            .unwrap();
    assert_eq!(registered, 1);
    let log = est.api.log();
    for secret in [&line_7, &line_8, &key, &line_8_key] {
        assert!(!log.contains(secret.as_str()), "a key in the log");
    }
}

#[tokio::test]
async fn past_the_bound_a_label_less_enrollment_is_told_to_name_its_group() {
    let est = EstApi::start(&[("EST_LABELLESS_MAX_GROUPS", "2".to_owned())]).await;
    let line_1 = est.create_group("line-1").await;
    est.create_group("line-2").await;
    let serial = unique_serial();
    let csr = csr_body(&serial);
    let key = device_key(&line_1, &serial);
    let label_less = "/.well-known/est/simpleenroll";
    let within = est.enroll(label_less, &serial, &key, &csr).await;
    assert_eq!(within.status(), 202, "two groups are tried");

    // A disabled group is never tried without a name, and does not count.
    let operator = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue_operator(
        "ops-alice",
        "admin",
        Duration::from_secs(600),
    );
    est.create_group("line-3").await;
    let disabled = est
        .client
        .post(format!(
            "{}/admin/enrollment-groups/line-3/disable",
            est.api.base
        ))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let still = est.enroll(label_less, &serial, &key, &csr).await;
    assert_eq!(still.status(), 202);

    // A third enabled group: past the bound, named groups only.
    est.create_group("line-4").await;
    let past = est.enroll(label_less, &serial, &key, &csr).await;
    assert_eq!(past.status(), 400);
    assert!(past.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let said = past.text().await.unwrap();
    assert!(
        said.contains("/.well-known/est/<group>/simpleenroll") && said.contains("<serial>@<group>"),
        "{said}"
    );
    let named = est
        .enroll(label_less, &format!("{serial}@line-1"), &key, &csr)
        .await;
    assert_eq!(named.status(), 202);
    let labelled = est
        .enroll("/.well-known/est/line-1/simpleenroll", &serial, &key, &csr)
        .await;
    assert_eq!(labelled.status(), 202);
}

/// Inserts `n` groups `g-0`, `g-1`, … of `TENANT` (sealed as the api seals them), faster
/// than `n` operator requests: their keys.
async fn insert_groups(pool: &sqlx::PgPool, n: usize) -> Vec<String> {
    let sealer = store::GroupKeySealer::from_base64(KEY_ENCRYPTION_KEY).unwrap();
    let mut names = Vec::with_capacity(n);
    let mut sealed = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let name = domain::EnrollmentGroupName::parse(&format!("g-{i}")).unwrap();
        let key = app::random_group_key();
        sealed.push(sealer.seal(&name, &key));
        keys.push(key.to_base64());
        names.push(name.as_str().to_owned());
    }
    sqlx::query(
        "INSERT INTO enrollment_groups (name, tenant, model, sealed_key, created_by) \
         SELECT name, $3, 'gateway-x', sealed_key, 'test' FROM UNNEST($1::text[], $2::bytea[]) \
         AS g(name, sealed_key)",
    )
    .bind(&names)
    .bind(&sealed)
    .bind(TENANT)
    .execute(pool)
    .await
    .unwrap();
    keys
}

#[tokio::test]
async fn a_label_less_enrollment_costs_the_same_with_3000_groups() {
    let est = EstApi::start(&[]).await;
    let keys = insert_groups(&est.pool, 3_000).await;
    let serial = unique_serial();
    let csr = csr_body(&serial);
    let last = &keys[2_999];
    let key = device_key(last, &serial);
    let label_less = "/.well-known/est/simpleenroll";

    let before = est.cpu_time();
    // Without a name: told to name the group, without trying any.
    for _ in 0..10 {
        let refused = est.enroll(label_less, &serial, &key, &csr).await;
        assert_eq!(refused.status(), 400);
    }
    // A 60 KB password: refused before anything is decoded or tried.
    let long = "A".repeat(60_000);
    for _ in 0..10 {
        let refused = est.enroll(label_less, &serial, &long, &csr).await;
        assert_eq!(refused.status(), 401);
        let refused = est
            .enroll(label_less, &format!("{serial}@g-2999"), &long, &csr)
            .await;
        assert_eq!(refused.status(), 401);
    }
    // Named in the user name: one group read, one key opened, one HMAC.
    for round in 0..10 {
        let named = est
            .enroll(label_less, &format!("{serial}@g-2999"), &key, &csr)
            .await;
        assert_eq!(named.status(), 202, "round {round}");
    }
    let spent = est.cpu_time() - before;
    println!("40 EST requests against 3,000 groups: {spent:?} of the api's CPU");
    // Trying every group costs ~3,000 unsealings and HMACs a request (7.7 ms in a release
    // build, several times that in this debug one; with a 60 KB password, 87 ms): 40 such
    // requests would take seconds.
    assert!(spent < Duration::from_millis(600), "{spent:?}");
}

#[tokio::test]
async fn an_unknown_group_is_answered_exactly_as_a_wrong_credential() {
    let est = EstApi::start(&[]).await;
    let group_key = est.create_group("line-7").await;
    let serial = unique_serial();
    let csr = csr_body(&serial);
    let key = device_key(&group_key, &serial);
    let wrong_key = device_key(&STANDARD.encode([7u8; 32]), &serial);

    let wrong = est
        .enroll(
            "/.well-known/est/line-7/simpleenroll",
            &serial,
            &wrong_key,
            &csr,
        )
        .await;
    let unknown = est
        .enroll("/.well-known/est/line-9/simpleenroll", &serial, &key, &csr)
        .await;
    let unknown_named = est
        .enroll(
            "/.well-known/est/simpleenroll",
            &format!("{serial}@line-9"),
            &key,
            &csr,
        )
        .await;
    let shown = |response: reqwest::Response| async move {
        let status = response.status();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !["date", "x-request-id"].contains(&name.as_str()))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (status, headers, response.text().await.unwrap())
    };
    let wrong = shown(wrong).await;
    assert_eq!(wrong.0, 401, "{wrong:?}");
    assert_eq!(shown(unknown).await, wrong);
    assert_eq!(shown(unknown_named).await, wrong);
}

/// Opens a connection and sends the head of a `simpleenroll` at `path` with `authorization`,
/// announcing a 1,000-byte body of which it then sends one byte every 500 ms: a client on a
/// slow (or malicious) line.
async fn trickling_enrollment(base: &str, path: &str, authorization: &str) -> TcpStream {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/pkcs10\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn enrollments_with_a_wrong_credential_or_a_slow_body_hold_no_command_slot() {
    let est = EstApi::start(&[("COMMAND_MAX_IN_FLIGHT", "4".to_owned())]).await;
    let group_key = est.create_group("line-7").await;
    let basic = |user: &str, password: &str| {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    };
    let serial = unique_serial();
    let wrong = basic(&serial, &device_key(&STANDARD.encode([7u8; 32]), &serial));
    let right = basic(&serial, &device_key(&group_key, &serial));
    let labelled = "/.well-known/est/line-7/simpleenroll";
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(trickling_enrollment(&est.api.base, labelled, &wrong).await);
        streams.push(
            trickling_enrollment(
                &est.api.base,
                "/.well-known/est/no-such/simpleenroll",
                &wrong,
            )
            .await,
        );
    }
    // Devices with a right credential on a slow line hold none either: a slot is taken once
    // the body is in.
    for _ in 0..4 {
        streams.push(trickling_enrollment(&est.api.base, labelled, &right).await);
    }
    let trickle = tokio::spawn(async move {
        let mut answers = vec![String::new(); streams.len()];
        for _ in 0..8 {
            for (stream, answer) in streams.iter_mut().zip(answers.iter_mut()) {
                let _ = stream.write_all(b"A").await;
                let mut buffer = [0u8; 512];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buffer)).await
                {
                    answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A tenant's commands go on meanwhile.
    let token = api::auth::JwtKeys::from_secret(JWT_SECRET.as_bytes()).issue(
        "client-7",
        TENANT,
        "devices:write",
        Duration::from_secs(600),
    );
    for round in 0..3 {
        let registered = est
            .client
            .post(format!("{}/v1/devices", est.api.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("\"{}\"", new_key()))
            .json(&registration(&unique_serial()))
            .send()
            .await
            .unwrap();
        let status = registered.status();
        assert_eq!(
            status,
            202,
            "round {round}: {}",
            registered.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The wrong credentials were answered 401 before their bodies were in.
    let answers = trickle.await.unwrap();
    for (index, answer) in answers.iter().enumerate().take(8) {
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "request {index}: {answer:?}"
        );
    }
}
