//! One Postgres channel listened to in the background, on a connection of its own: what the
//! change signals of long-polls are made of (`app::WakeUps` filled from notifications).
//! Reconnects by itself after a failure; while it cannot listen, waiters fall back on their
//! own periodic re-reads.

use std::ops::ControlFlow;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener};

/// Listens on `channel` and hands each notification's payload to `on_notification`; `None`
/// after the connection was lost (notifications may have been missed meanwhile). Stops when
/// `on_notification` says so (its owner is gone). Call within a Tokio runtime.
pub fn spawn_listener(
    options: PgConnectOptions,
    channel: &'static str,
    mut on_notification: impl FnMut(Option<&str>) -> ControlFlow<()> + Send + 'static,
) {
    tokio::spawn(async move {
        let pool = sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(channel).await?;
                loop {
                    let notification = listener.try_recv().await?;
                    let payload = notification.as_ref().map(|n| n.payload());
                    if on_notification(payload).is_break() {
                        return Ok::<(), sqlx::Error>(());
                    }
                }
            };
            match listening.await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(error = %e, channel, "listener failed; reconnecting");
                    if on_notification(None).is_break() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}
