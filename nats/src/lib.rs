//! The NATS side of the system.
//!
//! Today: connecting, with a bounded wait, so that a process that needs NATS fails fast and
//! clearly when it is not there. The relay that publishes committed events to JetStream in
//! commit order, the stream definition and the consumers' settings come with the async path
//! (issue 3) and belong here too. Nothing in this crate knows about HTTP or SQL tables.

use std::time::Duration;

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

/// Connects to NATS. After the first connection, async-nats reconnects by itself.
pub async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, NatsError> {
    let options = async_nats::ConnectOptions::new()
        .connection_timeout(settings.connect_timeout)
        .name("device-provisioning");
    tokio::time::timeout(
        settings.connect_timeout,
        options.connect(settings.url.as_str()),
    )
    .await
    .map_err(|_| NatsError::ConnectTimeout(settings.connect_timeout))?
    .map_err(NatsError::Connect)
}
