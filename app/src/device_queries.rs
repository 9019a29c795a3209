//! The query use cases: a device as the read model has it (with bounded long-polling until a
//! version), the tenant's device list, a device's history (both keyset-paged) and the
//! analysts' feed.
//!
//! Long-polls are bounded twice: in time (the caller's wait) and in number ([`LongPollSlots`]:
//! so many waiting per tenant and in all, since each re-reads its device every second).
//!
//! Tenant isolation is enforced here for every query: another tenant's device is reported
//! exactly like a missing one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    DeviceId, DeviceModel, DeviceStatus, Labels, ProvisioningFailure, SerialNumber, TenantId,
};
use tokio::sync::watch;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::{
    AppendedEvents, CertificateView, CommitPosition, EventEnvelope, EventLog, InvalidCursor,
    LongPollLimitReached, LongPollLimits, LongPollSlot, LongPollSlots, NoAppendSignal,
    RecordedEvent, StoreError, TenantEvents,
};

/// A device as the read model holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub id: DeviceId,
    pub tenant: TenantId,
    pub serial_number: SerialNumber,
    pub model: DeviceModel,
    pub labels: Labels,
    pub status: DeviceStatus,
    pub certificate: Option<CertificateView>,
    pub failure: Option<ProvisioningFailure>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which devices a list shows. All conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub status: Option<DeviceStatus>,
    pub model: Option<DeviceModel>,
    /// Every (key, value) pair must be among the device's labels.
    pub labels: Vec<(String, String)>,
    /// Only devices whose certificate is not revoked and ends (`not_after`) before this time,
    /// expired ones included: the renewals coming up.
    pub expiring_before: Option<DateTime<Utc>>,
}

/// Where a device list continues: after the device created at `created_at` with `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: DeviceId,
}

impl ListCursor {
    /// Opaque to clients: base64url of the creation time (µs) and the id.
    pub fn to_cursor(self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.as_uuid().as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn from_cursor(cursor: &str) -> Result<Self, InvalidCursor> {
        if cursor.len() != 32 {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
        let (micros, id) = bytes.split_at(8);
        let micros = i64::from_be_bytes(micros.try_into().map_err(|_| InvalidCursor)?);
        Ok(Self {
            created_at: DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?,
            id: DeviceId::from_uuid(uuid::Uuid::from_slice(id).map_err(|_| InvalidCursor)?),
        })
    }
}

/// Where a device's history continues: after the event with `sequence`. Tied to the device,
/// so that a cursor of one device's history is refused for another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    device_id: DeviceId,
    sequence: u64,
}

impl HistoryCursor {
    /// After the event with `sequence` (≥ 1) of `device_id`.
    pub fn after(device_id: DeviceId, sequence: u64) -> Self {
        Self {
            device_id,
            sequence,
        }
    }

    pub fn sequence(self) -> u64 {
        self.sequence
    }

