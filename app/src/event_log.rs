//! Port: reading the event store back, in commit order or per device, for the analysts'
//! feed and a device's history.

use async_trait::async_trait;
use domain::{DeviceId, TenantId};

use crate::{CommitPosition, RecordedEvent, StoreError};

/// A read of a tenant's events in commit order, and where the next read starts.
#[derive(Debug, Clone)]
pub struct TenantEvents {
    pub events: Vec<RecordedEvent>,
    /// Past every event the read considered: the last one returned when the read returned
    /// as many as it could, else the tenant's last committed event after the read's cursor,
    /// of any type (with a type filter, the events of other types are passed over once, not
    /// by every later read); the read's own cursor when the tenant has nothing after it.
    pub next: CommitPosition,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// The tenant's committed events after `after`, in commit order, at most `limit`,
    /// optionally only those of one event type. Never skips an event that commits late.
    /// Costs what it returns: the events of other types are not examined one by one.
    async fn tenant_events_after(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
    ) -> Result<TenantEvents, StoreError>;

    /// The device's events, oldest first (empty when the device does not exist).
    async fn device_history(&self, id: DeviceId) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The device's events with a sequence above `after`, oldest first, at most `limit` (a
    /// page of its history).
    async fn device_events_after(
        &self,
        id: DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
}

/// Port: a signal that a tenant's events were appended, for the feed's waiting readers. A
/// value sent is only a hint to read the feed again (it may still show nothing new, while an
/// older transaction holds the commit-order horizon back); missed signals only cost latency,
/// as waiters also re-read on a timer.
pub trait AppendedEvents: Send + Sync + 'static {
    fn watch(&self, tenant: &TenantId) -> tokio::sync::watch::Receiver<u64>;
}

/// No signal at all: waiters re-read on their timer only.
pub struct NoAppendSignal;

impl AppendedEvents for NoAppendSignal {
    fn watch(&self, _tenant: &TenantId) -> tokio::sync::watch::Receiver<u64> {
        tokio::sync::watch::channel(0).1
    }
}
