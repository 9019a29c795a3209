//! At start-up: the key-encryption key (`ENROLLMENT_KEY_ENCRYPTION_KEY`) must open the
//! enrollment groups already stored. With another key the api would start and answer every
//! EST enrollment 500 (no group's key opens); it refuses to start instead, naming the variable
//! (never its value).
//!
//! Groups are tried newest first until one opens: one read when the key is right, a pass over
//! the table only when it is wrong. A key that opens some groups but not others is accepted
//! (a single altered row must not stop the service; that group's enrollments fail alone).

use domain::EnrollmentGroupName;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};

use crate::sealed_group_key::GroupKeySealer;

#[derive(Debug, thiserror::Error)]
pub enum KeyEncryptionKeyError {
    #[error(
        "ENROLLMENT_KEY_ENCRYPTION_KEY opens none of the {groups} stored enrollment groups: it \
         is not the key they were sealed with, and every EST enrollment would fail; set the key \
         they were sealed with"
    )]
    OpensNoGroup { groups: u64 },
    #[error("cannot read the stored enrollment groups to check ENROLLMENT_KEY_ENCRYPTION_KEY")]
    Unavailable(#[source] sqlx::Error),
}

/// Refuses `sealer` if there are stored groups and it opens none of them.
pub async fn check_key_encryption_key(
    pool: &PgPool,
    sealer: &GroupKeySealer,
) -> Result<(), KeyEncryptionKeyError> {
    let mut rows = sqlx::query(
        "SELECT name, sealed_key FROM enrollment_groups ORDER BY created_at DESC, name",
    )
    .fetch(pool);
    let mut tried = 0;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(KeyEncryptionKeyError::Unavailable)?
    {
        tried += 1;
        let name: String = row
            .try_get("name")
            .map_err(KeyEncryptionKeyError::Unavailable)?;
        let sealed: Vec<u8> = row
            .try_get("sealed_key")
            .map_err(KeyEncryptionKeyError::Unavailable)?;
        let Ok(name) = EnrollmentGroupName::parse(&name) else {
            continue;
        };
        if sealer.open(&name, &sealed).is_ok() {
            return Ok(());
        }
    }
    if tried == 0 {
        return Ok(());
    }
    Err(KeyEncryptionKeyError::OpensNoGroup { groups: tried })
}
