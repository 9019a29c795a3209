//! Port: the event store as the command path needs it, storage only. It loads a device's
//! events and appends new ones; it never decides anything (the application services call
//! `Device::decide` and `apply`).
//!
//! An append is optimistic: it names the version its events were decided on, and fails
//! with nothing written if the device has moved since. It may carry an idempotency claim,
//! recorded atomically with its events, so that a command and its key commit together or
//! not at all.
//!
//! Appends come in batches, each with its own outcome: a conflict, a taken key or a value
//! the store cannot hold fails only its own append. The Postgres adapter goes further and commits together whatever appends
//! arrive together from any callers (group commit), so a caller appending one at a time still
//! shares its transaction under load.

use async_trait::async_trait;
use domain::{Device, DeviceEvent, DeviceId};

use crate::{CommandMetadata, IdempotencyClaim};

/// A device as the store holds it: the state after its first `version` events.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDevice {
    pub device: Device,
    /// The sequence of the last event folded into `device`; 0 for a device without events.
    /// An append decided on this state expects this version.
    pub version: u64,
}

impl LoadedDevice {
    /// A device with no events, as a command that creates one may assume without reading:
    /// if the device does exist, the append at version 0 conflicts.
    pub fn without_events() -> Self {
        Self {
            device: Device::default(),
            version: 0,
        }
    }
}

/// One command's events, to be appended after `expected_version`.
#[derive(Debug, Clone, Copy)]
pub struct DeviceAppend<'a> {
    pub device_id: DeviceId,
    /// The version the events were decided on: the first event becomes `expected_version + 1`.
    pub expected_version: u64,
    /// Not empty in practice: a decision that produced no events has nothing to append. (An
    /// append without events writes nothing, its claim included, and is answered `Appended`
    /// at `expected_version`.)
    pub events: &'a [DeviceEvent],
    /// Stored with every event (who asked, under which request, the trace to continue).
    pub metadata: &'a CommandMetadata,
    /// The public command's idempotency key and request fingerprint, recorded in the same
    /// transaction as the events, with the version they bring the device to.
    pub claim: Option<&'a IdempotencyClaim>,
}

/// What became of one append. Every outcome but `Appended` wrote nothing of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events committed; the device is now at `version`.
    Appended { version: u64 },
    /// Another writer appended to the device after `expected_version`.
    VersionConflict,
    /// Another command already recorded the claim's key (tenant, route, key).
    KeyAlreadyClaimed,
    /// The store cannot hold a value of this append (e.g. a character Postgres refuses): the
    /// command's input, which its validation should have refused, not an outage. Trying
    /// again cannot help.
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store holds (or answered) something this code cannot interpret.
    #[error("the store holds data that cannot be read")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An adapter answered a batch with another number of outcomes than it was given appends:
/// a bug in the adapter, reported as [`StoreError::Corrupt`].
#[derive(Debug, thiserror::Error)]
#[error("the event store answered {answered} outcomes for {appended} appends")]
pub struct OutcomeCountMismatch {
    pub appended: usize,
    pub answered: usize,
}

#[async_trait]
pub trait DeviceEventStore: Send + Sync + 'static {
    /// The device as it is now (no events: `LoadedDevice::without_events`).
    async fn load(&self, id: DeviceId) -> Result<LoadedDevice, StoreError>;

    /// The device as it was right after `version` (or now, if it has not got that far).
    /// Used to answer a replayed request with exactly what the original request was answered.
    async fn load_at(&self, id: DeviceId, version: u64) -> Result<LoadedDevice, StoreError>;

    /// Appends each of `appends` atomically with its claim, with optimistic concurrency on
    /// (device, version); returns one outcome per append, in order. One append's conflict
    /// or refused value does not fail the others.
    ///
    /// `Err(_)`: the store failed; an append may or may not have committed (as with any
    /// answer lost on the way), which the idempotency records and the internal commands'
    /// idempotence make safe to retry.
    async fn append(&self, appends: &[DeviceAppend<'_>]) -> Result<Vec<AppendOutcome>, StoreError>;
}
