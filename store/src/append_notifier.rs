//! Tells the relay, and the api's feed waiters, that events were appended, without slowing
//! the append down.
//!
//! Why not a trigger that runs `NOTIFY` in the appending transaction: at commit, Postgres
//! serialises every transaction that has notified (a cluster-wide lock held through the commit
//! record's flush), which defeats group commit and caps appends at one fsync each. Instead,
//! after an append commits, the store tells this notifier the appends' tenants; a background
//! task sends one `pg_notify` in its own tiny transaction for however many appends happened
//! meanwhile, naming their tenants ([`AppendedTenants`]), so that a feed waiter of one tenant
//! is not woken by another's appends. A lost notification (crash, full channel) costs only
//! latency: the relay and the waiters also poll.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::relay_lease::EVENTS_APPENDED_CHANNEL;

/// The least time between two notifications.
const NOTIFICATION_INTERVAL: Duration = Duration::from_millis(5);

/// A notification payload stays well under Postgres's 8000 bytes: past this many tenants
/// it names none, which means "any tenant".
const MAX_NAMED_TENANTS: usize = 100;

#[derive(Clone)]
pub struct AppendNotifier {
    poke: mpsc::Sender<()>,
    tenants: Arc<Mutex<BTreeSet<String>>>,
}

impl AppendNotifier {
    /// Starts the notifying task on the current runtime; it ends when the last handle is
    /// dropped.
    pub fn spawn(pool: PgPool) -> Self {
        let (poke, mut poked) = mpsc::channel::<()>(1);
        let tenants = Arc::new(Mutex::new(BTreeSet::new()));
        let pending = tenants.clone();
        tokio::spawn(async move {
            while poked.recv().await.is_some() {
                let named = std::mem::take(&mut *pending.lock().expect("tenants lock"));
                let payload = AppendedTenants::payload(&named);
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(EVENTS_APPENDED_CHANNEL)
                    .bind(payload)
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "could not notify of appends; readers will poll");
                }
                // Let appends accumulate, so that a busy store sends at most one notification
                // per relay round (`nats::RelaySettings::round_interval`), each a transaction
                // that takes Postgres's notification lock at commit.
                tokio::time::sleep(NOTIFICATION_INTERVAL).await;
            }
        });
        Self { poke, tenants }
    }

    /// Never waits: if a notification is already due, these appends ride along with it.
    /// Nothing is sent when `tenants` is empty (nothing was appended).
    pub fn appended<'a>(&self, tenants: impl Iterator<Item = &'a str>) {
        let mut any = false;
        {
            let mut pending = self.tenants.lock().expect("tenants lock");
            for tenant in tenants {
                any = true;
                if pending.len() <= MAX_NAMED_TENANTS && !pending.contains(tenant) {
                    pending.insert(tenant.to_owned());
                }
            }
        }
        if any {
            let _ = self.poke.try_send(());
        }
    }
}

/// Which tenants an append notification names: a comma-separated list (a tenant id holds no
/// comma), or an empty payload for "any tenant" (too many to name, or an older notifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendedTenants {
    Any,
    Named(Vec<String>),
}

impl AppendedTenants {
    fn payload(tenants: &BTreeSet<String>) -> String {
        if tenants.len() > MAX_NAMED_TENANTS {
            return String::new();
        }
        tenants
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn parse(payload: &str) -> Self {
        if payload.is_empty() {
            return Self::Any;
        }
        Self::Named(payload.split(',').map(str::to_owned).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_tenants_or_any_when_there_are_too_many() {
        let few: BTreeSet<String> = ["acme", "globex"].map(String::from).into();
        let payload = AppendedTenants::payload(&few);
        assert_eq!(
            AppendedTenants::parse(&payload),
            AppendedTenants::Named(vec!["acme".into(), "globex".into()])
        );
        let many: BTreeSet<String> = (0..=MAX_NAMED_TENANTS).map(|i| format!("t{i}")).collect();
        assert_eq!(
            AppendedTenants::parse(&AppendedTenants::payload(&many)),
            AppendedTenants::Any
        );
        assert_eq!(AppendedTenants::parse(""), AppendedTenants::Any);
    }
}
