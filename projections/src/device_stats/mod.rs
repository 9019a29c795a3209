//! `device_stats`: how many devices each tenant has per model and status — the read model
//! added later, to show that a new projection fills itself from history (the runner's
//! backfill) and gets every operation (rebuild, verify, replay) by registering.
//!
//! Every device's place in the counts is kept with its version in `device_stats_members`,
//! so the runner's version check makes an event at or below it change nothing (redeliveries,
//! and the stream replaying what the backfill already counted). Live writes are serialised
//! across worker processes by a transaction-scoped advisory lock: counts are deltas, and two
//! batches computing deltas from the same state would count twice. A rebuild or verify is
//! alone on its copies and takes no lock.

mod member;
mod read_model;
mod tables;

use std::collections::HashMap;

use app::EventEnvelope;
use async_trait::async_trait;
use domain::DeviceId;
use sqlx::PgConnection;

use crate::projection::{Change, Overwrite, Projection, Rows, Table};
use crate::table_copies::TableSet;
use crate::ProjectionError;
use member::Member;

pub use read_model::PostgresDeviceStats;

/// This read model's name.
pub const DEVICE_STATS: &str = "device_stats";

pub(crate) struct DeviceStatsProjection;

#[async_trait]
impl Projection for DeviceStatsProjection {
    type State = Member;

    fn name(&self) -> &'static str {
        DEVICE_STATS
    }

    fn tables(&self) -> &'static [Table] {
        &[
            Table {
                name: tables::MEMBERS,
                rows: Rows::PerDevice,
            },
            Table {
                name: tables::COUNTS,
                rows: Rows::Aggregate,
            },
        ]
    }

    fn version(member: &Member) -> u64 {
        member.version
    }

    fn follow(
        &self,
        current: Option<Member>,
        event: &EventEnvelope,
    ) -> Result<Member, ProjectionError> {
        Ok(member::follow(current, event)?)
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        devices: &[DeviceId],
    ) -> Result<HashMap<DeviceId, Member>, ProjectionError> {
        tables::load(conn, tables, devices).await
    }

    /// `overwrite` needs no statement of its own: live writers are serialised (see
    /// [`Projection::serialise_live_writes`]) and copies have one writer, so the runner's
    /// version check, made under the lock, is the guard.
    async fn write(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        changes: &[Change<Member>],
        _overwrite: Overwrite,
    ) -> Result<(), ProjectionError> {
        tables::write(conn, tables, changes).await
    }

    async fn serialise_live_writes(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        tables::lock_live(conn).await
    }
}
