//! Dead letters: messages a consumer gave up on after their last delivery, kept with the
//! error so that operators can see, retry or discard them (`app::DeadLetterOperations`), and
//! the claims by which a worker carries a requested retry out.
//!
//! Every operator action is recorded (`OperatorAction`) in the same transaction as the state
//! change.
//!
//! States: `dead` → (operator) `retry_requested` → (a worker's claim, a lease) `retrying` →
//! `retried`, or `dead` again with the new error; `dead` → (operator) `discarded`. A claim
//! that expires (its worker died) is taken up again. The message failing again on the stream
//! only counts its deliveries and keeps the error: it reopens a `retried` letter (`dead`), and
//! never changes `discarded`, `retry_requested` or a retry in progress.

use app::{
    DeadLetterActionError, DeadLetterFilter, DeadLetterOperations, DeadLetterState, DeadLetterView,
    StoreError,
};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use std::time::Duration;

use uuid::Uuid;

use crate::operator_actions::OperatorAction;
use crate::recorded_event_row::unavailable;

/// Notified when an operator requests a retry, so that workers act at once.
pub const DEAD_LETTER_RETRY_CHANNEL: &str = "dp_dead_letter_retry";

const VIEW_COLUMNS: &str = "id, consumer, event_id, subject, tenant, deliveries, error, state, \
     retries, payload, created_at, updated_at, resolved_by, resolved_at";

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub consumer: String,
    pub event_id: Uuid,
    pub subject: String,
    pub stream_sequence: u64,
    pub tenant: Option<String>,
    pub deliveries: u64,
    /// What went wrong on the last delivery. Never holds secrets: errors name what failed,
    /// not the data.
    pub error: String,
    /// The message body, lossily decoded as UTF-8.
    pub payload: String,
}

#[derive(Clone)]
pub struct PostgresDeadLetters {
    pool: PgPool,
}

