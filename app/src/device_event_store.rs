//! Port: the event store as the command service needs it.

use async_trait::async_trait;
use domain::{Device, DeviceCommand, DeviceError, DeviceId, DeviceStatus};

use crate::CommandMetadata;

/// What an accepted command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The device's version after the command (= the sequence of its last event).
    pub version: u64,
    pub status: DeviceStatus,
    /// 0 when the command was accepted but had nothing left to do.
    pub events_appended: usize,
}

/// What the store should assume about the device's history before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Read the device's events, then decide.
    Load,
    /// Decide on a device with no events, without reading: saves a round trip for commands
    /// that create a device. If the device does exist, the append at sequence 1 fails with
    /// [`StoreError::Conflict`] and the caller must retry with `Load`.
    AssumeNone,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the device (or used the idempotency key) between our read
    /// and our append; nothing was written. Safe to retry from the read.
    #[error("optimistic concurrency conflict")]
    Conflict,
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the store holds data that cannot be read")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait DeviceEventStore: Send + Sync + 'static {
    /// Loads the device, lets it decide on `command`, and appends the resulting events with
    /// `metadata`, atomically and with optimistic concurrency on (device id, sequence).
    ///
    /// `Ok(Err(_))` is a domain rejection (nothing was written); `Err(_)` is a store failure.
    async fn execute(
        &self,
        id: DeviceId,
        command: DeviceCommand,
        metadata: &CommandMetadata,
        history: History,
    ) -> Result<Result<Applied, DeviceError>, StoreError>;

    /// The device as it was right after `version` (`u64::MAX`: as it is now). Used to answer
    /// a replayed request with exactly what the original request was answered, and by the
    /// provisioner to see whether a certificate request is still open.
    async fn device_at(&self, id: DeviceId, version: u64) -> Result<Device, StoreError>;
}
