//! `loadgen`: open-loop, fixed-rate scenarios against a running stack, for `scripts/bench`.
//! Prints one JSON object per scenario on stdout.
//!
//! - `provision`: RegisterDevice at a fixed rate; for each, the time from its 202 until the
//!   device is visible as `provisioned` through the read API (long-poll on `min_version=2`).
//! - `overload`: RegisterDevice at a fixed rate past capacity, spread over several tenants
//!   (one token each), against an api with its real bounds; counts what was accepted and what
//!   was shed (503 `overloaded`, 429), and for the accepted the time from the 202 until
//!   `provisioned` is visible. A long-poll that is shed is retried after its `Retry-After`, as
//!   a well-behaved client would, within the device's minute.
//! - `lag`: registers and provisions devices first, then decommissions them at a fixed rate;
//!   for each, the time from the 202 until `decommissioned` is visible (projection lag).
//! - `ca`: certificates checked and signed per second on one thread (one core), by the
//!   worker's CA code itself, no I/O.
//! - `revocation-ocsp`: revokes provisioned devices' certificates at a fixed rate; for each,
//!   the time from the revoke's 202 until the OCSP responder answers `revoked` for it
//!   (polling every 25 ms with a request prepared by `openssl ocsp -reqout`).
//! - `crl-production`: the worker's CRL publication itself (read the revocations from
//!   `certificate_status`, sign, store), timed, against the database in `DATABASE_URL`, with
//!   nothing else running.
//!
//! Open loop: requests are sent on schedule whether or not earlier ones finished, so a slow
//! system shows up as latency rather than as a lower offered rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::future::join_all;
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Where the api is and how to call it (a plain comment: clap would show a doc comment as
// the about text of every subcommand that flattens this).
#[derive(clap::Args)]
struct Api {
    #[arg(long)]
    url: String,
    #[arg(long, env = "TOKEN")]
    token: String,
}

#[derive(Subcommand)]
enum Command {
    /// RegisterDevice at a fixed rate; per device, 202 until provisioned is visible.
    Provision {
        #[command(flatten)]
        api: Api,
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u32,
    },
    /// RegisterDevice past capacity over several tenants; accepted, shed, and 202 until
    /// provisioned for the accepted.
    Overload {
        #[arg(long)]
        url: String,
        /// One bearer token per tenant, comma-separated; device i uses token i mod n.
        #[arg(long, env = "TOKENS", value_delimiter = ',')]
        tokens: Vec<String>,
        #[arg(long, default_value_t = 900)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u32,
    },
    /// DecommissionDevice at a fixed rate on provisioned devices; 202 until visible.
    Lag {
        #[command(flatten)]
        api: Api,
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
    },
    /// Certificates checked and signed per second on one thread, by the worker's CA code.
    Ca {
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// The CA's key in a SoftHSM2 token made for the run (Debian's module, or
        /// `PKCS11_MODULE_PATH`) instead of a key file.
        #[arg(long)]
        key_in_token: bool,
    },
    /// RevokeCertificate at a fixed rate; per certificate, 202 until OCSP answers revoked.
    RevocationOcsp {
        #[command(flatten)]
        api: Api,
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// A directory of OCSP requests, one per device, named `<device id>.der`; one
        /// device is revoked per file, at most `rate × seconds`.
        #[arg(long)]
        requests: std::path::PathBuf,
        /// The responder's path (`/pki/<ca>/ocsp`).
        #[arg(long)]
        ocsp_path: String,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
    },
    /// Produces and publishes one CRL as the worker does, with the CA in CA_CERT_PATH /
    /// CA_KEY_PATH, from the database in DATABASE_URL; how long it took.
    CrlProduction {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, env = "CA_CERT_PATH")]
        ca_cert: std::path::PathBuf,
        #[arg(long, env = "CA_KEY_PATH")]
        ca_key: std::path::PathBuf,
    },
    /// Reads the analysts' feed from the start to the end, one client, pages of `limit`.
    Feed {
        #[command(flatten)]
        api: Api,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Removes a benchmark's JetStream stream (and its consumers) from the server.
    DeleteStream {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        stream: String,
    },
}

