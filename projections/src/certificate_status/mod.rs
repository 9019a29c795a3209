//! `certificate_status`: every certificate the CA issued to a device, with its revocation
//! (when, why) once there is one — what CRLs and OCSP answers are to be made from. A
//! revocation is final here as in the domain: no rebuild, replay or redelivery can take one
//! back, because the state is a fold of the device's events, which hold it.
//!
//! Each device's version is kept in `certificate_status_devices`, so the runner's version
//! check makes an event at or below it change nothing. Live writes are serialised across
//! worker processes (a device's version row and its certificate rows must move together); a
//! rebuild or verify is alone on its copies.
//!
//! `lookup.rs` reads the live table for the OCSP responder (`app::pki::CertificateStatusLookup`).

mod live_certificates;
mod lookup;
mod revocations;
mod state;
mod tables;

use std::collections::HashMap;

use app::EventEnvelope;
use async_trait::async_trait;
use domain::DeviceId;
use sqlx::PgConnection;

use crate::live_write_lock::lock_live_writes;
use crate::projection::{Change, Overwrite, Projection, Rows, Table};
use crate::table_copies::TableSet;
use crate::ProjectionError;
pub use live_certificates::PostgresLiveCertificates;
pub use revocations::{PostgresIssuedRevocations, PostgresRevocations};
use state::DeviceCertificates;

pub use lookup::PostgresCertificateStatusLookup;

/// This read model's name.
pub const CERTIFICATE_STATUS: &str = "certificate_status";

pub(crate) struct CertificateStatusProjection;

#[async_trait]
impl Projection for CertificateStatusProjection {
    type State = DeviceCertificates;

    fn name(&self) -> &'static str {
        CERTIFICATE_STATUS
    }

    fn tables(&self) -> &'static [Table] {
        &[
            Table {
                name: tables::DEVICES,
                rows: Rows::PerDevice,
            },
            Table {
                name: tables::CERTIFICATES,
                rows: Rows::Aggregate,
            },
        ]
    }

    fn version(state: &DeviceCertificates) -> u64 {
        state.version
    }

    fn follow(
        &self,
        current: Option<DeviceCertificates>,
        event: &EventEnvelope,
    ) -> Result<DeviceCertificates, ProjectionError> {
        Ok(state::follow(current, event)?)
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        devices: &[DeviceId],
    ) -> Result<HashMap<DeviceId, DeviceCertificates>, ProjectionError> {
        tables::load(conn, tables, devices).await
    }

    /// `overwrite` needs no statement of its own: live writers are serialised and copies
    /// have one writer, so the runner's version check, made under the lock, is the guard.
    async fn write(
        &self,
        conn: &mut PgConnection,
        tables: TableSet,
        changes: &[Change<DeviceCertificates>],
        _overwrite: Overwrite,
    ) -> Result<(), ProjectionError> {
        tables::write(conn, tables, changes).await
    }

    async fn serialise_live_writes(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        lock_live_writes(conn, CERTIFICATE_STATUS).await
    }
}
