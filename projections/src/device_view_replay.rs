//! Replaying `device_view` from a point: every device with an event committed after a
//! commit-order position (or recorded since a time) is folded again from its whole history
//! and written back, repairing its row in place. A row is never moved to an older version, so
//! readers and the live projector are unaffected except for the repair. Other read models and
//! the stream's consumers are not touched.

use std::collections::BTreeMap;

use app::{CommitPosition, DeviceView};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::device_projector::{write_rows, ProjectionError};
use crate::device_view_fold::fold;
use crate::device_view_table::{unavailable, DeviceViewTable};

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// After this commit-order position (an event's `position` or a feed cursor).
    Position(CommitPosition),
    /// From this time on (events recorded at or after it).
    Time(DateTime<Utc>),
}

impl std::str::FromStr for ReplayFrom {
    type Err = String;

    /// An RFC 3339 time, or a commit-order cursor.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
            return Ok(Self::Time(time.with_timezone(&Utc)));
        }
        CommitPosition::from_cursor(raw)
            .map(Self::Position)
            .map_err(|_| "expected an RFC 3339 time or a position cursor from the feed".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub devices: u64,
    pub events: u64,
}

const DEVICES_PER_BATCH: usize = 500;

/// Replays `device_view` from `from` (see the module docs).
pub async fn replay_device_view(
    pool: &PgPool,
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
    };
    for chunk in devices.chunks(DEVICES_PER_BATCH) {
        let events = store::events_of_devices(&mut conn, chunk).await?;
        report.events += events.len() as u64;
        let mut rows: BTreeMap<uuid::Uuid, DeviceView> = BTreeMap::new();
        for recorded in events {
            let id = recorded.device_id.as_uuid();
            let current = rows.remove(&id);
            rows.insert(id, fold(current, &recorded.into_envelope())?);
        }
        // In id order, like the live projector, so that the two cannot deadlock.
        let rows: Vec<DeviceView> = rows.into_values().collect();
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(unavailable)?;
        write_rows(&mut tx, DeviceViewTable::Live.repair_rows(), &rows).await?;
        tx.commit().await.map_err(unavailable)?;
    }
    tracing::info!(
        projection = crate::DEVICE_VIEW,
        devices = report.devices,
        events = report.events,
        ?from,
        "replayed"
    );
    Ok(report)
}
