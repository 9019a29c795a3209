//! Read models and what maintains them.
//!
//! - **A projection** (`projection.rs`, the `Projection` trait) names
//!   its tables and folds a device's events into its state there. Each read model is a
//!   folder: `device_view/` (one row per device, what `GET /v1/devices…` serves, with the
//!   change listener that wakes long-polls), `device_stats/` (counts per tenant, model
//!   and status) and `certificate_status/` (every issued certificate and its revocation, by
//!   serial, with the OCSP responder's lookup).
//! - **The runner** (`runner.rs`) folds batches for every projection alike into a set of
//!   tables (live, a rebuild's shadows, verify's scratch copies, `table_copies.rs`):
//!   idempotent by version, gap-filling from the event store, and for live batches the
//!   checkpoint (`checkpoint.rs`) and the projection's change notification.
//! - **The registry** (`registry.rs`) is the one list of read models; everything that
//!   enumerates them derives from it: the worker's [`Projector`]s ([`projectors`]: live
//!   batches of the events notifications name, `notified_events.rs`, and the resumable
//!   backfill from history, `backfill.rs`), and the operations by name
//!   ([`registered_named`]): rebuild into shadow tables with an atomic swap (`rebuild/`),
//!   verify against a scratch fold (`verify.rs`), replay from a point (`replay.rs`), and
//!   their status ([`PostgresProjectionOperations`], `app::ProjectionOperations`). Adding a
//!   read model is its folder and one line in the registry.
//!
//! This crate owns the SQL of the read-model tables, `projection_checkpoints`,
//! `projection_backfills` and `projection_rebuilds`, and nothing else; it reads events only
//! through `store`, and writes no events, certificates or messages.

mod backfill;
mod batch_report;
mod bookkeeping_rows;
mod certificate_status;
mod checkpoint;
mod device_stats;
mod device_view;
mod error;
mod live_write_lock;
mod notified_events;
mod operator_action;
mod postgres_projection_operations;
mod projection;
mod projector;
mod rebuild;
mod registry;
mod replay;
mod runner;
mod table_copies;
mod verify;

pub use batch_report::BatchReport;
pub use certificate_status::{
    PostgresCertificateStatusLookup, PostgresIssuedRevocations, PostgresLiveCertificates,
    PostgresRevocations, CERTIFICATE_STATUS,
};
pub use device_stats::{PostgresDeviceStats, DEVICE_STATS};
pub use device_view::{
    PgReadModelChanges, PostgresDeviceReadModel, DEVICE_VIEW, READ_MODEL_CHANGED_CHANNEL,
};
pub use error::{FoldError, ProjectionError};
pub use operator_action::record_operator_action;
pub use postgres_projection_operations::PostgresProjectionOperations;
pub use projector::Projector;
pub use rebuild::{
    read_status as read_rebuild_status, request_cancel as request_rebuild_cancel,
    ProjectionRebuild, RebuildError, RebuildOutcome, StartedRebuild,
};
pub use registry::{projectors, registered, registered_named, RegisteredProjection};
pub use replay::{InvalidReplayPoint, ReplayFrom, ReplayReport};
pub use verify::{Difference, DifferenceKind, RowDifference, VerifyReport};
