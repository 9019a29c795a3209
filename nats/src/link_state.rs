//! What the server said about our connection, told in our own words. The client reconnects by
//! itself, and reports what happens only through its event callback: a refused password
//! shows up there ("authorization violation") while every JetStream request merely times out.
//! [`NatsLink`] keeps the latest state, so that start-up can refuse credentials the server
//! refuses, and readiness can say why it is not ready, naming `NATS_URL` (never its password).

use std::sync::Arc;
use std::time::Duration;

use async_nats::{ClientError, ConnectErrorKind, Event, ServerError};
use tokio::sync::watch;

/// The variable every process reads [`crate::NatsSettings::url`] from.
pub const URL_VARIABLE: &str = "NATS_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No attempt has finished yet.
    Connecting,
    Connected,
    /// The last attempt failed, or the connection dropped: the client keeps trying.
    Unreachable,
    /// The server refused the user and password (the client keeps trying: they may be fixed
    /// on the server's side).
    CredentialsRefused,
}

/// The state of one client's connection, as its events tell it.
#[derive(Clone)]
pub struct NatsLink {
    state: watch::Receiver<LinkState>,
    refusal: Arc<str>,
}

impl NatsLink {
    /// The link and the event callback that keeps it current. `user`: the user `NATS_URL`
    /// names, if any (named in the refusal; the password never is).
    pub(crate) fn new(
        user: Option<&str>,
    ) -> (
        Self,
        impl Fn(Event) -> std::future::Ready<()> + Send + Sync + 'static,
    ) {
        let refusal: Arc<str> = match user {
            Some(user) => format!(
                "NATS refused the credentials in {URL_VARIABLE} (authorization violation): check \
                 user {user:?} and its password"
            ),
            None => format!(
                "NATS refused the connection (authorization violation): the server requires a \
                 user and password, and {URL_VARIABLE} names none (nats://user:password@host:port)"
            ),
        }
        .into();
        let (sender, state) = watch::channel(LinkState::Connecting);
        let said = refusal.clone();
        let callback = move |event: Event| {
            if let Some(next) = state_after(&event) {
                let previous = sender.send_replace(next);
                if next == LinkState::CredentialsRefused && previous != next {
                    tracing::error!("{said}");
                } else if next == LinkState::Connected && previous == LinkState::CredentialsRefused
                {
                    tracing::info!("NATS accepted the credentials in {URL_VARIABLE} again");
                }
            }
            std::future::ready(())
        };
        (Self { state, refusal }, callback)
    }

    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// The state once the first connection attempt has finished, or `Connecting` if none has
    /// within `within`.
    pub async fn first_outcome(&self, within: Duration) -> LinkState {
        let mut state = self.state.clone();
        let settled = tokio::time::timeout(
            within,
            state.wait_for(|state| *state != LinkState::Connecting),
        )
        .await
        .ok()
        .and_then(|waited| waited.ok().map(|state| *state));
        settled.unwrap_or_else(|| self.state())
    }

    /// The refusal, in our words, while the server refuses the credentials.
    pub fn credentials_refused(&self) -> Option<&str> {
        (self.state() == LinkState::CredentialsRefused).then_some(&self.refusal)
    }

    /// A readiness probe: [`crate::ping`], saying why when the server refuses the credentials.
    pub async fn ping(&self, client: &async_nats::Client) -> Result<(), String> {
        if let Some(refusal) = self.credentials_refused() {
            if client.connection_state() != async_nats::connection::State::Connected {
                return Err(refusal.to_owned());
            }
        }
        crate::ping(client).await
    }
}

/// What `event` says about the connection, if anything. A failed attempt is reported as a
/// client error named after its `ConnectErrorKind`.
fn state_after(event: &Event) -> Option<LinkState> {
    let refused = [
        ConnectErrorKind::AuthorizationViolation.to_string(),
        ConnectErrorKind::Authentication.to_string(),
    ];
    match event {
        Event::Connected => Some(LinkState::Connected),
        Event::Disconnected => Some(LinkState::Unreachable),
        Event::ServerError(ServerError::AuthorizationViolation) => {
            Some(LinkState::CredentialsRefused)
        }
        Event::ClientError(ClientError::Other(kind)) if refused.contains(kind) => {
            Some(LinkState::CredentialsRefused)
        }
        Event::ClientError(ClientError::Other(_)) => Some(LinkState::Unreachable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_attempt_is_told_apart_from_an_unreachable_server() {
        let failed =
            |kind: ConnectErrorKind| Event::ClientError(ClientError::Other(kind.to_string()));
        assert_eq!(
            state_after(&failed(ConnectErrorKind::AuthorizationViolation)),
            Some(LinkState::CredentialsRefused)
        );
        assert_eq!(
            state_after(&failed(ConnectErrorKind::Io)),
            Some(LinkState::Unreachable)
        );
        assert_eq!(
            state_after(&Event::ServerError(ServerError::AuthorizationViolation)),
            Some(LinkState::CredentialsRefused)
        );
        assert_eq!(state_after(&Event::Connected), Some(LinkState::Connected));
        assert_eq!(state_after(&Event::SlowConsumer(1)), None);
    }

    #[test]
    fn the_refusal_names_the_variable_and_the_user_never_the_password() {
        let (link, callback) = NatsLink::new(Some("worker"));
        assert_eq!(link.credentials_refused(), None);
        drop(callback(Event::ClientError(ClientError::Other(
            ConnectErrorKind::AuthorizationViolation.to_string(),
        ))));
        let refusal = link.credentials_refused().expect("refused");
        assert!(
            refusal.contains("NATS_URL")
                && refusal.contains("\"worker\"")
                && refusal.contains("authorization violation"),
            "{refusal}"
        );
        drop(callback(Event::Connected));
        assert_eq!(link.credentials_refused(), None);
    }
}
