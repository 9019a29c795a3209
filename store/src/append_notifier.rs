//! Tells the relay that events were appended, without slowing the append down.
//!
//! Why not a trigger that runs `NOTIFY` in the appending transaction: at commit, Postgres
//! serialises every transaction that has notified (a cluster-wide lock held through the commit
//! record's flush), which defeats group commit and caps appends at one fsync each. Instead,
//! after an append commits, the store pokes this notifier; a background task sends one
//! `pg_notify` in its own tiny transaction for however many appends happened meanwhile. A
//! lost notification (crash, full channel) costs only latency: the relay also polls.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::relay_lease::EVENTS_APPENDED_CHANNEL;

/// The least time between two notifications.
const NOTIFICATION_INTERVAL: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub struct AppendNotifier {
    poke: mpsc::Sender<()>,
}

impl AppendNotifier {
    /// Starts the notifying task on the current runtime; it ends when the last handle is
    /// dropped.
    pub fn spawn(pool: PgPool) -> Self {
        let (poke, mut poked) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            while poked.recv().await.is_some() {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(EVENTS_APPENDED_CHANNEL)
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "could not notify the relay; it will poll");
                }
                // Let appends accumulate, so that a busy store sends at most one notification
                // per relay round (`nats::RelaySettings::round_interval`), each a transaction
                // that takes Postgres's notification lock at commit.
                tokio::time::sleep(NOTIFICATION_INTERVAL).await;
            }
        });
        Self { poke }
    }

    /// Never waits: if a notification is already due, this append rides along with it.
    pub fn appended(&self) {
        let _ = self.poke.try_send(());
    }
}
