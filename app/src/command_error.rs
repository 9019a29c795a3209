//! Why a command was not accepted, as the application layer sees it.

use domain::{DeviceError, DeviceId};

/// Domain rejections (`Rejected`) and infrastructure failures (`Unavailable`) are different
/// variants on purpose: the first is the client's to fix (4xx), the second is ours (503),
/// and a 409 must never be mistaken for an outage or the other way round.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The device refused the command; `device_id` names it (for a registration, the device
    /// already registered under that serial number).
    #[error("device {device_id}: {rejection}")]
    Rejected {
        device_id: DeviceId,
        rejection: DeviceError,
    },
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// Every attempt lost an optimistic-concurrency race on the same device.
    #[error("the device was modified concurrently too many times; retry the request")]
    ConcurrencyConflict,
    /// The event store refused a value the command carries (e.g. a character Postgres cannot
    /// hold): the input's fault, although it passed validation; nothing was written, and
    /// sending it again cannot succeed. Never an outage, and never its batch-mates' failure.
    #[error("the event store cannot hold a value of this command")]
    Unstorable,
    #[error("a dependency is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store holds something this code cannot read: a bug or a corrupt store, never the
    /// client's fault.
    #[error("the event store returned data that cannot be interpreted")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}
