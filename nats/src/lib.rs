//! The NATS side of the system: the connection, the JetStream stream contract (subjects,
//! headers, envelope), the commit-order relay that feeds it from Postgres, and the durable
//! consumers (`consumers`): taking, keeping, acking and redelivering their messages, dead
//! letters, replays and lag, around handlers that see only decoded events. Nothing in this
//! crate knows about HTTP, and no other crate needs to know async-nats to consume.

mod consumers;
mod link_state;
mod relay;
mod stream_contract;

use std::time::Duration;

pub use consumers::{
    durable_pull_consumer, recording_retries, replay_consumer, replay_durable_consumer,
    ConsumerRunner, ConsumerSettings, DeliveredEvent, EventHandler, Outcome, Pace, ReplayStart,
};
pub use link_state::{LinkState, NatsLink, URL_VARIABLE};
pub use relay::{Relay, RelaySettings};
pub use stream_contract::{ensure_stream, headers, message_for, EventMessage, StreamSettings};

#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:port`. May carry credentials: never log it whole.
    pub url: String,
    /// How long one connection attempt may take (attempts repeat until one succeeds).
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The settings themselves are unusable (e.g. a malformed URL); an unreachable server is
    /// not an error here: the client keeps trying in the background.
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    /// The server refused the credentials of `NATS_URL` (the message names the variable and
    /// the user, never the password).
    #[error("{0}")]
    CredentialsRefused(String),
    /// The stream could not be reached (missing, or NATS did not answer).
    #[error("stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("cannot recreate consumer {consumer}")]
    RecreateConsumer {
        consumer: String,
        #[source]
        source: async_nats::Error,
    },
}

/// A NATS client that connects in the background and reconnects by itself: a process starts
/// even while NATS is down (readiness says so) and catches up when it returns. Publishes made
/// meanwhile are buffered; the relay's ack timeout bounds how long it waits for them.
///
/// Credentials in the URL (`nats://user:password@host:port`) are sent as the server's user and
/// password (the client library itself ignores them), so that one variable says where and as
/// whom to connect; the shipped server configuration (`nats/nats-server.conf`) grants each
/// user only what its role needs. A named user's replies (pull requests' messages, JetStream
/// API answers, publish acks) come to an inbox prefix of its own, [`inbox_prefix`], which the
/// configuration lets no other user subscribe to.
pub async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, NatsError> {
    Ok(connect_watched(settings).await?.0)
}

/// [`connect`], then waits for the first connection attempt to finish (at most the connect
/// timeout) and refuses credentials the server refuses: a process started with a wrong
/// password says so and stops, instead of saying it is ready and then timing out on every
/// request. An unreachable server is no error (the client keeps trying; readiness says so).
/// The [`NatsLink`] tells readiness, later, if the server refuses the credentials again.
pub async fn connect_checked(
    settings: &NatsSettings,
) -> Result<(async_nats::Client, NatsLink), NatsError> {
    let (client, link) = connect_watched(settings).await?;
    if link.first_outcome(settings.connect_timeout).await == LinkState::CredentialsRefused {
        let refusal = link.credentials_refused().unwrap_or_default().to_owned();
        return Err(NatsError::CredentialsRefused(refusal));
    }
    Ok((client, link))
}

/// [`connect`], with the link's state watched (see [`NatsLink`]); what the server says about
/// the credentials is logged in our words.
pub async fn connect_watched(
    settings: &NatsSettings,
) -> Result<(async_nats::Client, NatsLink), NatsError> {
    let mut options = async_nats::ConnectOptions::new();
    let mut user = None;
    // `NATS_URL` may list a cluster's servers, comma-separated: the client connects to one and
    // moves to another when it goes (and learns the rest of the cluster from the server).
    let mut servers = Vec::new();
    for url in settings.url.split(',') {
        let address: async_nats::ServerAddr = url.trim().parse().map_err(|e| {
            NatsError::Connect(async_nats::ConnectError::with_source(
                async_nats::ConnectErrorKind::ServerParse,
                e,
            ))
        })?;
        if let (Some(name), Some(password)) = (address.username(), address.password()) {
            options = options
                .user_and_password(name.to_owned(), password.to_owned())
                .custom_inbox_prefix(inbox_prefix(name));
            user = Some(name.to_owned());
        }
        servers.push(address);
    }
    let (link, events) = NatsLink::new(user.as_deref());
    let client = options
        .event_callback(events)
        .connection_timeout(settings.connect_timeout)
        .retry_on_initial_connect()
        .name("device-provisioning")
        .connect(servers)
        .await
        .map_err(NatsError::Connect)?;
    Ok((client, link))
}

/// The inbox prefix of the NATS user `user`: `_INBOX_<user>` (`_INBOX_worker` for the worker).
/// With the shared `_INBOX` another user allowed `_INBOX.>` could read the worker's pulled
/// messages or push its own consumer's messages into the worker's inbox.
/// A character that could not stand in one subject token (`.`, wildcards, spaces) becomes `_`.
pub fn inbox_prefix(user: &str) -> String {
    let token: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_INBOX_{token}")
}

/// The JetStream API on `client`'s connection (what the relay publishes through).
pub fn jetstream(client: &async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(client.clone())
}

/// Flushes what `client` still buffers (acks, publishes) and closes it, waiting at most
/// `within`; false if that did not finish in time.
pub async fn drain(client: &async_nats::Client, within: Duration) -> bool {
    tokio::time::timeout(within, client.drain()).await.is_ok()
}

/// A readiness probe: a PING/PONG round trip to the server (bounded by the caller).
pub async fn ping(client: &async_nats::Client) -> Result<(), String> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err("not connected".to_owned());
    }
    client.flush().await.map_err(|e| e.to_string())
}
