//! What makes an aggregate one the event store can hold: a cqrs-es `Aggregate` (its type name,
//! `Aggregate::TYPE`, is the `aggregate_type` its events are stored under; its events, folded
//! with `apply`, are its state) and the type of its id. `Device` is the first; a tenant's
//! certificate authorities (`TenantCas`) the second.
//!
//! Every aggregate shares the one event store: the `events` table, keyed by (aggregate type,
//! aggregate id, sequence), idempotency records, group commit and the commit order. How its
//! events are stored (their stored forms, versions and upcasters) is the store adapter's
//! business, not this crate's.
//!
//! What an aggregate that is not a device gets of the rest, decided once for all of them:
//! the analysts' feed (`EventLog`), the relay to NATS and the read models see device events
//! only (their readers select `aggregate_type = 'device'`), because the public envelope
//! (`EventEnvelope`, version 1) describes a device's event. Another aggregate's events reach
//! analysts and consumers only once the envelope has a version for them (ARCHITECTURE.md,
//! "Aggregates other than devices").

use std::fmt;

use cqrs_es::Aggregate;
use domain::{Device, DeviceId, TenantCas, TenantCasId};

/// An aggregate the event store can hold (see the module documentation).
pub trait EventSourced: Aggregate + 'static {
    /// How one of these aggregates is named in the store (its `Display` is the stored
    /// `aggregate_id`, which `FromStr` reads back).
    type Id: Copy + Eq + fmt::Display + fmt::Debug + std::str::FromStr + Send + Sync + 'static;
}

impl EventSourced for Device {
    type Id = DeviceId;
}

impl EventSourced for TenantCas {
    type Id = TenantCasId;
}