    /// Opaque to clients: base64url of the device id and the sequence.
    pub fn to_cursor(self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(self.device_id.as_uuid().as_bytes());
        bytes.extend_from_slice(&self.sequence.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor this service returned for `device_id`'s history; anything else is refused.
    pub fn from_cursor(cursor: &str, device_id: DeviceId) -> Result<Self, InvalidCursor> {
        if cursor.len() != 32 {
            return Err(InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
        let (id, sequence) = bytes.split_at(16);
        let id = uuid::Uuid::from_slice(id).map_err(|_| InvalidCursor)?;
        let sequence = u64::from_be_bytes(sequence.try_into().map_err(|_| InvalidCursor)?);
        if id != device_id.as_uuid() || sequence == 0 || sequence > i64::MAX as u64 {
            return Err(InvalidCursor);
        }
        Ok(Self::after(device_id, sequence))
    }
}

/// A page of a device's history.
pub struct HistoryPage {
    pub events: Vec<EventEnvelope>,
    /// Present when there may be more events after this page.
    pub next: Option<HistoryCursor>,
}

pub struct DevicePage {
    pub devices: Vec<DeviceView>,
    /// Present when there may be more devices after this page.
    pub next: Option<ListCursor>,
}

/// Port: the device read model.
#[async_trait]
pub trait DeviceReadModel: Send + Sync + 'static {
    async fn device(&self, id: DeviceId) -> Result<Option<DeviceView>, StoreError>;

    /// The tenant's devices matching `filter`, ordered by (created_at, id), after `after`,
    /// at most `limit`.
    async fn devices(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        after: Option<ListCursor>,
        limit: usize,
    ) -> Result<Vec<DeviceView>, StoreError>;

    /// Over all tenants: how many certificates that are not revoked end before each of
    /// `horizons` (expired ones included), in the same order. Not per tenant on purpose: the
    /// counts are metrics, whose labels must stay few.
    async fn certificates_expiring(
        &self,
        horizons: &[DateTime<Utc>],
    ) -> Result<Vec<u64>, StoreError>;
}

/// Port: a signal that one device's row in the read model changed. Each value sent is the
/// version the row reached ([`ANY_VERSION`] when that is not known); a waiter re-reads only
/// once a value reaches the version it waits for. Only waiters for the devices that changed
/// are woken. Missed signals only cost latency: waiters also re-read on a timer.
pub trait ReadModelChanges: Send + Sync + 'static {
    fn watch(&self, id: DeviceId) -> watch::Receiver<u64>;
}

/// A change signal whose version is not known (e.g. after the signals were interrupted):
/// every waiter re-reads.
pub const ANY_VERSION: u64 = u64::MAX;

/// A feed page.
pub struct EventPage {
    pub events: Vec<EventEnvelope>,
    /// Where the next page starts: past the events the read considered (with a type filter,
    /// those of other types too); equal to the request's cursor when nothing new committed.
    pub next: CommitPosition,
}

/// Why one device could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeviceReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read would have to wait, and a bound on waiting long-polls is reached.
    #[error(transparent)]
    TooManyWaiting(#[from] LongPollLimitReached),
}

pub struct DeviceQueryService {
    read_model: Arc<dyn DeviceReadModel>,
    changes: Arc<dyn ReadModelChanges>,
    events: Arc<dyn EventLog>,
    appended: Arc<dyn AppendedEvents>,
    recheck: Duration,
    long_polls: LongPollSlots,
}

impl DeviceQueryService {
    pub fn new(
        read_model: Arc<dyn DeviceReadModel>,
        changes: Arc<dyn ReadModelChanges>,
        events: Arc<dyn EventLog>,
    ) -> Self {
        Self {
            read_model,
            changes,
            events,
            appended: Arc::new(NoAppendSignal),
            recheck: Duration::from_secs(1),
            long_polls: LongPollSlots::new(LongPollLimits::default()),
        }
    }

    /// Wakes the feed's waiting readers when their tenant's events are appended (without it
    /// they re-read every second).
    pub fn with_append_signal(mut self, appended: Arc<dyn AppendedEvents>) -> Self {
        self.appended = appended;
        self
    }

    /// Other bounds on waiting long-polls than [`LongPollLimits::default`].
    pub fn with_long_poll_limits(mut self, limits: LongPollLimits) -> Self {
        self.long_polls = LongPollSlots::new(limits);
        self
    }

    /// The tenant's device, `None` if it does not exist (or belongs to another tenant).
    /// With `wait = Some((min_version, max_wait))`, waits up to `max_wait` for the read
    /// model to reach `min_version` (or for the device to appear), then answers with what
    /// it has. A read that has to wait needs a long-poll slot: without one it is refused at
    /// once (`TooManyWaiting`); one that need not wait is always answered.
    pub async fn device(
        &self,
        tenant: &TenantId,
        id: DeviceId,
        wait: Option<(u64, Duration)>,
    ) -> Result<Option<DeviceView>, DeviceReadError> {
        let Some((min_version, max_wait)) = wait else {
            return Ok(self.visible_device(tenant, id).await?);
        };
        let deadline = tokio::time::Instant::now() + max_wait;
        // Subscribe before reading, so that a change between the read and the wait wakes us.
        let mut changes = self.changes.watch(id);
        let mut signal_lost = false;
        // Taken before the first wait, given back when this returns (or is cancelled).
        let mut slot = None;
        let mut behind = RereadSoon::default();
        loop {
            let device = self.visible_device(tenant, id).await?;
            let reached = device.as_ref().is_some_and(|d| d.version >= min_version);
            if reached || tokio::time::Instant::now() >= deadline {
                return Ok(device);
            }
            if slot.is_none() {
                slot = Some(self.long_polls.try_take(tenant)?);
            }
            let recheck = tokio::time::Instant::now() + behind.next_wait(self.recheck);
            let timer = tokio::time::sleep_until(recheck.min(deadline));
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    // A closed channel would return at once, forever: fall back on the timer.
                    changed = changes.changed(), if !signal_lost => {
                        signal_lost = changed.is_err();
                        // A change short of the wanted version (the registration, when the
                        // certificate is awaited) is not worth a read.
                        if signal_lost || *changes.borrow_and_update() >= min_version {
                            behind.signalled();
                            break;
                        }
                    }
                    () = &mut timer => break,
                }
            }
        }
    }

