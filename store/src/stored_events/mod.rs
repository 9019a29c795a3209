//! The stored events' schema: how each aggregate's events are written into `events` and read
//! back, in forms of the store's own, so that what is stored is a commitment this module
//! keeps, not whatever the domain's types serialise to today.
//!
//! **Stored events are facts: decoded by this schema and its upcasters, never by today's
//! validation.** An event is stored as a *stored form*: a plain struct of strings, numbers
//! and times, one per (event type, version), written with its type in `events.event_type`
//! and its version in `events.event_version`. Reading keys on both: a row is decoded into the
//! form of its version, upcast form by form to the newest (an upcaster is a function from one
//! version's form to the next), and only then converted into the domain event, with each
//! value type's `recorded` constructor, which checks nothing (the value met the rules of its
//! day; tightening a rule must not make history unreadable).
//!
//! Changing an event: add its next form (a module with the struct and its upcaster from the
//! previous one), write that version from then on and read it (the aggregate's schema, e.g.
//! `device_schema.rs`: the one place that says which version each event type is written at
//! and how each version is read, the upcast included), have the previous form hand such rows
//! over unconverted (its arm stops being written, e.g. `#[serde(skip_serializing)]`, and
//! reads as moved on: `device_forms_v1::MovedOn`; an old form never names a newer one), and
//! add the golden fixture of the new version (`store/tests/fixtures/stored_events/`). Old
//! forms are never edited nor removed: rows of every version stay in the table forever, and
//! their fixtures must decode forever (`store/tests/stored_events.rs`).
//!
//! Every reader of `events.payload` in this crate decodes through here
//! (`postgres_event_store.rs` loading an aggregate, `recorded_event_row.rs` for the feed,
//! histories, the relay and the read models). Must not: use the domain's serde
//! (`DeviceEvent`'s `Serialize`/`Deserialize` exist because cqrs-es asks for them), decide
//! anything, or validate.

mod certificate_issued_v2;
mod certificate_requests_v2;
mod device_forms_v1;
mod device_schema;
mod tenant_cas_forms_v1;
mod tenant_cas_schema;

use std::fmt;

use app::EventSourced;

/// An aggregate whose events the store can write and read back: its stored schema.
/// Implemented here, in the store, for each aggregate (`Device` in `device_schema.rs`,
/// `TenantCas` in `tenant_cas_schema.rs`).
pub trait EventSchema: EventSourced {
    /// `event` in the form it is written in today, with its type and that form's version.
    fn encode(event: &Self::Event) -> Result<StoredEvent, serde_json::Error>;

    /// The event a stored row records, whatever the version it was written at.
    fn decode(stored: StoredEventRef<'_>) -> Result<Self::Event, UnreadableEvent>;
}

/// An event as it is written: the columns `event_type`, `event_version` and `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_type: &'static str,
    pub event_version: &'static str,
    /// JSON.
    pub payload: String,
}

/// A stored row's event columns, as read (the payload as JSON text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEventRef<'a> {
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a str,
}

/// A stored event this schema cannot read: a version it does not know, or a payload that is
/// not the form its type and version say. Corruption (or a row written by newer code), never
/// an outage.
#[derive(Debug, thiserror::Error)]
#[error("a stored {event_type} event of version {event_version:?} cannot be read: {problem}")]
pub struct UnreadableEvent {
    pub event_type: String,
    pub event_version: String,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    UnknownVersion,
    NotItsForm(serde_json::Error),
    /// A version 1 payload (the object keyed by its type) keyed by another type than the
    /// row's `event_type`, the column the feed's type filter reads.
    OfAnotherType(&'static str),
    /// A verified CSR's `sha256` that is not 32 bytes of hex.
    NotADigest,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVersion => f.write_str("no such version of this event type"),
            Self::NotItsForm(e) => write!(f, "the payload is not that version's form ({e})"),
            Self::OfAnotherType(t) => write!(f, "the payload is a {t} event"),
            Self::NotADigest => f.write_str("a verified CSR's sha256 is not 32 bytes of hex"),
        }
    }
}

impl UnreadableEvent {
    fn new(stored: StoredEventRef<'_>, problem: Problem) -> Self {
        Self {
            event_type: stored.event_type.to_owned(),
            event_version: stored.event_version.to_owned(),
            problem,
        }
    }
}