#[tokio::main]
async fn main() {
    let result = match Cli::parse().command {
        Command::Provision { api, rate, seconds } => {
            provision(Client::new(api.url, api.token), rate, seconds).await
        }
        Command::Overload {
            url,
            tokens,
            rate,
            seconds,
        } => overload(url, tokens, rate, seconds).await,
        Command::Lag { api, rate, seconds } => {
            lag(Client::new(api.url, api.token), rate, seconds).await
        }
        Command::Ca {
            seconds,
            key_in_token,
        } => ca(seconds, key_in_token),
        Command::RevocationOcsp {
            api,
            rate,
            requests,
            ocsp_path,
            seconds,
        } => {
            revocation_ocsp(
                Client::new(api.url, api.token),
                rate,
                seconds,
                &requests,
                ocsp_path,
            )
            .await
        }
        Command::CrlProduction {
            database_url,
            ca_cert,
            ca_key,
        } => crl_production(&database_url, &ca_cert, &ca_key).await,
        Command::Feed { api, limit } => feed(&Client::new(api.url, api.token), limit).await,
        Command::DeleteStream { nats_url, stream } => {
            let deleted = match async_nats::connect(&nats_url).await {
                Ok(client) => async_nats::jetstream::new(client)
                    .delete_stream(&stream)
                    .await
                    .is_ok(),
                Err(_) => false,
            };
            json!({"deleted_stream": stream, "ok": deleted})
        }
    };
    println!("{result}");
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// Why one operation did not complete.
type Outcome = Result<Duration, String>;

/// A request's failure with its causes (reqwest's own message names only the URL), without
/// the URL: failures of the same kind read the same.
fn cause(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

impl Client {
    fn new(url: String, token: String) -> Self {
        Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            url,
            token,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", format!("\"{}\"", uuid::Uuid::new_v4()))
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != 202 {
            return Err(format!("POST {path}: {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }

    /// Waits (long-polling) until the device is at `version` or later with `status`.
    async fn wait_for(&self, id: &str, version: u64, status: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let response = self
                .http
                .get(format!(
                    "{}/v1/devices/{id}?min_version={version}&wait=30",
                    self.url
                ))
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status() == 200 {
                let device: Value = response.json().await.map_err(|e| e.to_string())?;
                if device["version"].as_u64().unwrap_or(0) >= version {
                    return if device["status"] == status {
                        Ok(())
                    } else {
                        Err(format!("device {id} is {}", device["status"]))
                    };
                }
            } else if response.status() != 404 {
                return Err(format!("GET device: {}", response.status()));
            }
        }
        Err(format!("device {id} never reached version {version}"))
    }
}

fn registration(serial: &str) -> Value {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, serial);
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    json!({"serial_number": serial, "model": "bench-x1", "csr": csr, "labels": {"site": "bench"}})
}

/// Starts `op(i)` for i in 0..n at `rate` per second, open loop; collects the outcomes.
async fn at_fixed_rate<F, Fut>(rate: u32, n: usize, op: F) -> Vec<Outcome>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(start + interval * i as u32).await;
        tasks.push(tokio::spawn(op(i)));
    }
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| Err(e.to_string())))
        .collect()
}

fn summary(scenario: &str, rate: u32, outcomes: &[Outcome], extra: Value) -> Value {
    let mut ms: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let errors: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    let q = |f: f64| {
        ms.get(((ms.len() as f64 * f) as usize).min(ms.len().saturating_sub(1)))
            .map_or(0.0, |v| (v * 100.0).round() / 100.0)
    };
    let mut doc = json!({
        "scenario": scenario,
        "rate_per_s": rate,
        "count": ms.len(),
        "p50_ms": q(0.5),
        "p90_ms": q(0.9),
        "p99_ms": q(0.99),
        "max_ms": ms.last().map_or(0.0, |v| (v * 100.0).round() / 100.0),
        "errors": errors.len(),
        "first_error": errors.first().map(|e| e.as_str()),
        "errors_by_kind": errors_by_kind(&errors),
    });
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        doc.extend(extra);
    }
    doc
}

