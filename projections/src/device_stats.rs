//! `device_stats`: how many devices each tenant has per model and status — the read model
//! added later, to show that a new projection fills itself from history.
//!
//! [`DeviceStatsProjector::backfill`] folds the whole event store (commit order, gap-safe)
//! until it has reached its end once (its progress in `projection_backfills`, so an
//! interrupted backfill resumes); from then on the worker's durable
//! consumer applies each event from the stream. Both go through [`DeviceStatsProjector::apply`]:
//! every device's place in the counts is kept with its version in `device_stats_members`, so
//! an event at or below that version changes nothing (redeliveries, and the stream replaying
//! what the backfill already counted); a gap is filled from the event store. Batches are
//! serialised across worker processes by a transaction-scoped advisory lock: counts are
//! deltas, and two batches computing deltas from the same state would count twice.

use std::collections::{BTreeMap, HashMap};

use app::{CommitPosition, EventEnvelope, PublicEvent, StoreError};
use async_trait::async_trait;
use domain::{DeviceId, DeviceStatus, TenantId};
use sqlx::{PgConnection, PgPool, Row};

use crate::device_projector::{advance_checkpoint, fold_events, BatchReport, ProjectionError};
use crate::device_view_fold::status_after;
use crate::device_view_table::{parse_status, unavailable};
use crate::notified_events::notified_events;

/// This projection's name (its checkpoint row).
pub const DEVICE_STATS: &str = "device_stats";

const BACKFILL_BATCH: usize = 5_000;

/// A device's place in the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    tenant: String,
    model: String,
    status: DeviceStatus,
    has_certificate: bool,
    version: u64,
}

type CountKey = (String, String, &'static str);

#[derive(Clone)]
pub struct DeviceStatsProjector {
    pool: PgPool,
    backfill_batch: usize,
}

impl DeviceStatsProjector {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            backfill_batch: BACKFILL_BATCH,
        }
    }

    /// Applies the events `notifications` name, read from the event store, in one
    /// transaction (see the module docs).
    pub async fn apply(
        &self,
        notifications: &[EventEnvelope],
    ) -> Result<BatchReport, ProjectionError> {
        if notifications.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let (events, furthest) = notified_events(&mut tx, notifications).await?;
        let Some(furthest) = furthest else {
            return Ok(BatchReport {
                skipped: notifications.len(),
                ..BatchReport::default()
            });
        };
        let report = apply_live(&mut tx, &events, furthest).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(report)
    }

    /// Events folded per backfill transaction (default 5,000).
    pub fn with_backfill_batch(mut self, events: usize) -> Self {
        self.backfill_batch = events.max(1);
        self
    }

    /// Fills the projection from the whole event store, unless that was done before; returns
    /// the number of events folded (`None` when it was already done).
    ///
    /// Resumable: each batch commits with the backfill's own position
    /// (`projection_backfills`), and the backfill counts as done only once it reached the
    /// end of the event store. An interrupted backfill (an error, a stopped worker) goes on
    /// from its position the next time.
    pub async fn backfill(&self) -> Result<Option<u64>, ProjectionError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let Some(mut checkpoint) = backfill_position(&mut conn).await? else {
            return Ok(None);
        };
        if checkpoint != CommitPosition::START {
            tracing::info!(
                projection = DEVICE_STATS,
                "resuming an interrupted backfill"
            );
        }
        let mut folded = 0u64;
        loop {
            let batch =
                store::committed_events_after(&mut conn, checkpoint, self.backfill_batch).await?;
            let Some(last) = batch.events.last().map(|e| e.position) else {
                if batch.held_back {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                break;
            };
            let envelopes: Vec<EventEnvelope> = batch
                .events
                .into_iter()
                .map(app::RecordedEvent::into_envelope)
                .collect();
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(unavailable)?;
            apply_live(&mut tx, &envelopes, last).await?;
            record_backfill(&mut tx, last, envelopes.len(), false).await?;
            tx.commit().await.map_err(unavailable)?;
            folded += envelopes.len() as u64;
            checkpoint = last;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(unavailable)?;
        // Also when the store was empty: the projection has started all the same.
        advance_checkpoint(&mut tx, DEVICE_STATS, checkpoint, 0).await?;
        record_backfill(&mut tx, checkpoint, 0, true).await?;
        tx.commit().await.map_err(unavailable)?;
        tracing::info!(
            projection = DEVICE_STATS,
            events = folded,
            "filled from the event store"
        );
        Ok(Some(folded))
    }
}