const UPSERT: &str = "
INSERT INTO dead_letters
    (id, consumer, event_id, subject, stream_sequence, tenant, deliveries, error, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (consumer, event_id) DO UPDATE
   SET deliveries = dead_letters.deliveries + excluded.deliveries,
       error = excluded.error,
       stream_sequence = excluded.stream_sequence,
       state = CASE WHEN dead_letters.state = 'retried' THEN 'dead' ELSE dead_letters.state END,
       updated_at = now()";

/// A retry a worker has claimed: process `payload` as `consumer` would, then call
/// [`PostgresDeadLetters::finish_retry`] before the claim expires.
#[derive(Debug, Clone)]
pub struct ClaimedRetry {
    pub id: Uuid,
    /// This claim (a later claim of the same letter, after this one expired, has another).
    pub claim: Uuid,
    pub consumer: String,
    pub subject: String,
    pub payload: String,
}

impl PostgresDeadLetters {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn record(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        sqlx::query(UPSERT)
            .bind(Uuid::now_v7())
            .bind(&letter.consumer)
            .bind(letter.event_id)
            .bind(&letter.subject)
            .bind(letter.stream_sequence as i64)
            .bind(&letter.tenant)
            .bind(letter.deliveries as i64)
            .bind(&letter.error)
            .bind(&letter.payload)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl PostgresDeadLetters {
    /// Claims up to `limit` retries for `consumers`: requested ones, and ones whose earlier
    /// claim expired (its worker died or could not record the outcome). Each is held by one
    /// worker at a time, for `lease`.
    pub async fn claim_retries(
        &self,
        consumers: &[&str],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedRetry>, StoreError> {
        let rows = sqlx::query(
            "UPDATE dead_letters
                SET state = 'retrying', retries = retries + 1, updated_at = now(),
                    claim_id = gen_random_uuid(),
                    claim_expires_at = now() + make_interval(secs => $3)
              WHERE id IN (SELECT id FROM dead_letters
                            WHERE consumer = ANY($1)
                              AND (state = 'retry_requested'
                                   OR (state = 'retrying'
                                       AND (claim_expires_at IS NULL OR claim_expires_at < now())))
                            ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, claim_id, consumer, subject, payload",
        )
        .bind(consumers)
        .bind(limit as i64)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedRetry {
                    id: row.try_get("id").map_err(unavailable)?,
                    claim: row.try_get("claim_id").map_err(unavailable)?,
                    consumer: row.try_get("consumer").map_err(unavailable)?,
                    subject: row.try_get("subject").map_err(unavailable)?,
                    payload: row.try_get("payload").map_err(unavailable)?,
                })
            })
            .collect()
    }

    /// Records how a claimed retry went: `retried`, or `dead` again with the new error. Only
    /// the claim's holder can, and only while the letter is still `retrying` under it; false
    /// when the claim was no longer held (it expired and another worker took it up).
    pub async fn finish_retry(
        &self,
        claim: &ClaimedRetry,
        outcome: Result<(), String>,
    ) -> Result<bool, StoreError> {
        let (state, error) = match outcome {
            Ok(()) => ("retried", None),
            Err(e) => ("dead", Some(e)),
        };
        let finished = sqlx::query(
            "UPDATE dead_letters
                SET state = $2, error = coalesce($3, error), updated_at = now(),
                    claim_id = NULL, claim_expires_at = NULL,
                    resolved_at = CASE WHEN $2 = 'retried' THEN now() ELSE resolved_at END
              WHERE id = $1 AND state = 'retrying' AND claim_id = $4",
        )
        .bind(claim.id)
        .bind(state)
        .bind(error)
        .bind(claim.claim)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(finished.rows_affected() == 1)
    }

    async fn act(
        &self,
        id: Uuid,
        actor: &str,
        action: &'static str,
        new_state: DeadLetterState,
    ) -> Result<DeadLetterView, DeadLetterActionError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT state FROM dead_letters WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let current = current.ok_or(DeadLetterActionError::NotFound(id))?;
        let current = DeadLetterState::parse(&current)
            .ok_or_else(|| StoreError::Corrupt("dead_letters.state".into()))?;
        if current != DeadLetterState::Dead {
            return Err(DeadLetterActionError::WrongState {
                id,
                state: current,
                action,
            });
        }
        let row = sqlx::query(&format!(
            "UPDATE dead_letters SET state = $2, resolved_by = $3, resolved_at = now(), updated_at = now()
              WHERE id = $1 RETURNING {VIEW_COLUMNS}"
        ))
        .bind(id)
        .bind(new_state.as_str())
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let target = format!("dead_letter:{id}");
        OperatorAction {
            actor,
            action,
            target: &target,
        }
        .record(&mut *tx)
        .await?;
        if new_state == DeadLetterState::RetryRequested {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(DEAD_LETTER_RETRY_CHANNEL)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(decode_view(&row)?)
    }
}

#[async_trait]
impl DeadLetterOperations for PostgresDeadLetters {
    async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterView>, StoreError> {
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {VIEW_COLUMNS} FROM dead_letters WHERE true"
        ));
        if let Some(consumer) = &filter.consumer {
            query.push(" AND consumer = ").push_bind(consumer.clone());
        }
        if let Some(tenant) = &filter.tenant {
            query.push(" AND tenant = ").push_bind(tenant.clone());
        }
        if let Some(error) = &filter.error {
            query
                .push(" AND strpos(lower(error), lower(")
                .push_bind(error.clone())
                .push(")) > 0");
        }
        if let Some(state) = filter.state {
            query.push(" AND state = ").push_bind(state.as_str());
        }
        query
            .push(" ORDER BY created_at DESC, id LIMIT ")
            .push_bind(filter.limit.max(1) as i64);
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(decode_view).collect()
    }

    async fn retry(&self, id: Uuid, actor: &str) -> Result<DeadLetterView, DeadLetterActionError> {
        self.act(
            id,
            actor,
            "retry_dead_letter",
            DeadLetterState::RetryRequested,
        )
        .await
    }

    async fn discard(
        &self,
        id: Uuid,
        actor: &str,
    ) -> Result<DeadLetterView, DeadLetterActionError> {
        self.act(id, actor, "discard_dead_letter", DeadLetterState::Discarded)
            .await
    }
}

fn decode_view(row: &PgRow) -> Result<DeadLetterView, StoreError> {
    let state: String = row.try_get("state").map_err(unavailable)?;
    Ok(DeadLetterView {
        id: row.try_get("id").map_err(unavailable)?,
        consumer: row.try_get("consumer").map_err(unavailable)?,
        event_id: row.try_get("event_id").map_err(unavailable)?,
        subject: row.try_get("subject").map_err(unavailable)?,
        tenant: row.try_get("tenant").map_err(unavailable)?,
        deliveries: row.try_get::<i64, _>("deliveries").map_err(unavailable)? as u64,
        error: row.try_get("error").map_err(unavailable)?,
        state: DeadLetterState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("dead_letters.state".into()))?,
        retries: row.try_get::<i32, _>("retries").map_err(unavailable)? as u32,
        payload: row.try_get("payload").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        updated_at: row.try_get("updated_at").map_err(unavailable)?,
        resolved_by: row.try_get("resolved_by").map_err(unavailable)?,
        resolved_at: row.try_get("resolved_at").map_err(unavailable)?,
    })
}
