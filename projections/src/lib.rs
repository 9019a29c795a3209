//! Read models and the projectors that maintain them.
//!
//! - `device_view`: one row per device, as `GET /v1/devices…` serves it. [`DeviceProjector`]
//!   applies events to it (idempotent, gap-filling, checkpointed; see its module), the
//!   worker feeds it from JetStream; [`PostgresDeviceReadModel`] reads it for the api;
//!   [`PgReadModelChanges`] wakes long-polling readers when it changes.
//! - The fold from events to a row ([`fold`]) is pure and shared by every path that writes
//!   the table.
//!
//! This crate owns the SQL of the read-model tables (`device_view`, `device_stats`,
//! `projection_checkpoints`, `projection_backfills`, `projection_rebuilds`) and nothing else;
//! it reads events only through `store`.

mod device_projector;
mod device_stats;
mod device_view_fold;
mod device_view_replay;
pub(crate) mod device_view_table;
mod device_view_verify;
mod notified_events;
mod postgres_device_read_model;
mod postgres_projection_operations;
mod projection_rebuild;
mod projector_registry;
mod read_model_changes;

pub use device_projector::{
    BatchProjector, BatchReport, DeviceProjector, ProjectionError, DEVICE_VIEW,
    READ_MODEL_CHANGED_CHANNEL,
};
pub use device_stats::{DeviceStatsProjector, PostgresDeviceStats, DEVICE_STATS};
pub use device_view_fold::{fold, FoldError};
pub use device_view_replay::{replay_device_view, ReplayFrom, ReplayReport};
pub use device_view_table::DeviceViewTable;
pub use device_view_verify::{verify_device_view, Difference, DifferenceKind, VerifyReport};
pub use postgres_device_read_model::PostgresDeviceReadModel;
pub use postgres_projection_operations::PostgresProjectionOperations;
pub use projection_rebuild::{
    read_status as read_rebuild_status, rebuild_of, request_cancel as request_rebuild_cancel,
    ProjectionRebuild, RebuildError, RebuildOutcome, RebuildTarget,
};
pub use projector_registry::{projectors, Projector};
pub use read_model_changes::PgReadModelChanges;
