//! `app::AppendedEvents` from the append notifications (`AppendNotifier`, which names the
//! tenants appended to): one listening connection per process; only the feed readers of a
//! tenant that was appended to are woken.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use app::{AppendedEvents, WakeUps};
use domain::TenantId;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

use crate::append_notifier::AppendedTenants;
use crate::notification_listener::spawn_listener;
use crate::relay_lease::EVENTS_APPENDED_CHANNEL;

pub struct PgAppendedEvents {
    waiters: Arc<Mutex<WakeUps<TenantId>>>,
}

impl PgAppendedEvents {
    /// Starts listening in the background on the current runtime; reconnects by itself.
    pub fn spawn(options: PgConnectOptions) -> Self {
        let waiters = Arc::new(Mutex::new(WakeUps::default()));
        let shared = Arc::downgrade(&waiters);
        // Each wake-up sends a new value: a receiver sees "changed" whatever it saw before.
        let mut wake_ups: u64 = 0;
        spawn_listener(options, EVENTS_APPENDED_CHANNEL, move |payload| {
            let Some(waiters) = shared.upgrade() else {
                return ControlFlow::Break(());
            };
            let mut waiters = waiters.lock().expect("waiters lock");
            wake_ups += 1;
            match payload.map(AppendedTenants::parse) {
                Some(AppendedTenants::Named(tenants)) => {
                    for tenant in tenants {
                        if let Ok(tenant) = TenantId::parse(&tenant) {
                            waiters.wake(&tenant, wake_ups);
                        }
                    }
                }
                Some(AppendedTenants::Any) | None => waiters.wake_all(wake_ups),
            }
            ControlFlow::Continue(())
        });
        Self { waiters }
    }
}

impl AppendedEvents for PgAppendedEvents {
    fn watch(&self, tenant: &TenantId) -> watch::Receiver<u64> {
        self.waiters
            .lock()
            .expect("waiters lock")
            .watch(tenant.clone())
    }
}