/// The five most frequent error messages and how often each occurred.
fn errors_by_kind(errors: &[&String]) -> Value {
    let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for error in errors {
        *counts.entry(error.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(&str, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    Value::Object(
        counts
            .into_iter()
            .take(5)
            .map(|(error, count)| (error.to_owned(), json!(count)))
            .collect(),
    )
}

async fn provision(client: Client, rate: u32, seconds: u32) -> Value {
    let n = (rate * seconds) as usize;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let bodies: Arc<Vec<Value>> = Arc::new(
        (0..n)
            .map(|i| registration(&format!("P-{}-{i}", &run[..8])))
            .collect(),
    );
    let client = Arc::new(client);
    let wall = Instant::now();
    let outcomes = at_fixed_rate(rate, n, |i| {
        let (client, bodies) = (client.clone(), bodies.clone());
        async move {
            let accepted = client.post("/v1/devices", &bodies[i]).await?;
            let at_202 = Instant::now();
            let id = accepted["id"].as_str().unwrap_or_default().to_owned();
            client.wait_for(&id, 2, "provisioned").await?;
            Ok(at_202.elapsed())
        }
    })
    .await;
    summary(
        "provision",
        rate,
        &outcomes,
        json!({"wall_s": wall.elapsed().as_secs_f64()}),
    )
}

/// What became of one registration offered past capacity.
enum Offered {
    /// Accepted and visible as provisioned, this long after its 202; `long_polls_shed` of its
    /// long-polls were shed and retried on the way.
    Provisioned {
        after_202: Duration,
        long_polls_shed: u32,
    },
    /// Refused with `Retry-After`, this problem type (`overloaded`, `rate-limited`,
    /// `service-unavailable`).
    Shed(String),
    /// Anything else: a transport error, another status, a device never provisioned; whether
    /// the registration had been accepted.
    Failed { accepted: bool, error: String },
}

async fn overload(url: String, tokens: Vec<String>, rate: u32, seconds: u32) -> Value {
    assert!(
        !tokens.is_empty(),
        "at least one token (--tokens or TOKENS)"
    );
    let n = (rate * seconds) as usize;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let bodies: Arc<Vec<Value>> = Arc::new(
        (0..n)
            .map(|i| registration(&format!("O-{}-{i}", &run[..8])))
            .collect(),
    );
    // One connection pool for all tenants, as a gateway in front of the fleet would have.
    let http = Client::new(url.clone(), String::new()).http;
    let clients: Arc<Vec<Client>> = Arc::new(
        tokens
            .iter()
            .map(|token| Client {
                http: http.clone(),
                url: url.clone(),
                token: token.clone(),
            })
            .collect(),
    );
    let wall = Instant::now();
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (clients, bodies) = (clients.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let client = &clients[i % clients.len()];
            offer_registration(client, &bodies[i]).await
        }));
    }
    let offered: Vec<Offered> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|e| Offered::Failed {
                accepted: false,
                error: e.to_string(),
            })
        })
        .collect();
    let mut shed_by_type = serde_json::Map::new();
    let mut accepted = 0u64;
    let mut long_polls_shed = 0u64;
    let mut outcomes: Vec<Outcome> = Vec::new();
    for o in &offered {
        match o {
            Offered::Provisioned {
                after_202,
                long_polls_shed: shed,
            } => {
                accepted += 1;
                long_polls_shed += u64::from(*shed);
                outcomes.push(Ok(*after_202));
            }
            Offered::Shed(problem) => {
                let count = shed_by_type.entry(problem.clone()).or_insert(json!(0));
                *count = json!(count.as_u64().unwrap_or(0) + 1);
            }
            Offered::Failed {
                accepted: was_accepted,
                error,
            } => {
                accepted += u64::from(*was_accepted);
                outcomes.push(Err(error.clone()));
            }
        }
    }
    let shed: u64 = shed_by_type.values().filter_map(Value::as_u64).sum();
    summary(
        "overload",
        rate,
        &outcomes,
        json!({
            "offered": n,
            "tenants": clients.len(),
            "accepted": accepted,
            "shed": shed,
            "shed_by_type": shed_by_type,
            "long_polls_shed": long_polls_shed,
            "wall_s": wall.elapsed().as_secs_f64(),
        }),
    )
}

