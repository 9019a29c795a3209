//! What the operators' commands (`api projections …`, `api dead-letters …`) share: a pool on
//! `DATABASE_URL` whose schema is current, and the operator's name for the audit trail
//! (`cli:$USER`).

use std::time::Duration;

use bootstrap::{database_settings, Env};
use sqlx::PgPool;

/// Why an operator's command could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperatorSessionError {
    #[error(transparent)]
    Config(#[from] bootstrap::ConfigError),
    #[error("cannot set up the database pool: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Schema(#[from] store::schema::SchemaError),
}

pub struct OperatorSession {
    pub pool: PgPool,
    pub actor: String,
}

impl OperatorSession {
    pub async fn open() -> Result<Self, OperatorSessionError> {
        let mut env = Env::from_process();
        let settings = database_settings(&mut env, "provisioning-admin");
        env.finish()?;
        let pool = store::connect(&settings)?;
        store::schema::ensure_current(&pool).await?;
        let actor = format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        );
        Ok(Self { pool, actor })
    }

    pub async fn close(self) {
        store::close(&self.pool, Duration::from_secs(5)).await;
    }
}
