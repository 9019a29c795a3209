//! Dead letters: messages a consumer gave up on after their last delivery, kept with the
//! error so that operators can see, retry or discard them (the operator endpoints come with
//! the operations issue; the records are written from the start).

use app::StoreError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::recorded_event_row::unavailable;

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
       updated_at = now()";

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
