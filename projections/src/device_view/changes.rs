//! `app::ReadModelChanges` from Postgres notifications: one listening connection per
//! process; each notification names the devices whose rows changed and the version each
//! reached, and only the requests waiting for those devices are woken (a request that
//! re-read on every change would turn a busy projector into a storm of reads); a waiter
//! re-reads only once its version is reached.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use app::{ReadModelChanges, WakeUps};
use domain::DeviceId;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

/// Notified after every live batch that changed `device_view`, with the changed devices as
/// `<id>:<version>` (comma-separated; a bare `<id>` means "changed, version unknown").
pub const READ_MODEL_CHANGED_CHANNEL: &str = "dp_read_model_changed";

/// Waiters by device, woken with the version each row reached.
type Waiters = WakeUps<DeviceId>;

pub struct PgReadModelChanges {
    waiters: Arc<Mutex<Waiters>>,
}

impl PgReadModelChanges {
    /// Starts listening in the background on the current runtime; reconnects by itself.
    /// While it cannot listen, waiters fall back on their own periodic re-reads.
    pub fn spawn(options: PgConnectOptions) -> Self {
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let shared = Arc::downgrade(&waiters);
        store::spawn_listener(options, READ_MODEL_CHANGED_CHANNEL, move |payload| {
            // The adapter is gone: stop listening.
            let Some(waiters) = shared.upgrade() else {
                return ControlFlow::Break(());
            };
            let mut waiters = waiters.lock().expect("waiters lock");
            match payload {
                Some(payload) => {
                    for (id, version) in payload.split(',').filter_map(parse_change) {
                        waiters.wake(&id, version);
                    }
                }
                None => waiters.wake_all(app::ANY_VERSION),
            }
            ControlFlow::Continue(())
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
}