async fn offer_registration(client: &Client, body: &Value) -> Offered {
    let response = client
        .http
        .post(format!("{}/v1/devices", client.url))
        .bearer_auth(&client.token)
        .header("Idempotency-Key", format!("\"{}\"", uuid::Uuid::new_v4()))
        .json(body)
        .send()
        .await;
    let failed = |accepted: bool| move |error: String| Offered::Failed { accepted, error };
    let response = match response {
        Ok(r) => r,
        Err(e) => return failed(false)(format!("POST: {}", cause(e))),
    };
    match response.status().as_u16() {
        202 => {}
        429 | 503 if response.headers().contains_key("retry-after") => {
            return Offered::Shed(problem_type(response).await)
        }
        status => return failed(false)(format!("POST: {status}")),
    }
    let at_202 = Instant::now();
    let accepted: Value = match response.json().await {
        Ok(v) => v,
        Err(e) => return failed(true)(e.to_string()),
    };
    let id = accepted["id"].as_str().unwrap_or_default().to_owned();
    let deadline = at_202 + Duration::from_secs(60);
    let mut long_polls_shed = 0;
    while Instant::now() < deadline {
        let response = client
            .http
            .get(format!(
                "{}/v1/devices/{id}?min_version=2&wait=30",
                client.url
            ))
            .bearer_auth(&client.token)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return failed(true)(format!("GET device: {}", cause(e))),
        };
        match response.status().as_u16() {
            200 => {
                let device: Value = match response.json().await {
                    Ok(v) => v,
                    Err(e) => return failed(true)(e.to_string()),
                };
                if device["version"].as_u64().unwrap_or(0) >= 2 {
                    return if device["status"] == "provisioned" {
                        Offered::Provisioned {
                            after_202: at_202.elapsed(),
                            long_polls_shed,
                        }
                    } else {
                        failed(true)(format!("device {id} is {}", device["status"]))
                    };
                }
            }
            404 => {}
            429 | 503 if response.headers().contains_key("retry-after") => {
                long_polls_shed += 1;
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            status => return failed(true)(format!("GET device: {status}")),
        }
    }
    failed(true)(format!("device {id} never provisioned"))
}

/// The slug of a problem+json response's `type` (`/problems/overloaded` → `overloaded`).
async fn problem_type(response: reqwest::Response) -> String {
    let problem: Value = response.json().await.unwrap_or_default();
    problem["type"]
        .as_str()
        .unwrap_or("/problems/unknown")
        .trim_start_matches("/problems/")
        .to_owned()
}

async fn lag(client: Client, rate: u32, seconds: u32) -> Value {
    let n = (rate * seconds) as usize;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let client = Arc::new(client);
    // Set-up, not measured: n provisioned devices.
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let registered = join_all(chunk.iter().map(|i| {
            let client = client.clone();
            let body = registration(&format!("L-{}-{i}", &run[..8]));
            async move {
                let accepted = client.post("/v1/devices", &body).await?;
                let id = accepted["id"].as_str().unwrap_or_default().to_owned();
                client.wait_for(&id, 2, "provisioned").await?;
                Ok::<String, String>(id)
            }
        }))
        .await;
        for id in registered {
            ids.push(id.expect("set-up registration"));
        }
    }
    let ids = Arc::new(ids);
    let outcomes = at_fixed_rate(rate, n, |i| {
        let (client, ids) = (client.clone(), ids.clone());
        async move {
            let path = format!("/v1/devices/{}/decommission", ids[i]);
            let accepted = client.post(&path, &json!({"reason": "bench"})).await?;
            let at_202 = Instant::now();
            // The version the 202 names (the decommission also revokes the certificate).
            let version = accepted["version"]
                .as_u64()
                .ok_or("a 202 without a version")?;
            client.wait_for(&ids[i], version, "decommissioned").await?;
            Ok(at_202.elapsed())
        }
    })
    .await;
    summary("lag", rate, &outcomes, json!({}))
}