/// Applies `events` to the live tables and moves the checkpoint to `furthest`, in the caller's
/// transaction.
async fn apply_live(
    conn: &mut PgConnection,
    events: &[EventEnvelope],
    furthest: CommitPosition,
) -> Result<BatchReport, ProjectionError> {
    let report = apply_on(conn, LIVE, events).await?;
    advance_checkpoint(
        conn,
        DEVICE_STATS,
        furthest,
        report.applied + report.gap_filled,
    )
    .await?;
    Ok(report)
}

/// Where the backfill stands: `None` when it is done, else the position to go on from.
async fn backfill_position(
    conn: &mut PgConnection,
) -> Result<Option<CommitPosition>, ProjectionError> {
    let row = sqlx::query(
        "SELECT transaction_id::text AS transaction_id, position, completed_at IS NOT NULL AS done
           FROM projection_backfills WHERE projection = $1",
    )
    .bind(DEVICE_STATS)
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?;
    let Some(row) = row else {
        return Ok(Some(CommitPosition::START));
    };
    if row.try_get::<bool, _>("done").map_err(unavailable)? {
        return Ok(None);
    }
    let transaction_id: String = row.try_get("transaction_id").map_err(unavailable)?;
    Ok(Some(CommitPosition {
        transaction_id: transaction_id
            .parse()
            .map_err(|_| StoreError::Corrupt("projection_backfills.transaction_id".into()))?,
        position: row.try_get("position").map_err(unavailable)?,
    }))
}

/// Records the backfill's progress (and, at the end, that it is done) in the caller's
/// transaction, with the batch it covers.
async fn record_backfill(
    conn: &mut PgConnection,
    position: CommitPosition,
    events: usize,
    done: bool,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO projection_backfills AS b (projection, transaction_id, position, events_folded, completed_at)
         VALUES ($1, $2::text::xid8, $3, $4, CASE WHEN $5 THEN now() END)
         ON CONFLICT (projection) DO UPDATE
            SET transaction_id = excluded.transaction_id,
                position = excluded.position,
                events_folded = b.events_folded + excluded.events_folded,
                completed_at = excluded.completed_at,
                updated_at = now()",
    )
    .bind(DEVICE_STATS)
    .bind(position.transaction_id.to_string())
    .bind(position.position)
    .bind(events as i64)
    .bind(done)
    .execute(conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// The tables a batch is applied to: the live ones, or a rebuild's shadows.
#[derive(Debug, Clone, Copy)]
struct StatsTables {
    members: &'static str,
    counts: &'static str,
    /// Live batches serialise across processes; a rebuild is alone on its shadows.
    serialised: bool,
}

const LIVE: StatsTables = StatsTables {
    members: "device_stats_members",
    counts: "device_stats",
    serialised: true,
};

const SHADOW: StatsTables = StatsTables {
    members: "device_stats_members_rebuild",
    counts: "device_stats_rebuild",
    serialised: false,
};

/// `device_stats` for [`crate::ProjectionRebuild`].
pub(crate) struct DeviceStatsTarget;

#[async_trait]
impl crate::RebuildTarget for DeviceStatsTarget {
    fn name(&self) -> &'static str {
        DEVICE_STATS
    }
    fn tables(&self) -> &'static [&'static str] {
        &[LIVE.members, LIVE.counts]
    }
    async fn fold_into_shadow(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<(), ProjectionError> {
        apply_on(conn, SHADOW, events).await.map(|_| ())
    }
}