    async fn visible_device(
        &self,
        tenant: &TenantId,
        id: DeviceId,
    ) -> Result<Option<DeviceView>, StoreError> {
        Ok(self
            .read_model
            .device(id)
            .await?
            .filter(|d| d.tenant == *tenant))
    }

    pub async fn devices(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        after: Option<ListCursor>,
        limit: usize,
    ) -> Result<DevicePage, StoreError> {
        // One more than asked tells whether another page exists.
        let mut devices = self
            .read_model
            .devices(tenant, filter, after, limit + 1)
            .await?;
        let next = if devices.len() > limit {
            devices.truncate(limit);
            devices.last().map(|d| ListCursor {
                created_at: d.created_at,
                id: d.id,
            })
        } else {
            None
        };
        Ok(DevicePage { devices, next })
    }

    /// The device's events after `after` (from the first when `None`), oldest first, at
    /// most `limit`; `None` if the device does not exist for this tenant.
    pub async fn history(
        &self,
        tenant: &TenantId,
        id: DeviceId,
        after: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<Option<HistoryPage>, StoreError> {
        let after_sequence = after.map_or(0, HistoryCursor::sequence);
        // One more than asked tells whether another page exists.
        let mut events = self
            .events
            .device_events_after(id, after_sequence, limit + 1)
            .await?;
        // All of a device's events belong to its tenant: the first one found tells. A page
        // past the end has none, so then the device's first event does.
        let owner = match events.first() {
            Some(first) => Some(first.tenant.clone()),
            None if after_sequence > 0 => self
                .events
                .device_events_after(id, 0, 1)
                .await?
                .pop()
                .map(|first| first.tenant),
            None => None,
        };
        if owner.as_ref() != Some(tenant) {
            return Ok(None);
        }
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| HistoryCursor::after(id, e.sequence))
        } else {
            None
        };
        Ok(Some(HistoryPage {
            events: events
                .into_iter()
                .map(RecordedEvent::into_envelope)
                .collect(),
            next,
        }))
    }

    /// The tenant's events after `after` in commit order. With a type filter the page may be
    /// empty while its cursor moves: past the events of other types it passed over.
    pub async fn feed(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
    ) -> Result<EventPage, StoreError> {
        let TenantEvents { events, next } = self
            .events
            .tenant_events_after(tenant, after, limit, event_type)
            .await?;
        Ok(EventPage {
            events: events
                .into_iter()
                .map(RecordedEvent::into_envelope)
                .collect(),
            next,
        })
    }

