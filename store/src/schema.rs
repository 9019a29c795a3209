//! Schema migrations are a deliberate release step (`api migrate`); services only check
//! that the schema they find is not behind the one they were built for.

use std::collections::HashMap;

use sqlx::migrate::Migrator;
use sqlx::PgPool;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the database schema is behind this build: migration(s) {missing:?} not applied; run `api migrate` first")]
    Behind { missing: Vec<i64> },
    #[error("migration {version} was applied with different contents than this build's; the schema was edited after release")]
    Modified { version: i64 },
    #[error("migration {version} failed earlier and left the schema dirty; fix it by hand, then run `api migrate`")]
    Dirty { version: i64 },
    #[error("could not read the schema version")]
    Unavailable(#[source] sqlx::Error),
    #[error("applying migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Applies every pending migration (under sqlx's advisory lock, so concurrent runs are safe).
pub async fn migrate(pool: &PgPool) -> Result<(), SchemaError> {
    MIGRATOR.run(pool).await.map_err(SchemaError::Migrate)
}

/// Fails unless every migration of this build has been applied, unchanged. A schema that is
/// *ahead* (a newer release migrated first) is accepted: migrations are additive.
pub async fn ensure_current(pool: &PgPool) -> Result<(), SchemaError> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(SchemaError::Unavailable)?;
    let applied: HashMap<i64, (bool, Vec<u8>)> = if table_exists {
        sqlx::query_as::<_, (i64, bool, Vec<u8>)>(
            "SELECT version, success, checksum FROM _sqlx_migrations",
        )
        .fetch_all(pool)
        .await
        .map_err(SchemaError::Unavailable)?
        .into_iter()
        .map(|(version, success, checksum)| (version, (success, checksum)))
        .collect()
    } else {
        HashMap::new()
    };
    let mut missing = Vec::new();
    for migration in MIGRATOR.iter() {
        match applied.get(&migration.version) {
            None => missing.push(migration.version),
            Some((false, _)) => {
                return Err(SchemaError::Dirty {
                    version: migration.version,
                })
            }
            Some((true, checksum)) if *checksum != *migration.checksum => {
                return Err(SchemaError::Modified {
                    version: migration.version,
                })
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Behind { missing })
    }
}
