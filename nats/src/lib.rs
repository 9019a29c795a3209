//! The NATS side of the system: the connection, the JetStream stream contract (subjects,
//! headers, envelope), the commit-order relay that feeds it from Postgres, and the settings
//! of the workers' durable consumers. Nothing in this crate knows about HTTP.

mod consumer_settings;
mod relay;
mod stream_contract;

use std::time::Duration;

pub use consumer_settings::{durable_pull_consumer, ConsumerSettings};
pub use relay::{Relay, RelaySettings};
pub use stream_contract::{ensure_stream, headers, message_for, EventMessage, StreamSettings};

#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:port`. May carry credentials: never log it whole.
    pub url: String,
    /// How long to wait for the first connection before giving up.
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to NATS within {0:?}")]
    ConnectTimeout(Duration),
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
}

/// Connects to NATS. After the first connection, async-nats reconnects by itself (and
/// buffers publishes meanwhile; the relay's ack timeout bounds how long it waits for them).
pub async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, NatsError> {
    let options = async_nats::ConnectOptions::new()
        .connection_timeout(settings.connect_timeout)
        .retry_on_initial_connect()
        .name("device-provisioning");
    tokio::time::timeout(
        settings.connect_timeout,
        options.connect(settings.url.as_str()),
    )
    .await
    .map_err(|_| NatsError::ConnectTimeout(settings.connect_timeout))?
    .map_err(NatsError::Connect)
}

/// A readiness probe: a PING/PONG round trip to the server (bounded by the caller).
pub async fn ping(client: &async_nats::Client) -> Result<(), String> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err("not connected".to_owned());
    }
    client.flush().await.map_err(|e| e.to_string())
}
