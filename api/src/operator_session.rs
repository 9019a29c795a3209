//! What the operators' commands (`api projections …`, `api dead-letters …`) share: a pool on
//! `DATABASE_URL` whose schema is current, and the operator's name for the audit trail
//! (`bootstrap::cli_operator`: `cli:<user>`).

use std::time::Duration;

use bootstrap::{database_settings, Env};
use store::PgPool;

/// Why an operator's command could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperatorSessionError {
    #[error(transparent)]
    Config(#[from] bootstrap::ConfigError),
    #[error(transparent)]
    Database(#[from] store::DatabaseUrlError),
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
        Ok(Self {
            pool,
            actor: bootstrap::cli_operator(),
        })
    }

    pub async fn close(self) {
        store::close(&self.pool, Duration::from_secs(5)).await;
    }
}
