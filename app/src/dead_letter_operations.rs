//! What operators do with dead letters (messages a consumer gave up on): list them, retry one
//! (a worker hosting its consumer processes it again, once), discard one (never processed
//! again). Every action is recorded with who did it. Implemented by `store`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::StoreError;

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterView {
    pub id: Uuid,
    pub consumer: String,
    /// The event's id (the message's `Nats-Msg-Id`).
    pub event_id: Uuid,
    pub subject: String,
    pub tenant: Option<String>,
    pub deliveries: u64,
    /// Why the last delivery (or retry) failed.
    pub error: String,
    pub state: DeadLetterState,
    pub retries: u32,
    /// The message as received (normally the JSON event envelope).
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who retried or discarded it.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterState {
    Dead,
    RetryRequested,
    Retrying,
    Retried,
    Discarded,
}

impl DeadLetterState {
    pub const ALL: [Self; 5] = [
        Self::Dead,
        Self::RetryRequested,
        Self::Retrying,
        Self::Retried,
        Self::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dead => "dead",
            Self::RetryRequested => "retry_requested",
            Self::Retrying => "retrying",
            Self::Retried => "retried",
            Self::Discarded => "discarded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Which dead letters to list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub consumer: Option<String>,
    pub tenant: Option<String>,
    /// Case-insensitive substring of the error.
    pub error: Option<String>,
    pub state: Option<DeadLetterState>,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterActionError {
    #[error("no dead letter {0}")]
    NotFound(Uuid),
    #[error("dead letter {id} is {} and cannot be {action}", state.as_str())]
    WrongState {
        id: Uuid,
        state: DeadLetterState,
        action: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait DeadLetterOperations: Send + Sync + 'static {
    /// Newest first.
    async fn list(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterView>, StoreError>;

    /// Only a `dead` letter can be retried.
    async fn retry(&self, id: Uuid, actor: &str) -> Result<DeadLetterView, DeadLetterActionError>;

    /// Only a `dead` letter can be discarded.
    async fn discard(&self, id: Uuid, actor: &str)
        -> Result<DeadLetterView, DeadLetterActionError>;
}
