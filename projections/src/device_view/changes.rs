//! `app::ReadModelChanges` from Postgres notifications: one listening connection per
//! process; each notification names the devices whose rows changed and the version each
//! reached, and only the requests waiting for those devices are woken (a request that
//! re-read on every change would turn a busy projector into a storm of reads); a waiter
//! re-reads only once its version is reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::ReadModelChanges;
use domain::DeviceId;
use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio::sync::watch;

/// Notified after every live batch that changed `device_view`, with the changed devices as
/// `<id>:<version>` (comma-separated; a bare `<id>` means "changed, version unknown").
pub const READ_MODEL_CHANGED_CHANNEL: &str = "dp_read_model_changed";

/// Waiters by device. An entry lives while someone waits; entries nobody holds any more are
/// swept when the map has doubled since the last sweep.
#[derive(Default)]
struct Waiters {
    by_device: HashMap<DeviceId, watch::Sender<u64>>,
    swept_at_len: usize,
}

impl Waiters {
    fn watch(&mut self, id: DeviceId) -> watch::Receiver<u64> {
        // (The initial value is never seen: a receiver only looks at values sent after it
        // subscribed.)
        if self.by_device.len() > 2 * self.swept_at_len.max(512) {
            self.by_device.retain(|_, tx| tx.receiver_count() > 0);
            self.swept_at_len = self.by_device.len();
        }
        self.by_device
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn changed(&mut self, changes: impl Iterator<Item = (DeviceId, u64)>) {
        for (id, version) in changes {
            if let Some(tx) = self.by_device.get(&id) {
                if tx.receiver_count() == 0 {
                    self.by_device.remove(&id);
                } else {
                    tx.send_replace(version);
                }
            }
        }
    }

    /// After the listener lost its connection, any device may have changed meanwhile.
    fn all_changed(&mut self) {
        self.by_device.retain(|_, tx| tx.receiver_count() > 0);
        for tx in self.by_device.values() {
            tx.send_replace(app::ANY_VERSION);
        }
    }
}

pub struct PgReadModelChanges {
    waiters: Arc<Mutex<Waiters>>,
}

impl PgReadModelChanges {
    /// Starts listening in the background on the current runtime; reconnects by itself.
    /// While it cannot listen, waiters fall back on their own periodic re-reads.
    pub fn spawn(options: PgConnectOptions) -> Self {
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let shared = Arc::downgrade(&waiters);
        tokio::spawn(async move {
            let pool = sqlx::pool::PoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            loop {
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(READ_MODEL_CHANGED_CHANNEL).await?;
                    loop {
                        let notification = listener.try_recv().await?;
                        // The adapter is gone: stop listening.
                        let Some(waiters) = shared.upgrade() else {
                            return Ok::<(), sqlx::Error>(());
                        };
                        let mut waiters = waiters.lock().expect("waiters lock");
                        match notification {
                            Some(n) => {
                                waiters.changed(n.payload().split(',').filter_map(parse_change))
                            }
                            None => waiters.all_changed(),
                        }
                    }
                };
                match listener.await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "read-model listener failed; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                if shared.strong_count() == 0 {
                    return;
                }
            }
        });
        Self { waiters }
    }
}

/// `<id>:<version>`, or a bare `<id>` (any version); anything else is ignored (its waiters
/// fall back on their periodic re-reads).
fn parse_change(change: &str) -> Option<(DeviceId, u64)> {
    let (id, version) = match change.split_once(':') {
        Some((id, version)) => (id, version.parse().ok()?),
        None => (change, app::ANY_VERSION),
    };
    Some((
        DeviceId::from_uuid(uuid::Uuid::parse_str(id).ok()?),
        version,
    ))
}

impl ReadModelChanges for PgReadModelChanges {
    fn watch(&self, id: DeviceId) -> watch::Receiver<u64> {
        self.waiters.lock().expect("waiters lock").watch(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_its_version_or_any() {
        let id = uuid::Uuid::from_u128(7);
        assert_eq!(
            parse_change(&format!("{id}:12")),
            Some((DeviceId::from_uuid(id), 12))
        );
        assert_eq!(
            parse_change(&id.to_string()),
            Some((DeviceId::from_uuid(id), app::ANY_VERSION))
        );
        assert_eq!(parse_change(&format!("{id}:x")), None);
        assert_eq!(parse_change("nonsense"), None);
    }

    #[test]
    fn only_waiters_of_a_changed_device_are_woken_and_abandoned_entries_go() {
        let mut waiters = Waiters::default();
        let (a, b) = (
            DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
            DeviceId::from_uuid(uuid::Uuid::from_u128(2)),
        );
        let mut on_a = waiters.watch(a);
        let mut on_b = waiters.watch(b);
        waiters.changed([(a, 2)].into_iter());
        assert!(on_a.has_changed().unwrap());
        assert_eq!(*on_a.borrow_and_update(), 2, "the version a reached");
        assert!(!on_b.has_changed().unwrap());
        drop(on_b);
        waiters.changed([(b, 1)].into_iter());
        assert!(
            !waiters.by_device.contains_key(&b),
            "nobody waits for b any more"
        );
        waiters.all_changed();
        assert!(on_a.has_changed().unwrap());
        assert_eq!(*on_a.borrow(), app::ANY_VERSION);
        on_b = waiters.watch(b);
        assert!(!on_b.has_changed().unwrap());
    }
}
