//! Port: reading the event store back, in commit order or per device, for the analysts'
//! feed and a device's history.

use async_trait::async_trait;
use domain::{DeviceId, TenantId};

use crate::{CommitPosition, RecordedEvent, StoreError};

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// The tenant's committed events after `after`, in commit order, at most `limit`,
    /// optionally only those of one event type. Never skips an event that commits late.
    async fn tenant_events_after(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

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