async fn revocation_ocsp(
    client: Client,
    rate: u32,
    seconds: u32,
    requests: &std::path::Path,
    ocsp_path: String,
) -> Value {
    let mut devices: Vec<(String, Vec<u8>)> = std::fs::read_dir(requests)
        .expect("the OCSP requests directory")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".der")?.to_owned();
            Some((id, std::fs::read(entry.path()).ok()?))
        })
        .collect();
    devices.truncate((rate * seconds) as usize);
    let n = devices.len();
    let (client, devices, ocsp_path) = (Arc::new(client), Arc::new(devices), Arc::new(ocsp_path));
    let outcomes = at_fixed_rate(rate, n, |i| {
        let (client, devices, ocsp_path) = (client.clone(), devices.clone(), ocsp_path.clone());
        async move {
            let (id, request) = &devices[i];
            let path = format!("/v1/devices/{id}/certificate:revoke");
            client
                .post(&path, &json!({"reason": "keyCompromise"}))
                .await?;
            let at_202 = Instant::now();
            while at_202.elapsed() < Duration::from_secs(10) {
                let response = client
                    .http
                    .post(format!("{}{ocsp_path}", client.url))
                    .header("Content-Type", "application/ocsp-request")
                    .body(request.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let body = response.bytes().await.map_err(|e| e.to_string())?;
                if ocsp_says_revoked(&body)? {
                    return Ok(at_202.elapsed());
                }
                // Every 25 ms: finer polling is load of its own (a hundred revocations in
                // flight polling every 10 ms sent thousands of OCSP requests a second,
                // which slowed the very pipeline being timed).
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(format!("device {id}: OCSP never said revoked"))
        }
    })
    .await;
    summary("revocation_ocsp", rate, &outcomes, json!({}))
}

/// Whether a successful OCSP response's first answer is `revoked`.
fn ocsp_says_revoked(der: &[u8]) -> Result<bool, String> {
    use der::Decode;
    use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
    let response = OcspResponse::from_der(der).map_err(|e| format!("OCSP response: {e}"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!("OCSP status {:?}", response.response_status));
    }
    let bytes = response.response_bytes.ok_or("no response bytes")?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("basic response: {e}"))?;
    let first = basic
        .tbs_response_data
        .responses
        .first()
        .ok_or("no single response")?;
    Ok(matches!(first.cert_status, CertStatus::Revoked(_)))
}

async fn crl_production(
    database_url: &str,
    ca_cert: &std::path::Path,
    ca_key: &std::path::Path,
) -> Value {
    use app::pki::{CrlPublication, CrlPublished, CrlSigner};
    let ca = pki::IssuingCa::open(
        ca_cert,
        &pki::KeyReference::File {
            variable: "CA_KEY_PATH",
            path: ca_key.to_owned(),
        },
        chrono::Duration::days(365),
    )
    .expect("the CA");
    let ca: Arc<dyn CrlSigner> = Arc::new(ca);
    let pool = store::connect(&store::DatabaseSettings {
        url: database_url.to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(120),
        plan_per_execution: false,
        application_name: "loadgen-crl".into(),
    })
    .expect("DATABASE_URL");
    let repository = Arc::new(store::PostgresCrls::new(pool.clone()));
    // Half a validity of one second: due whatever the current CRL is.
    let publication = CrlPublication::new(
        Arc::new(projections::PostgresRevocations::of_platform_ca(
            pool.clone(),
            ca.ca().clone(),
        )),
        ca.clone(),
        repository.clone(),
        Duration::from_secs(1),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let outcome = publication.publish_if_due(chrono::Utc::now()).await;
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(CrlPublished::Published(header)) => {
            use app::pki::CrlRepository;
            let size = repository
                .current(ca.ca())
                .await
                .ok()
                .flatten()
                .map_or(0, |crl| crl.der.len());
            json!({"scenario": "crl_production", "entries": header.entries, "seconds": (seconds * 1000.0).round() / 1000.0, "crl_bytes": size, "peak_rss_mib": peak_rss_mib()})
        }
        other => json!({"scenario": "crl_production", "error": format!("{other:?}")}),
    }
}

/// This process's peak resident memory (Linux `VmHWM`), in MiB; 0 where unknown.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    (kib / 1024.0 * 10.0).round() / 10.0
}

#[derive(serde::Deserialize)]
struct FeedPage {
    events: Vec<serde::de::IgnoredAny>,
    next_cursor: String,
}

