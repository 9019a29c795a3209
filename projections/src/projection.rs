//! What a read model is to the runner: the tables it owns, a device's state in them, and how
//! an event moves that state. A projection knows nothing of transactions, checkpoints, gaps,
//! redeliveries or which copy of its tables it writes: the runner (`runner.rs`) does that
//! for every projection alike, live, in a backfill, a rebuild, verify and a replay.

use std::collections::HashMap;

use app::EventEnvelope;
use async_trait::async_trait;
use domain::DeviceId;
use sqlx::PgConnection;

use crate::table_copies::TableSet;
use crate::ProjectionError;

/// One of a read model's live tables. Each has a primary key; its copies
/// (`table_copies.rs`) get the same columns and key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub name: &'static str,
    pub rows: Rows,
}

/// What a table's rows are, which says how verify compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// One row per device, keyed `id`, with the device's `version`.
    PerDevice,
    /// Rows about several devices (counts), keyed by their primary key.
    Aggregate,
}

/// A device whose state moved: from what was stored (`None`: nothing) to `after`.
#[derive(Debug, Clone)]
pub(crate) struct Change<S> {
    pub device: DeviceId,
    pub before: Option<S>,
    pub after: S,
}

/// Which stored states a write may replace, by their version against the written one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overwrite {
    /// Only older ones: a concurrent writer that got further is never undone.
    Older,
    /// Older or the same: a replay repairs a state that is wrong at its version, and still
    /// never moves one back.
    OlderOrSame,
}

/// A read model: its tables and the fold of a device's events into its state there.
///
/// The state at version N is a function of the device's events 1..=N only; that is what
/// lets every writer (concurrent live projectors, a gap fill, a rebuild, a replay) write it
/// with a "newer version wins" check.
#[async_trait]
pub(crate) trait Projection: Send + Sync + 'static {
    /// A device's state in this read model.
    type State: Clone + PartialEq + Send + Sync + 'static;

    /// Its checkpoint, backfill and rebuild rows, metrics, and the worker's consumer
    /// `projector-<name>`.
    fn name(&self) -> &'static str;

    /// Its live tables.
    fn tables(&self) -> &'static [Table];

    fn version(state: &Self::State) -> u64;

    /// The state after `event`, given the state at the version just before it (`None`
    /// before the first event).
    fn follow(
        &self,
        current: Option<Self::State>,
        event: &EventEnvelope,
    ) -> Result<Self::State, ProjectionError>;

    /// The stored states of `devices` in `tables` (absent: none stored).
    async fn load(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        devices: &[DeviceId],
    ) -> Result<HashMap<DeviceId, Self::State>, ProjectionError>;

    /// Writes `changes` (in device id order, so that concurrent writers lock rows in the
    /// same order and cannot deadlock) to `tables`, replacing only what `overwrite` allows.
    async fn write(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        changes: &[Change<Self::State>],
        overwrite: Overwrite,
    ) -> Result<(), ProjectionError>;

    /// Runs first in every transaction that writes the live tables: a projection whose
    /// writes cannot run side by side serialises them here.
    async fn serialise_live_writes(&self, _conn: &mut PgConnection) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// The channel notified, after a live batch that moved some devices, with their ids
    /// (comma-separated), for readers waiting for them; `None`: nobody waits.
    fn changes_channel(&self) -> Option<&'static str> {
        None
    }
}
