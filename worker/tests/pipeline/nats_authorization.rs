//! The shipped NATS configuration (`nats/nats-server.conf`, used by compose and scripts/dev):
//! the worker (which hosts the relay) runs the whole pipeline with its user; no other user
//! may publish to the event subjects or change the stream; analysts can read the stream.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;

use crate::helpers::{registration, unique_serial, PrivateNats, Stack, TENANT};
use crate::provisioning::PATIENCE;

const STREAM: &str = "DEVICE_EVENTS";
const PREFIX: &str = "events";

async fn secured_nats() -> (PrivateNats, [(&'static str, String); 3]) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nats/nats-server.conf");
    // Passwords start with a letter: nats-server reads an environment variable as a config
    // value, and one like "8e3f…" is taken for a malformed number (see nats-server.conf).
    let password = || format!("p{}", uuid::Uuid::new_v4().simple());
    let users = [
        ("worker", password()),
        ("api", password()),
        ("analyst", password()),
    ];
    let env = users
        .iter()
        .map(|(user, password)| {
            (
                format!("NATS_{}_PASSWORD", user.to_uppercase()),
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
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let client = async_nats::ConnectOptions::new()
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .user_and_password(user.to_owned(), password.to_owned())
        .connect(nats.url.as_str())
        .await
        .unwrap();
    (client, errors)
}

#[tokio::test]
async fn only_the_worker_may_publish_events_and_analysts_can_read_them() {
    let (nats, users) = secured_nats().await;
    let [(_, worker_password), (_, api_password), (_, analyst_password)] = &users;
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
