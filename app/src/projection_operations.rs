//! What operators do with read models: see their state, rebuild one from the event store while
//! the live one keeps serving, cancel a rebuild. The port is implemented by `projections`; the
//! api's admin routes and the `api projections` command use it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::StoreError;

/// One read model, as `GET /admin/projections` and `api projections status` show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectionStatus {
    pub name: String,
    pub state: ProjectionState,
    /// Commit-order cursor of the last event the live projector applied (absent before the
    /// first one).
    pub checkpoint: Option<String>,
    /// Committed events the live projector has not applied yet.
    pub lag_events: u64,
    /// Age of the oldest of those events, in seconds (0 when caught up).
    pub lag_seconds: f64,
    pub events_applied: u64,
    pub checkpoint_updated_at: Option<DateTime<Utc>>,
    /// The current or last rebuild.
    pub rebuild: Option<RebuildStatus>,
    /// The last rebuild's error, if it failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProjectionState {
    /// Following the event stream.
    Live,
    /// Live, with a rebuild filling a shadow table.
    Rebuilding,
    /// Events are waiting and the checkpoint has not moved for a minute.
    Stalled,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RebuildStatus {
    pub state: RebuildState,
    pub events_done: u64,
    /// Events in the store when the rebuild started.
    pub events_total: u64,
    pub events_per_second: f64,
    /// Seconds left at the current rate (absent when unknown or finished).
    pub eta_seconds: Option<f64>,
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RebuildState {
    Running,
    /// Cancel requested; the runner stops after its current batch.
    Cancelling,
    /// Stopped by an operator; starting it again resumes from its checkpoint.
    Cancelled,
    /// Stopped by an error; starting it again resumes from its checkpoint.
    Failed,
    Completed,
}

impl RebuildState {
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Cancelling,
            Self::Cancelled,
            Self::Failed,
            Self::Completed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::Completed => "completed",
        }
    }
}

/// A name that is not a registered projection's; says which names are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no projection named {name:?}; known: {}", known.join(", "))]
pub struct UnknownProjection {
    pub name: String,
    pub known: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildRequestError {
    #[error(transparent)]
    UnknownProjection(#[from] UnknownProjection),
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(String),
    #[error("no rebuild of {0} is running")]
    NotRunning(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait ProjectionOperations: Send + Sync + 'static {
    async fn status(&self) -> Result<Vec<ProjectionStatus>, StoreError>;

    /// Starts (or resumes) a rebuild in the background and returns at once.
    async fn start_rebuild(
        &self,
        name: &str,
        requested_by: &str,
    ) -> Result<RebuildStatus, RebuildRequestError>;

    /// Asks the running rebuild to stop after its current batch.
    async fn cancel_rebuild(
        &self,
        name: &str,
        requested_by: &str,
    ) -> Result<RebuildStatus, RebuildRequestError>;

    /// At shutdown: stops the rebuilds this process runs (each after its current batch,
    /// resumable from its checkpoint), waiting at most `within`; past it they are abandoned
    /// (shown as interrupted, and resumable all the same).
    async fn stop_rebuilds(&self, within: std::time::Duration);
}
