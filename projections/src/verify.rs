//! Checking a read model against the event store: every event is folded into scratch copies
//! of its tables (temporary tables of this session, so concurrent checks cannot meet), which
//! are then compared row by row with the live ones.
//!
//! The live projector may be a few events behind (or, for events committed after the
//! scratch copies were built, ahead); such devices are re-checked after catching the scratch
//! copies up and giving the projector a moment, and reported only if they still differ.
//! Nothing but the scratch copies is written.

use std::time::Duration;

use app::{CommitPosition, EventEnvelope};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::checkpoint::furthest_position;
use crate::error::unavailable;
use crate::projection::{Rows, Table};
use crate::runner::RunnableProjection;
use crate::table_copies::{create_copy, key_columns, TableSet};
use crate::ProjectionError;

const SCRATCH: TableSet = TableSet::Scratch;

/// Events folded into the scratch copies per round trip.
const EVENTS_PER_BATCH: usize = 5_000;

/// Re-checks of devices where only the versions differ (the live projector catching up).
const SETTLE_ATTEMPTS: usize = 5;
const SETTLE_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Devices in the event store.
    pub devices: u64,
    pub events: u64,
    /// Rows of one device that differ.
    pub differences: Vec<Difference>,
    /// Rows about several devices (counts) that differ.
    pub row_differences: Vec<RowDifference>,
}

impl VerifyReport {
    /// Whether the live tables equal a fold of the event store.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty() && self.row_differences.is_empty()
    }

    pub fn difference_count(&self) -> usize {
        self.differences.len() + self.row_differences.len()
    }
}

/// A device's row that differs between the live table and the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub table: &'static str,
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

impl DifferenceKind {
    /// Whether the live projector catching up (or the scratch copy catching up with it)
    /// may make the difference go away.
    fn may_settle(self) -> bool {
        matches!(
            self,
            Self::LiveBehind | Self::LiveAhead | Self::MissingFromLive
        )
    }
}

/// A row about several devices (keyed by its primary key, shown as text) that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDifference {
    pub table: &'static str,
    pub key: String,
    /// The live row (absent: missing from the live table).
    pub live: Option<String>,
    /// The row the events give (absent: the events give none).
    pub rebuilt: Option<String>,
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} {} {:?}: live version {}, rebuilt version {}",
            self.table,
            self.device,
            self.kind,
            version(self.live_version),
            version(self.rebuilt_version)
        )
    }
}

impl std::fmt::Display for RowDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: live {}, rebuilt {}",
            self.table,
            self.key,
            or_dash(self.live.as_deref()),
            or_dash(self.rebuilt.as_deref())
        )
    }
}

/// Folds every event into scratch copies of `projection`'s tables and compares them with
/// the live ones (see the module docs).
pub(crate) async fn verify(
    pool: &PgPool,
    projection: &dyn RunnableProjection,
) -> Result<VerifyReport, ProjectionError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?.detach();
    let result = verify_on(&mut conn, projection).await;
    // Temporary tables go with the session.
    let _ = sqlx::Connection::close(conn).await;
    result
}

async fn verify_on(
    conn: &mut PgConnection,
    projection: &dyn RunnableProjection,
) -> Result<VerifyReport, ProjectionError> {
    for table in projection.tables() {
        create_copy(conn, table.name, SCRATCH).await?;
    }
    let mut checkpoint = CommitPosition::START;
    let mut events = fold_all(conn, projection, &mut checkpoint).await?;
    let mut report = compare(conn, projection).await?;
    for _ in 0..SETTLE_ATTEMPTS {
        if !report.0.iter().any(|d| d.kind.may_settle()) {
            break;
        }
        tokio::time::sleep(SETTLE_PAUSE).await;
        events += fold_all(conn, projection, &mut checkpoint).await?;
        report = compare(conn, projection).await?;
    }
    let devices = match projection
        .tables()
        .iter()
        .find(|t| t.rows == Rows::PerDevice)
    {
        Some(table) => {
            let count: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {}",
                SCRATCH.name_of(table.name)
            ))
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
            count as u64
        }
        None => 0,
    };
    let (differences, row_differences) = report;
    Ok(VerifyReport {
        devices,
        events,
        differences,
        row_differences,
    })
}

