//! The shipped NATS configuration (`nats/nats-server.conf`, used by compose and scripts/dev):
//! the worker (which hosts the relay) runs the whole pipeline with its user; no other user
//! may publish to the event subjects or change the stream; analysts can read the stream but
//! not touch the worker's consumers (each one it defines is checked); a tenant's analyst, with
//! a real NATS client, reads that tenant's events (live and through its consumer) and is
//! refused every way to another tenant's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;

use crate::helpers::{registration, unique_serial, PrivateNats, Stack, TENANT};
use crate::provisioning::PATIENCE;

const STREAM: &str = "DEVICE_EVENTS";
const PREFIX: &str = "events";

async fn secured_nats() -> (PrivateNats, [(&'static str, String); 4]) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nats/nats-server.conf");
    // Passwords start with a letter: nats-server reads an environment variable as a config
    // value, and one like "8e3f…" is taken for a malformed number (see nats-server.conf).
    let password = || format!("p{}", uuid::Uuid::new_v4().simple());
    let users = [
        ("worker", password()),
        ("api", password()),
        ("analyst", password()),
        ("analyst-demo", password()),
    ];
    let env = users
        .iter()
        .map(|(user, password)| {
            (
                format!("NATS_{}_PASSWORD", user.to_uppercase().replace('-', "_")),
                password.clone(),
            )
        })
        .collect();
    (PrivateNats::start_with_config(config, env).await, users)
}

/// A client of `nats` as `user`, recording the errors the server sends it.
async fn client_as(
    nats: &PrivateNats,
    user: &str,
    password: &str,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    client_with_inbox(nats, user, password, None).await
}

/// [`client_as`], with replies coming to `inbox_prefix` (a tenant's analyst's) when given.
async fn client_with_inbox(
    nats: &PrivateNats,
    user: &str,
    password: &str,
    inbox_prefix: Option<String>,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let mut options = async_nats::ConnectOptions::new()
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .user_and_password(user.to_owned(), password.to_owned());
    if let Some(prefix) = inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    let client = options.connect(nats.url.as_str()).await.unwrap();
    (client, errors)
}

#[tokio::test]
async fn only_the_worker_may_publish_events_and_analysts_can_read_them() {
    let (nats, users) = secured_nats().await;
    let [(_, worker_password), (_, api_password), (_, analyst_password), _] = &users;
    let mut stack = Stack::start_with_nats(nats.url_as("worker", worker_password)).await;
    stack.stream = STREAM.to_owned();
    stack.prefix = PREFIX.to_owned();
    stack.spawn_worker();

    // The worker's user runs the relay and the consumers.
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;
    let held = stack.stream_messages().await;
    assert_eq!(held, 2);

    // Nobody else can put a message on an event subject.
    for (user, password) in [("api", api_password), ("analyst", analyst_password)] {
        let (client, errors) = client_as(&nats, user, password).await;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(1))
            .build(client.clone());
        let subject = format!("{PREFIX}.{TENANT}.device.DeviceDecommissioned");
        let published = match js.publish(subject, "{}".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!published, "{user} published an event");
        let _ = client.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let errors = errors.lock().unwrap().join("; ");
        assert!(
            errors.contains("Permissions Violation for Publish"),
            "{user}: {errors}"
        );
        // Nor change the stream.
        assert!(
            js.delete_stream(STREAM).await.is_err(),
            "{user} deleted the stream"
        );
    }
    assert_eq!(stack.stream_messages().await, held);

    // Anonymous clients are refused.
    let anonymous = async_nats::ConnectOptions::new()
        .connect(nats.url.as_str())
        .await;
    assert!(anonymous.is_err(), "an anonymous client connected");

    // Analysts read the stream through a consumer of their own.
    let (client, _) = client_as(&nats, "analyst", analyst_password).await;
    let js = jetstream::new(client);
    let stream = js.get_stream(STREAM).await.unwrap();
    let reader = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("analyst-test".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = reader.fetch().max_messages(10).messages().await.unwrap();
    let mut read = 0;
    while let Some(message) = messages.next().await {
        message.unwrap().ack().await.unwrap();
        read += 1;
    }
    assert_eq!(read, 2);
}

/// The names of every consumer the worker defines: its provisioners' and one projector per
/// registered read model.
fn worker_consumer_names() -> Vec<String> {
    use worker::consumer_registry::{
        projector_consumer, REGISTRATIONS_CONSUMER, RENEWALS_CONSUMER,
    };
    let mut names = vec![
        REGISTRATIONS_CONSUMER.to_owned(),
        RENEWALS_CONSUMER.to_owned(),
    ];
    names.extend(projections::registered().map(|p| projector_consumer(p.name())));
    names
}

/// Sends a request on `subject` that the server should refuse; the errors it sent.
async fn refused(
    client: &async_nats::Client,
    errors: &Arc<Mutex<Vec<String>>>,
    subject: String,
    body: &str,
) -> String {
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        client.request(subject.clone(), body.to_owned().into()),
    )
    .await;
    if let Ok(Ok(message)) = &answer {
        // A JetStream API answer: only an error is acceptable.
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        assert!(text.contains("\"error\""), "{subject} was answered: {text}");
        return text;
    }
    let _ = client.flush().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let errors = errors.lock().unwrap().join("; ");
    assert!(
        errors.contains(&format!(
            "Permissions Violation for Publish to \"{subject}\""
        )),
        "{subject}: {errors}"
    );
    errors
}

#[tokio::test]
async fn analysts_cannot_take_or_change_the_workers_consumers() {
    let (nats, users) = secured_nats().await;
    let [(_, worker_password), _, (_, analyst_password), _] = &users;
    let mut stack = Stack::start_with_nats(nats.url_as("worker", worker_password)).await;
    stack.stream = STREAM.to_owned();
    stack.prefix = PREFIX.to_owned();
    stack.spawn_worker();
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;

    let (client, errors) = client_as(&nats, "analyst", analyst_password).await;
    let names = worker_consumer_names();
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        // Pulling its messages would take work from the worker (and acking them lose it).
        refused(
            &client,
            &errors,
            format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{name}"),
            r#"{"batch":1,"expires":100000000}"#,
        )
        .await;
        // Nor may it redefine or delete the consumer.
        let config = format!(
            r#"{{"stream_name":"{STREAM}","config":{{"durable_name":"{name}","ack_policy":"none"}}}}"#
        );
        refused(
            &client,
            &errors,
            format!("$JS.API.CONSUMER.CREATE.{STREAM}.{name}"),
            &config,
        )
        .await;
        refused(
            &client,
            &errors,
            format!("$JS.API.CONSUMER.DELETE.{STREAM}.{name}"),
            "",
        )
        .await;
    }
    // The worker still provisions.
    let id = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(id, "provisioned", PATIENCE).await;
}