    /// [`Self::feed`], waiting up to `max_wait` for events when there are none yet: a
    /// long-poll, which needs a slot (refused at once without one, like a device's).
    pub async fn feed_waiting(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
        max_wait: Duration,
    ) -> Result<EventPage, DeviceReadError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let page = self.feed(tenant, after, limit, event_type).await?;
        if !page.events.is_empty() || max_wait.is_zero() {
            return Ok(page);
        }
        let _slot = self.long_polls.try_take(tenant)?;
        // From where the first read got to: what it passed over is not read again.
        Ok(self
            .next_events(tenant, page.next, limit, event_type, deadline)
            .await?)
    }

    /// A slot for a live tail of the feed (`text/event-stream`), held for as long as the
    /// tail lives: tails count as waiting long-polls.
    pub fn open_tail(&self, tenant: &TenantId) -> Result<LongPollSlot, LongPollLimitReached> {
        self.long_polls.try_take(tenant)
    }

    /// The tenant's next events after `after`, waiting until `deadline` for some: woken when
    /// the tenant's events are appended, else re-reading every second. An empty page at the
    /// deadline (its cursor past whatever the reads passed over). Each read starts where the
    /// previous one got to, so a filtered waiter woken by appends of other types reads each
    /// of them once, not the tenant's history again. The caller holds a long-poll slot.
    pub async fn next_events(
        &self,
        tenant: &TenantId,
        after: CommitPosition,
        limit: usize,
        event_type: Option<&'static str>,
        deadline: tokio::time::Instant,
    ) -> Result<EventPage, StoreError> {
        // Subscribe before reading, so that an append between the read and the wait wakes us.
        let mut appended = self.appended.watch(tenant);
        let mut signal_lost = false;
        let mut behind = RereadSoon::default();
        let mut after = after;
        loop {
            let page = self.feed(tenant, after, limit, event_type).await?;
            if !page.events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(page);
            }
            after = page.next;
            let recheck = tokio::time::Instant::now() + behind.next_wait(self.recheck);
            tokio::select! {
                // A closed channel would return at once, forever: fall back on the timer.
                changed = appended.changed(), if !signal_lost => {
                    signal_lost = changed.is_err();
                    behind.signalled();
                }
                () = tokio::time::sleep_until(recheck.min(deadline)) => {}
            }
        }
    }
}

/// After a signal said there is something new but the read did not show it yet (a read
/// replica behind the primary, whose notifications are not replicated; or the commit-order
/// horizon held back by an older transaction), re-read soon, then less and less often, then
/// back to the waiter's usual recheck: the answer comes within milliseconds of the data
/// reaching the replica, at a cost of a few reads per signal.
#[derive(Default)]
struct RereadSoon {
    next: Option<Duration>,
}

impl RereadSoon {
    const FIRST: Duration = Duration::from_millis(5);
    const LAST: Duration = Duration::from_millis(320);

    fn signalled(&mut self) {
        self.next = Some(Self::FIRST);
    }

    /// How long to wait before the next read: the next step after a signal, else `recheck`.
    fn next_wait(&mut self, recheck: Duration) -> Duration {
        match self.next {
            Some(wait) => {
                self.next = Some(wait * 2).filter(|next| *next <= Self::LAST);
                wait.min(recheck)
            }
            None => recheck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_signal_reads_come_soon_then_back_to_the_recheck() {
        let recheck = Duration::from_secs(1);
        let mut behind = RereadSoon::default();
        assert_eq!(behind.next_wait(recheck), recheck);
        behind.signalled();
        let waits: Vec<u64> = (0..8)
            .map(|_| behind.next_wait(recheck).as_millis() as u64)
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 1000]);
    }

    #[test]
    fn list_cursors_round_trip_and_refuse_anything_else() {
        let cursor = ListCursor {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: DeviceId::from_uuid(uuid::Uuid::new_v4()),
        };
        assert_eq!(ListCursor::from_cursor(&cursor.to_cursor()), Ok(cursor));
        assert!(ListCursor::from_cursor("").is_err());
        assert!(ListCursor::from_cursor(&"!".repeat(32)).is_err());
    }

    #[test]
    fn history_cursors_round_trip_for_their_device_only() {
        let device = DeviceId::from_uuid(uuid::Uuid::new_v4());
        let other = DeviceId::from_uuid(uuid::Uuid::new_v4());
        let cursor = HistoryCursor::after(device, 7);
        assert_eq!(
            HistoryCursor::from_cursor(&cursor.to_cursor(), device),
            Ok(cursor)
        );
        assert!(HistoryCursor::from_cursor(&cursor.to_cursor(), other).is_err());
        for sequence in [0, u64::MAX] {
            let forged = HistoryCursor::after(device, sequence).to_cursor();
            assert!(HistoryCursor::from_cursor(&forged, device).is_err());
        }
        assert!(HistoryCursor::from_cursor("", device).is_err());
        assert!(HistoryCursor::from_cursor(&"!".repeat(32), device).is_err());
    }
}
