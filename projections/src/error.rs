//! What can go wrong folding events into a read model, for every projection and every
//! operation on one (live batches, backfill, rebuild, verify, replay).

use app::StoreError;
use domain::DeviceId;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event store or the read model's tables: see [`Self::is_transient`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event cannot follow what the store holds: a poison message, or a bug.
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("event {sequence} of device {device} arrived but events before it are missing from the event store")]
    UnfillableGap { device: DeviceId, sequence: u64 },
}

impl ProjectionError {
    /// The database did not answer: try again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unavailable(_)))
    }
}

/// Why an event cannot follow a device's state in a read model: the event store or the
/// stream handed us something out of order, which the runner treats as a gap to fill, never
/// as data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("event {sequence} of device {device} does not follow version {version}")]
    OutOfOrder {
        device: String,
        sequence: u64,
        version: u64,
    },
    #[error("device {device}: the first event is {event_type}, not DeviceRegistered")]
    NotRegistered { device: String, event_type: String },
}

/// A database error of a read-model statement: the database did not answer as asked.
pub(crate) fn unavailable(err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(err.into())
}
