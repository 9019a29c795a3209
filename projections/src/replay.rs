//! Replaying a read model from a point: every device with an event committed after a
//! commit-order position (or recorded since a time) is folded again from its whole history,
//! and its live state is repaired in place where it differs (`RunnableProjection::repair_live`).
//! A device is never moved to an older version, so readers and the live projector are
//! unaffected except for the repair. Other read models and the stream's consumers are not
//! touched.
//!
//! A read model with rows about several devices (`device_stats`' counts) corrects them by
//! each repaired device's difference, like any write; rows damaged on their own, with every
//! device's state right, are beyond a replay: rebuild it.

use app::CommitPosition;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::unavailable;
use crate::runner::RunnableProjection;
use crate::ProjectionError;

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// After this commit-order position (an event's `position` or a feed cursor).
    Position(CommitPosition),
    /// From this time on (events recorded at or after it).
    Time(DateTime<Utc>),
}

/// Neither an RFC 3339 time nor a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an RFC 3339 time or a position cursor from the feed")]
pub struct InvalidReplayPoint;

impl std::str::FromStr for ReplayFrom {
    type Err = InvalidReplayPoint;

    /// An RFC 3339 time, or a commit-order cursor.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
            return Ok(Self::Time(time.with_timezone(&Utc)));
        }
        CommitPosition::from_cursor(raw)
            .map(Self::Position)
            .map_err(|_| InvalidReplayPoint)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Devices folded again.
    pub devices: u64,
    pub events: u64,
    /// Of those devices, the ones whose live state was wrong and is now repaired.
    pub repaired: u64,
}

const DEVICES_PER_BATCH: usize = 500;

/// Replays `projection` from `from` (see the module docs).
pub(crate) async fn replay(
    pool: &PgPool,
    projection: &dyn RunnableProjection,
    from: ReplayFrom,
) -> Result<ReplayReport, ProjectionError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    let (after, since) = match from {
        ReplayFrom::Position(position) => (Some(position), None),
        ReplayFrom::Time(time) => (None, Some(time)),
    };
    let devices = store::devices_changed_since(&mut conn, after, since).await?;
    let mut report = ReplayReport {
        devices: devices.len() as u64,
        events: 0,
        repaired: 0,
    };
    for chunk in devices.chunks(DEVICES_PER_BATCH) {
        let events: Vec<app::EventEnvelope> = store::events_of_devices(&mut conn, chunk)
            .await?
            .into_iter()
            .map(app::RecordedEvent::into_envelope)
            .collect();
        report.events += events.len() as u64;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(unavailable)?;
        report.repaired += projection.repair_live(&mut tx, &events).await? as u64;
        tx.commit().await.map_err(unavailable)?;
    }
    tracing::info!(
        projection = projection.name(),
        devices = report.devices,
        events = report.events,
        repaired = report.repaired,
        ?from,
        "replayed"
    );
    Ok(report)
}