async fn feed(client: &Client, limit: u32) -> Value {
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut events = 0usize;
    let mut pages: Vec<Outcome> = Vec::new();
    loop {
        let mut url = format!("{}/v1/events?limit={limit}", client.url);
        if let Some(cursor) = &after {
            url.push_str(&format!("&after={cursor}"));
        }
        let page_started = Instant::now();
        let response = client.http.get(url).bearer_auth(&client.token).send().await;
        // Only what paging needs: the events are counted, not built into a tree, so that
        // the measurement is of the service rather than of this client's JSON parsing.
        let page: FeedPage = match response {
            Ok(r) if r.status() == 200 => match r
                .bytes()
                .await
                .map_err(|e| e.to_string())
                .and_then(|body| serde_json::from_slice(&body).map_err(|e| e.to_string()))
            {
                Ok(page) => page,
                Err(e) => {
                    pages.push(Err(e));
                    break;
                }
            },
            Ok(r) => {
                pages.push(Err(format!("GET /v1/events: {}", r.status())));
                break;
            }
            Err(e) => {
                pages.push(Err(e.to_string()));
                break;
            }
        };
        pages.push(Ok(page_started.elapsed()));
        if page.events.is_empty() {
            break;
        }
        events += page.events.len();
        after = Some(page.next_cursor);
    }
    let seconds = started.elapsed().as_secs_f64();
    summary(
        "feed",
        0,
        &pages,
        json!({"events": events, "events_per_s": (events as f64 / seconds).round(), "page_size": limit}),
    )
}

fn ca(seconds: u32, key_in_token: bool) -> Value {
    use pki::dev_ca::generate_dev_ca;
    let (ca, key_label) = if key_in_token {
        let key = softhsm_key();
        let cert = pki::dev_ca::dev_ca_for_key("bench CA", key.clone()).expect("CA");
        let ca = pki::IssuingCa::new(&cert, key, chrono::Duration::days(365)).expect("CA");
        (
            ca,
            "ECDSA P-256 CSR, ECDSA P-256 CA key in SoftHSM2 (PKCS#11)",
        )
    } else {
        let (cert, key) = generate_dev_ca("bench CA").expect("CA");
        let ca = pki::IssuingCa::from_pem(&cert, &key, chrono::Duration::days(365)).expect("CA");
        (ca, "ECDSA P-256 CSR, ECDSA P-256 CA key file")
    };
    let requests: Vec<app::CertificateRequest> = (0..256)
        .map(|i| {
            let serial = format!("CA-{i}");
            let body = registration(&serial);
            app::CertificateRequest {
                device_id: domain::DeviceId::from_uuid(uuid::Uuid::new_v4()),
                request_id: domain::CertificateRequestId::from_uuid(uuid::Uuid::new_v4()),
                serial_number: domain::SerialNumber::parse(&serial).expect("serial"),
                request: domain::CertificateSigningRequest::from_pem(body["csr"].as_str().unwrap())
                    .expect("csr")
                    .into(),
            }
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    let started = Instant::now();
    let mut issued = 0u64;
    while Instant::now() < deadline {
        let request = &requests[issued as usize % requests.len()];
        ca.issue(request, chrono::Utc::now())
            .expect("the key signs")
            .expect("issued");
        issued += 1;
    }
    let per_second = issued as f64 / started.elapsed().as_secs_f64();
    let scenario = if key_in_token { "ca_hsm" } else { "ca" };
    json!({"scenario": scenario, "certificates_per_s_per_core": per_second.round(), "key": key_label})
}

/// A P-256 key generated in a SoftHSM2 token made for this run in a temporary directory
/// (`softhsm2-util`, Debian's `softhsm2`); the directory is left for the OS to clean.
fn softhsm_key() -> std::sync::Arc<dyn pki::SigningKey> {
    let dir =
        std::env::temp_dir().join(format!("loadgen-softhsm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("tokens")).expect("a temporary directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .expect("the SoftHSM configuration");
    // Before the module is loaded: SoftHSM reads it then.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let pin = "bench-pin-1234";
    let made = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bench"])
        .args(["--so-pin", "bench-so-pin", "--pin", pin])
        .output()
        .expect("softhsm2-util (scripts/test-clients installs SoftHSM2)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, pin).expect("the PIN file");
    let module = std::env::var_os("PKCS11_MODULE_PATH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    let module = pki::Pkcs11Module::load(&module, &pin_file).expect("the PKCS#11 module");
    let uri = pki::Pkcs11Uri::parse("pkcs11:token=bench;object=bench-ca").expect("a URI");
    std::sync::Arc::new(
        module
            .generate(&uri, pki::CaCurve::P256)
            .expect("a key in the token"),
    )
}