async fn apply_on(
    conn: &mut PgConnection,
    tables: StatsTables,
    events: &[EventEnvelope],
) -> Result<BatchReport, ProjectionError> {
    if tables.serialised {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("device-provisioning projection {DEVICE_STATS}"))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    let mut ids: Vec<uuid::Uuid> = events.iter().map(|e| e.subject.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query(&format!(
        "SELECT id, tenant, model, status, has_certificate, version
           FROM {} WHERE id = ANY($1)",
        tables.members
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let mut members: HashMap<DeviceId, Member> = HashMap::with_capacity(ids.len());
    for row in &rows {
        let status: String = row.try_get("status").map_err(unavailable)?;
        members.insert(
            DeviceId::from_uuid(row.try_get("id").map_err(unavailable)?),
            Member {
                tenant: row.try_get("tenant").map_err(unavailable)?,
                model: row.try_get("model").map_err(unavailable)?,
                status: parse_status(&status)
                    .ok_or_else(|| StoreError::Corrupt("device_stats_members.status".into()))?,
                has_certificate: row.try_get("has_certificate").map_err(unavailable)?,
                version: row.try_get::<i64, _>("version").map_err(unavailable)? as u64,
            },
        );
    }
    let before = members.clone();
    let (_, report) = fold_events(conn, &mut members, events, |m| m.version, follow).await?;
    // Each changed device leaves its old count and joins its new one.
    let mut deltas: BTreeMap<CountKey, i64> = BTreeMap::new();
    let mut changed: Vec<(&DeviceId, &Member)> = members
        .iter()
        .filter(|(id, member)| before.get(id) != Some(member))
        .collect();
    changed.sort_unstable_by_key(|(id, _)| id.as_uuid());
    for (id, member) in &changed {
        if let Some(old) = before.get(id) {
            *deltas
                .entry((old.tenant.clone(), old.model.clone(), old.status.as_str()))
                .or_default() -= 1;
        }
        *deltas
            .entry((
                member.tenant.clone(),
                member.model.clone(),
                member.status.as_str(),
            ))
            .or_default() += 1;
    }
    if !changed.is_empty() {
        sqlx::query(&format!(
            "INSERT INTO {} (id, tenant, model, status, has_certificate, version)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bigint[])
             ON CONFLICT (id) DO UPDATE
                SET tenant = excluded.tenant, model = excluded.model, status = excluded.status,
                    has_certificate = excluded.has_certificate, version = excluded.version",
            tables.members
        ))
        .bind(changed.iter().map(|(id, _)| id.as_uuid()).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, m)| m.tenant.clone()).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, m)| m.model.clone()).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, m)| m.status.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, m)| m.has_certificate).collect::<Vec<_>>())
        .bind(changed.iter().map(|(_, m)| m.version as i64).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    let deltas: Vec<(CountKey, i64)> = deltas.into_iter().filter(|(_, d)| *d != 0).collect();
    if !deltas.is_empty() {
        sqlx::query(&format!(
            "INSERT INTO {counts} AS c (tenant, model, status, devices)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (tenant, model, status) DO UPDATE
                SET devices = c.devices + excluded.devices",
            counts = tables.counts
        ))
        .bind(
            deltas
                .iter()
                .map(|((t, _, _), _)| t.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            deltas
                .iter()
                .map(|((_, m, _), _)| m.clone())
                .collect::<Vec<_>>(),
        )
        .bind(deltas.iter().map(|((_, _, s), _)| *s).collect::<Vec<_>>())
        .bind(deltas.iter().map(|(_, d)| *d).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
        sqlx::query(&format!("DELETE FROM {} WHERE devices = 0", tables.counts))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(report)
}

/// A device's place after `event`, given its place before.
fn follow(current: Option<Member>, event: &EventEnvelope) -> Result<Member, ProjectionError> {
    let mut member = match (current, &event.event) {
        (None, PublicEvent::DeviceRegistered { model, .. }) => Member {
            tenant: event.tenant.as_str().to_owned(),
            model: model.as_str().to_owned(),
            status: DeviceStatus::Pending,
            has_certificate: false,
            version: 0,
        },
        (None, other) => {
            return Err(crate::FoldError::NotRegistered {
                device: event.subject.to_string(),
                event_type: other.event_type().to_owned(),
            }
            .into())
        }
        (Some(mut member), event) => {
            member.status = status_after(member.status, member.has_certificate, event);
            member.has_certificate |= matches!(event, PublicEvent::CertificateIssued { .. });
            member
        }
    };
    member.version = event.sequence;
    Ok(member)
}

/// The counts as `GET /v1/stats` serves them.
#[derive(Clone)]
pub struct PostgresDeviceStats {
    pool: PgPool,
}

impl PostgresDeviceStats {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl app::DeviceStatsReadModel for PostgresDeviceStats {
    async fn counts(&self, tenant: &TenantId) -> Result<Vec<app::DeviceCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT model, status, devices FROM device_stats WHERE tenant = $1 ORDER BY model, status",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status").map_err(unavailable)?;
                Ok(app::DeviceCount {
                    model: row.try_get("model").map_err(unavailable)?,
                    status: parse_status(&status)
                        .ok_or_else(|| StoreError::Corrupt("device_stats.status".into()))?,
                    devices: row.try_get::<i64, _>("devices").map_err(unavailable)? as u64,
                })
            })
            .collect()
    }
}

#[async_trait]
impl crate::BatchProjector for DeviceStatsProjector {
    fn name(&self) -> &'static str {
        DEVICE_STATS
    }
    async fn apply(&self, events: &[EventEnvelope]) -> Result<BatchReport, ProjectionError> {
        DeviceStatsProjector::apply(self, events).await
    }
}
