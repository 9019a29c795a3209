//! `app::ReadModelChanges` from Postgres notifications: one listening connection per
//! process, fanned out to every waiting request through a `watch` channel.

use std::time::Duration;

use app::ReadModelChanges;
use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio::sync::watch;

use crate::device_projector::READ_MODEL_CHANGED_CHANNEL;

pub struct PgReadModelChanges {
    changes: watch::Receiver<u64>,
}

impl PgReadModelChanges {
    /// Starts listening in the background on the current runtime; reconnects by itself.
    /// While it cannot listen, waiters fall back on their own periodic re-reads.
    pub fn spawn(options: PgConnectOptions) -> Self {
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(async move {
            let pool = sqlx::pool::PoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            loop {
                if tx.is_closed() {
                    return;
                }
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(READ_MODEL_CHANGED_CHANNEL).await?;
                    loop {
                        // `None`: the connection was lost and re-established; something may
                        // have changed meanwhile.
                        let _ = listener.try_recv().await?;
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                        if tx.is_closed() {
                            return Ok::<(), sqlx::Error>(());
                        }
                    }
                };
                if let Err(e) = listener.await {
                    tracing::debug!(error = %e, "read-model listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        Self { changes: rx }
    }
}

impl ReadModelChanges for PgReadModelChanges {
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}