#[tokio::test]
async fn a_tenants_analyst_reads_that_tenants_events_and_no_others() {
    const OWN: &str = "demo";
    let (nats, users) = secured_nats().await;
    let [(_, worker_password), _, _, (_, demo_password)] = &users;
    let mut stack = Stack::start_with_nats(nats.url_as("worker", worker_password)).await;
    stack.stream = STREAM.to_owned();
    stack.prefix = PREFIX.to_owned();
    stack.spawn_worker();
    let register_in = |tenant: &'static str| {
        let request = stack
            .client
            .post(stack.url("/v1/devices"))
            .bearer_auth(stack.token(tenant, "devices:write"))
            .header("Idempotency-Key", format!("\"{}\"", uuid::Uuid::new_v4()))
            .json(&registration(&unique_serial()));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            let body: serde_json::Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()
        }
    };
    let own = register_in(OWN).await;
    let other = stack.register(&registration(&unique_serial())).await;
    stack.wait_for_status(other, "provisioned", PATIENCE).await;
    let started = std::time::Instant::now();
    while stack.stream_messages().await < 4 {
        assert!(
            started.elapsed() < PATIENCE,
            "the relay published both devices' events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = own;

    let (client, errors) = client_with_inbox(
        &nats,
        "analyst-demo",
        demo_password,
        Some(format!("_INBOX_{OWN}")),
    )
    .await;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client.clone());

    // Its one consumer, filtered on its subjects: the tenant's events, all of them, only them.
    let reader = js
        .create_consumer_on_stream(
            consumer::pull::Config {
                durable_name: Some(format!("analytics-{OWN}")),
                filter_subject: format!("{PREFIX}.{OWN}.>"),
                ..Default::default()
            },
            STREAM,
        )
        .await
        .unwrap();
    let mut messages = reader
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut subjects = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        subjects.push(message.subject.to_string());
        message.ack().await.unwrap();
    }
    assert!(!subjects.is_empty());
    assert!(
        subjects
            .iter()
            .all(|s| s.starts_with(&format!("{PREFIX}.{OWN}."))),
        "{subjects:?}"
    );

    // Live, over core NATS: its subjects, not another tenant's.
    let mut live = client.subscribe(format!("{PREFIX}.{OWN}.>")).await.unwrap();
    let _ = client
        .subscribe(format!("{PREFIX}.{TENANT}.>"))
        .await
        .unwrap();
    let _ = client.subscribe("_INBOX.>").await.unwrap();
    client.flush().await.unwrap();
    register_in(OWN).await;
    let message = tokio::time::timeout(PATIENCE, live.next())
        .await
        .unwrap()
        .unwrap();
    assert!(message.subject.starts_with(&format!("{PREFIX}.{OWN}.")));
    let subscriptions = errors.lock().unwrap().join("; ");
    for forbidden in [format!("{PREFIX}.{TENANT}.>"), "_INBOX.>".to_owned()] {
        assert!(
            subscriptions.contains(&format!(
                "Permissions Violation for Subscription to \"{forbidden}\""
            )),
            "{forbidden}: {subscriptions}"
        );
    }

    // No consumer on another tenant's subjects, under any name; no reading messages directly.
    for (name, filter) in [
        (format!("analytics-{OWN}"), format!("{PREFIX}.{TENANT}.>")),
        (
            format!("analytics-{TENANT}"),
            format!("{PREFIX}.{TENANT}.>"),
        ),
        (format!("analytics-{OWN}"), format!("{PREFIX}.>")),
    ] {
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: filter.clone(),
            ..Default::default()
        };
        assert!(
            js.create_consumer_on_stream(config, STREAM).await.is_err(),
            "{name} on {filter}"
        );
    }
    // A create subject naming its own filter, with another filter in the request: JetStream
    // refuses the mismatch.
    let smuggled = format!(
        r#"{{"stream_name":"{STREAM}","config":{{"durable_name":"analytics-{OWN}","filter_subject":"{PREFIX}.{TENANT}.>","ack_policy":"explicit"}}}}"#
    );
    refused(
        &client,
        &errors,
        format!("$JS.API.CONSUMER.CREATE.{STREAM}.analytics-{OWN}.{PREFIX}.{OWN}.>"),
        &smuggled,
    )
    .await;
    for subject in [
        format!("$JS.API.STREAM.MSG.GET.{STREAM}"),
        format!("$JS.API.DIRECT.GET.{STREAM}"),
        format!("$JS.API.STREAM.INFO.{STREAM}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.provisioner-registrations"),
    ] {
        refused(&client, &errors, subject, r#"{"seq":1}"#).await;
    }
}
