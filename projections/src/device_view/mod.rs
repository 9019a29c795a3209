//! `device_view`: one row per device, as `GET /v1/devices…` serves it.
//!
//! - [`DeviceViewProjection`]: the read model for the runner: its table, the pure fold
//!   (`fold.rs`) and the row statements (`table.rs`); after each live batch it notifies
//!   [`READ_MODEL_CHANGED_CHANNEL`] with the changed devices.
//! - [`PostgresDeviceReadModel`]: the api's reads of the table.
//! - [`PgReadModelChanges`]: wakes the long-polling readers of the devices that changed.

mod changes;
mod fold;
mod read_model;
mod table;

use std::collections::HashMap;

use app::{DeviceView, EventEnvelope};
use async_trait::async_trait;
use domain::DeviceId;
use sqlx::PgConnection;

use crate::projection::{Change, Overwrite, Projection, Rows, Table};
use crate::table_copies::TableSet;
use crate::ProjectionError;

pub use changes::{PgReadModelChanges, READ_MODEL_CHANGED_CHANNEL};
pub use read_model::PostgresDeviceReadModel;

/// This read model's name.
pub const DEVICE_VIEW: &str = "device_view";

pub(crate) struct DeviceViewProjection;

#[async_trait]
impl Projection for DeviceViewProjection {
    type State = DeviceView;

    fn name(&self) -> &'static str {
        DEVICE_VIEW
    }

    fn tables(&self) -> &'static [Table] {
        &[Table {
            name: table::TABLE,
            rows: Rows::PerDevice,
        }]
    }

    fn version(row: &DeviceView) -> u64 {
        row.version
    }

    fn follow(
        &self,
        current: Option<DeviceView>,
        event: &EventEnvelope,
    ) -> Result<DeviceView, ProjectionError> {
        Ok(fold::fold(current, event)?)
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        devices: &[DeviceId],
    ) -> Result<HashMap<DeviceId, DeviceView>, ProjectionError> {
        table::load(conn, tables, devices).await
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        changes: &[Change<DeviceView>],
        overwrite: Overwrite,
    ) -> Result<(), ProjectionError> {
        let rows: Vec<&DeviceView> = changes.iter().map(|c| &c.after).collect();
        table::write(conn, tables, overwrite, &rows).await
    }

    fn changes_channel(&self) -> Option<&'static str> {
        Some(READ_MODEL_CHANGED_CHANNEL)
    }
}
