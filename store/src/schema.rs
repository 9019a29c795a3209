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

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The migrations applied now (version and description), oldest first.
    pub applied: Vec<(i64, String)>,
    /// The newest migration of this build: the schema's version afterwards.
    pub schema_version: Option<i64>,
}

/// Applies every pending migration (under sqlx's advisory lock, so concurrent runs are safe)
/// and says which.
pub async fn migrate(pool: &PgPool) -> Result<MigrationReport, SchemaError> {
    let before = applied_versions(pool).await?;
    MIGRATOR.run(pool).await.map_err(SchemaError::Migrate)?;
    let applied = MIGRATOR
        .iter()
        .filter(|m| !before.contains_key(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    Ok(MigrationReport {
        applied,
        schema_version: MIGRATOR.iter().map(|m| m.version).max(),
    })
}

/// The applied migrations by version: whether each succeeded, and its checksum (none when the
/// database was never migrated).
async fn applied_versions(pool: &PgPool) -> Result<HashMap<i64, (bool, Vec<u8>)>, SchemaError> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(SchemaError::Unavailable)?;
    if !table_exists {
        return Ok(HashMap::new());
    }
    Ok(sqlx::query_as::<_, (i64, bool, Vec<u8>)>(
        "SELECT version, success, checksum FROM _sqlx_migrations",
    )
    .fetch_all(pool)
    .await
    .map_err(SchemaError::Unavailable)?
    .into_iter()
    .map(|(version, success, checksum)| (version, (success, checksum)))
    .collect())
}

/// Fails unless every migration of this build has been applied, unchanged. A schema that is
/// *ahead* (a newer release migrated first) is accepted: migrations are additive.
pub async fn ensure_current(pool: &PgPool) -> Result<(), SchemaError> {
    let applied = applied_versions(pool).await?;
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
