//! Checking the live `device_view` against the event store: every event is folded into a
//! scratch table (a temporary table of this session, so concurrent checks cannot meet), which
//! is then compared row by row with the live one.
//!
//! The live projector may be a few events behind (or, for events committed after the scratch
//! was built, ahead); such rows are re-checked after catching the scratch up and giving the
//! projector a moment, and reported only if they still differ.

use std::time::Duration;

use app::{CommitPosition, EventEnvelope};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::device_projector::project_into;
use crate::device_view_table::{unavailable, DeviceViewTable};
use crate::projection_rebuild::{RebuildError, DEFAULT_BATCH};

const SCRATCH: DeviceViewTable = DeviceViewTable::Scratch;

/// Re-checks of rows where only the versions differ (the live projector catching up).
const SETTLE_ATTEMPTS: usize = 5;
const SETTLE_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Devices in the event store.
    pub devices: u64,
    pub events: u64,
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub device: Uuid,
    pub kind: DifferenceKind,
    pub live_version: Option<u64>,
    pub rebuilt_version: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// The device has events but no live row.
    MissingFromLive,
    /// A live row for a device without events.
    NotInEventStore,
    /// The live row is at an older version than the events say.
    LiveBehind,
    /// The live row is at a version the event store does not have.
    LiveAhead,
    /// Same version, different content.
    ContentDiffers,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} {:?}: live version {}, rebuilt version {}",
            self.device,
            self.kind,
            version(self.live_version),
            version(self.rebuilt_version)
        )
    }
}

/// Folds every event into a scratch table and compares it with the live `device_view`.
pub async fn verify_device_view(pool: &PgPool) -> Result<VerifyReport, RebuildError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?.detach();
    let result = verify_on(&mut conn).await;
    // Temporary tables go with the session.
    let _ = sqlx::Connection::close(conn).await;
    result
}

async fn verify_on(conn: &mut PgConnection) -> Result<VerifyReport, RebuildError> {
    let scratch = SCRATCH.name();
    for statement in [
        format!(
            "CREATE TEMPORARY TABLE {scratch} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
            DeviceViewTable::Live.name()
        ),
        format!("ALTER TABLE {scratch} ADD PRIMARY KEY (id)"),
    ] {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    let mut checkpoint = CommitPosition::START;
    let mut events = fold_all(conn, &mut checkpoint).await?;
    let mut differences = compare(conn).await?;
    for _ in 0..SETTLE_ATTEMPTS {
        let settling = differences.iter().any(|d| {
            matches!(
                d.kind,
                DifferenceKind::LiveBehind
                    | DifferenceKind::LiveAhead
                    | DifferenceKind::MissingFromLive
            )
        });
        if !settling {
            break;
        }
        tokio::time::sleep(SETTLE_PAUSE).await;
        events += fold_all(conn, &mut checkpoint).await?;
        differences = compare(conn).await?;
    }
    let devices: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {scratch}"))
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(VerifyReport {
        devices: devices as u64,
        events,
        differences,
    })
}

/// Folds every settled event after `checkpoint` into the scratch table.
async fn fold_all(
    conn: &mut PgConnection,
    checkpoint: &mut CommitPosition,
) -> Result<u64, RebuildError> {
    let mut folded = 0;
    loop {
        let batch = store::committed_events_after(conn, *checkpoint, DEFAULT_BATCH).await?;
        let Some(last) = batch.events.last().map(|e| e.position) else {
            if batch.held_back {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            return Ok(folded);
        };
        let envelopes: Vec<EventEnvelope> = batch
            .events
            .into_iter()
            .map(app::RecordedEvent::into_envelope)
            .collect();
        project_into(conn, SCRATCH, &envelopes).await?;
        folded += envelopes.len() as u64;
        *checkpoint = last;
    }
}

async fn compare(conn: &mut PgConnection) -> Result<Vec<Difference>, RebuildError> {
    let rows = sqlx::query(&format!(
        "SELECT coalesce(l.id, s.id) AS id, l.version AS live_version, s.version AS rebuilt_version
           FROM {live} l FULL JOIN {scratch} s ON s.id = l.id
          WHERE l.id IS NULL OR s.id IS NULL
             OR (l.tenant, l.serial_number, l.model, l.labels, l.status, l.certificate, l.failure,
                 l.version, l.created_at, l.updated_at)
                IS DISTINCT FROM
                (s.tenant, s.serial_number, s.model, s.labels, s.status, s.certificate, s.failure,
                 s.version, s.created_at, s.updated_at)
          ORDER BY 1",
        live = DeviceViewTable::Live.name(),
        scratch = SCRATCH.name()
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let live: Option<i64> = row.try_get("live_version").map_err(unavailable)?;
            let rebuilt: Option<i64> = row.try_get("rebuilt_version").map_err(unavailable)?;
            let kind = match (live, rebuilt) {
                (None, _) => DifferenceKind::MissingFromLive,
                (_, None) => DifferenceKind::NotInEventStore,
                (Some(l), Some(r)) if l < r => DifferenceKind::LiveBehind,
                (Some(l), Some(r)) if l > r => DifferenceKind::LiveAhead,
                _ => DifferenceKind::ContentDiffers,
            };
            Ok(Difference {
                device: row.try_get("id").map_err(unavailable)?,
                kind,
                live_version: live.map(|v| v as u64),
                rebuilt_version: rebuilt.map(|v| v as u64),
            })
        })
        .collect()
}