/// Folds every settled event after `checkpoint` into the scratch copies.
async fn fold_all(
    conn: &mut PgConnection,
    projection: &dyn RunnableProjection,
    checkpoint: &mut CommitPosition,
) -> Result<u64, ProjectionError> {
    let mut folded = 0;
    loop {
        let batch = store::committed_events_after(conn, *checkpoint, EVENTS_PER_BATCH).await?;
        let Some(last) = furthest_position(&batch.events) else {
            if batch.held_back {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            return Ok(folded);
        };
        let events: Vec<EventEnvelope> = batch
            .events
            .into_iter()
            .map(app::RecordedEvent::into_envelope)
            .collect();
        projection.fold_into(conn, SCRATCH, &events).await?;
        folded += events.len() as u64;
        *checkpoint = last;
    }
}

async fn compare(
    conn: &mut PgConnection,
    projection: &dyn RunnableProjection,
) -> Result<(Vec<Difference>, Vec<RowDifference>), ProjectionError> {
    let mut differences = Vec::new();
    let mut row_differences = Vec::new();
    for table in projection.tables() {
        match table.rows {
            Rows::PerDevice => differences.extend(compare_devices(conn, table).await?),
            Rows::Aggregate => row_differences.extend(compare_rows(conn, table).await?),
        }
    }
    Ok((differences, row_differences))
}

/// The devices whose rows differ, by their versions.
async fn compare_devices(
    conn: &mut PgConnection,
    table: &Table,
) -> Result<Vec<Difference>, ProjectionError> {
    let rows = sqlx::query(&format!(
        "SELECT coalesce(l.id, s.id) AS id, l.version AS live_version, s.version AS rebuilt_version
           FROM {live} l FULL JOIN {scratch} s ON s.id = l.id
          WHERE l.id IS NULL OR s.id IS NULL OR ROW(l.*) IS DISTINCT FROM ROW(s.*)
          ORDER BY 1",
        live = table.name,
        scratch = SCRATCH.name_of(table.name)
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let mut differences = Vec::with_capacity(rows.len());
    for row in &rows {
        let live: Option<i64> = row.try_get("live_version").map_err(unavailable)?;
        let rebuilt: Option<i64> = row.try_get("rebuilt_version").map_err(unavailable)?;
        let kind = match (live, rebuilt) {
            (None, _) => DifferenceKind::MissingFromLive,
            (_, None) => DifferenceKind::NotInEventStore,
            (Some(l), Some(r)) if l < r => DifferenceKind::LiveBehind,
            (Some(l), Some(r)) if l > r => DifferenceKind::LiveAhead,
            _ => DifferenceKind::ContentDiffers,
        };
        differences.push(Difference {
            table: table.name,
            device: row.try_get("id").map_err(unavailable)?,
            kind,
            live_version: live.map(|v| v as u64),
            rebuilt_version: rebuilt.map(|v| v as u64),
        });
    }
    Ok(differences)
}

/// The rows that differ, keyed by the table's primary key.
async fn compare_rows(
    conn: &mut PgConnection,
    table: &Table,
) -> Result<Vec<RowDifference>, ProjectionError> {
    let key = key_columns(conn, table.name).await?;
    let first = key.first().ok_or_else(|| {
        app::StoreError::Corrupt(format!("{} has no primary key", table.name).into())
    })?;
    let columns = |side: &str| {
        key.iter()
            .map(|c| format!("{side}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let joined = key
        .iter()
        .map(|c| format!("s.{c} = l.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let rows = sqlx::query(&format!(
        "SELECT CASE WHEN l.{first} IS NULL THEN ROW({s_key})::text ELSE ROW({l_key})::text END AS key,
                CASE WHEN l.{first} IS NULL THEN NULL ELSE l::text END AS live,
                CASE WHEN s.{first} IS NULL THEN NULL ELSE s::text END AS rebuilt
           FROM {live} l FULL JOIN {scratch} s ON {joined}
          WHERE l.{first} IS NULL OR s.{first} IS NULL OR ROW(l.*) IS DISTINCT FROM ROW(s.*)
          ORDER BY 1",
        s_key = columns("s"),
        l_key = columns("l"),
        live = table.name,
        scratch = SCRATCH.name_of(table.name)
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            Ok(RowDifference {
                table: table.name,
                key: row.try_get("key").map_err(unavailable)?,
                live: row.try_get("live").map_err(unavailable)?,
                rebuilt: row.try_get("rebuilt").map_err(unavailable)?,
            })
        })
        .collect()
}
