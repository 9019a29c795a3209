//! `app::ProjectionOperations` on Postgres: the read models' state, and rebuilds run as
//! background tasks of the calling process (the api, for `POST /admin/projections/…`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{
    CommitPosition, ProjectionOperations, ProjectionState, ProjectionStatus, RebuildRequestError,
    RebuildState, RebuildStatus, StoreError,
};
use async_trait::async_trait;
use chrono::Utc;
use sqlx::PgPool;

use crate::checkpoint::read_checkpoint;
use crate::error::unavailable;
use crate::rebuild::{read_status, request_cancel, RebuildError};
use crate::record_operator_action;
use crate::registry::{registered, registered_named};

/// A projection whose checkpoint has not moved for this long while events wait is stalled.
const STALLED_AFTER: Duration = Duration::from_secs(60);

/// A rebuild this process started: its projection and its task.
type RunningRebuild = (&'static str, tokio::task::JoinHandle<()>);

#[derive(Clone)]
pub struct PostgresProjectionOperations {
    pool: PgPool,
    /// The rebuilds this process runs, so that shutdown can stop them.
    running: Arc<Mutex<Vec<RunningRebuild>>>,
}

impl PostgresProjectionOperations {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            running: Arc::default(),
        }
    }

    async fn projection_status(&self, name: &'static str) -> Result<ProjectionStatus, StoreError> {
        let checkpoint = read_checkpoint(&self.pool, name).await?;
        let (position, events_applied, checkpoint_updated_at) = match &checkpoint {
            Some(c) => (c.position, c.events_applied, Some(c.updated_at)),
            None => (CommitPosition::START, 0, None),
        };
        let backlog = store::backlog_after(&self.pool, position).await?;
        let (lag_events, oldest) = (backlog.events, backlog.oldest_recorded_at);
        let now = Utc::now();
        let lag_seconds = oldest.map_or(0.0, |t| {
            (now - t).to_std().unwrap_or_default().as_secs_f64()
        });
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let rebuild = read_status(&mut conn, name).await?;
        let rebuilding = rebuild
            .as_ref()
            .is_some_and(|r| matches!(r.state, RebuildState::Running | RebuildState::Cancelling));
        let quiet_since = checkpoint_updated_at.or(oldest).unwrap_or(now);
        let stalled =
            lag_events > 0 && (now - quiet_since).to_std().unwrap_or_default() > STALLED_AFTER;
        let state = if rebuilding {
            ProjectionState::Rebuilding
        } else if stalled {
            ProjectionState::Stalled
        } else {
            ProjectionState::Live
        };
        Ok(ProjectionStatus {
            name: name.to_owned(),
            state,
            checkpoint: checkpoint.is_some().then(|| position.to_cursor()),
            lag_events,
            lag_seconds,
            events_applied,
            checkpoint_updated_at,
            last_error: rebuild.as_ref().and_then(|r| r.last_error.clone()),
            rebuild,
        })
    }
}

#[async_trait]
impl ProjectionOperations for PostgresProjectionOperations {
    async fn status(&self) -> Result<Vec<ProjectionStatus>, StoreError> {
        let mut statuses = Vec::new();
        for projection in registered() {
            statuses.push(self.projection_status(projection.name()).await?);
        }
        for status in &statuses {
            report_metrics(status);
        }
        Ok(statuses)
    }

    async fn start_rebuild(
        &self,
        name: &str,
        requested_by: &str,
    ) -> Result<RebuildStatus, RebuildRequestError> {
        let projection = registered_named(name)?;
        let name = projection.name();
        let rebuild = projection.rebuild(self.pool.clone());
        record_operator_action(&self.pool, requested_by, "rebuild", name).await?;
        let started = match rebuild.start(requested_by).await {
            Ok(started) => started,
            Err(RebuildError::AlreadyRunning) => {
                return Err(RebuildRequestError::AlreadyRunning(name.to_owned()))
            }
            Err(RebuildError::Store(e)) => return Err(e.into()),
            Err(other) => return Err(StoreError::Unavailable(other.into()).into()),
        };
        let task = tokio::spawn(async move {
            // Errors are recorded on the rebuild's row and logged by the runner.
            let _ = started.run(|_| {}).await;
        });
        {
            let mut running = self.running.lock().expect("not poisoned");
            running.retain(|(_, task)| !task.is_finished());
            running.push((name, task));
        }
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        read_status(&mut conn, name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the rebuild row vanished".into()).into())
    }

    async fn cancel_rebuild(
        &self,
        name: &str,
        requested_by: &str,
    ) -> Result<RebuildStatus, RebuildRequestError> {
        let name = registered_named(name)?.name();
        record_operator_action(&self.pool, requested_by, "cancel_rebuild", name).await?;
        match request_cancel(&self.pool, name).await? {
            Some(status) if status.state == RebuildState::Cancelling => Ok(status),
            _ => Err(RebuildRequestError::NotRunning(name.to_owned())),
        }
    }

    async fn stop_rebuilds(&self, within: std::time::Duration) {
        let running: Vec<RunningRebuild> =
            std::mem::take(&mut *self.running.lock().expect("not poisoned"))
                .into_iter()
                .filter(|(_, task)| !task.is_finished())
                .collect();
        if running.is_empty() {
            return;
        }
        for (name, _) in &running {
            tracing::info!(
                projection = name,
                "stopping the rebuild: the process is shutting down"
            );
            if let Err(e) = request_cancel(&self.pool, name).await {
                tracing::warn!(projection = name, error = %e, "could not ask the rebuild to stop");
            }
        }
        let tasks = running.into_iter().map(|(name, task)| async move {
            let abort = task.abort_handle();
            if tokio::time::timeout(within, task).await.is_err() {
                // Dropping the runner closes its connection, which releases the lock.
                abort.abort();
                tracing::warn!(
                    projection = name,
                    "the rebuild did not stop in time; it shows as interrupted and resumes when started again"
                );
            }
        });
        futures::future::join_all(tasks).await;
    }
}

/// The status as gauges, so that dashboards and alerts see what `GET /admin/projections`
/// shows (the api refreshes them periodically).
fn report_metrics(status: &ProjectionStatus) {
    let name = status.name.clone();
    metrics::gauge!("projection_lag_events", "projection" => name.clone())
        .set(status.lag_events as f64);
    metrics::gauge!("projection_stalled", "projection" => name.clone()).set(f64::from(u8::from(
        status.state == ProjectionState::Stalled,
    )));
    metrics::gauge!("projection_rebuilding", "projection" => name.clone()).set(f64::from(
        u8::from(status.state == ProjectionState::Rebuilding),
    ));
    if let Some(rebuild) = &status.rebuild {
        metrics::gauge!("projection_rebuild_events_done", "projection" => name.clone())
            .set(rebuild.events_done as f64);
        metrics::gauge!("projection_rebuild_events_total", "projection" => name.clone())
            .set(rebuild.events_total as f64);
        metrics::gauge!("projection_rebuild_eta_seconds", "projection" => name)
            .set(rebuild.eta_seconds.unwrap_or(0.0));
    }
}
