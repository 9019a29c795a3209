//! The copies of a read model's live tables: a rebuild's shadows, which replace the live
//! tables when they have caught up, and verify's scratch copies, temporary tables of one
//! session. Their names, and making one with the live table's columns and primary key (from
//! the catalog, so they cannot drift from the migrations). Secondary indexes are not copied
//! here: a rebuild adds them after its bulk load.

use app::StoreError;
use sqlx::PgConnection;

use crate::error::unavailable;

/// Which copy of a read model's tables a fold reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableSet {
    /// The tables readers and the live projector use.
    Live,
    /// A rebuild's, swapped in for the live ones at its end.
    Shadow,
    /// Verify's, compared with the live ones (temporary, of one session).
    Scratch,
}

impl TableSet {
    pub(crate) const ALL: [Self; 3] = [Self::Live, Self::Shadow, Self::Scratch];

    /// What the copy adds to the names of the live table, its primary key and its indexes.
    pub(crate) const fn suffix(self) -> &'static str {
        match self {
            Self::Live => "",
            Self::Shadow => "_rebuild",
            Self::Scratch => "_verify",
        }
    }

    /// This copy's name for `live` (a table, key or index of the live set).
    pub(crate) fn name_of(self, live: &str) -> String {
        format!("{live}{}", self.suffix())
    }

    /// Its place in [`Self::ALL`], for statements prepared once per copy.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Live => 0,
            Self::Shadow => 1,
            Self::Scratch => 2,
        }
    }
}

/// Creates `copy`'s (empty) version of `live` on `conn`, replacing one left behind: the live
/// table's columns, defaults, constraints and primary key. A scratch copy is temporary.
pub(crate) async fn create_copy(
    conn: &mut PgConnection,
    live: &str,
    copy: TableSet,
) -> Result<(), StoreError> {
    let table = copy.name_of(live);
    let (key, key_definition) = primary_key(conn, live).await?;
    // A scratch copy lives in the session's own schema, never beside the live tables.
    let (temporary, schema) = if copy == TableSet::Scratch {
        ("TEMPORARY ", "pg_temp.")
    } else {
        ("", "")
    };
    for statement in [
        format!("DROP TABLE IF EXISTS {schema}{table}"),
        format!(
            "CREATE {temporary}TABLE {table} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ),
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} {key_definition}",
            copy.name_of(&key)
        ),
    ] {
        execute(conn, &statement).await?;
    }
    Ok(())
}

/// The live table's primary key: its name and definition (`PRIMARY KEY (…)`).
pub(crate) async fn primary_key(
    conn: &mut PgConnection,
    live: &str,
) -> Result<(String, String), StoreError> {
    sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = to_regclass($1) AND contype = 'p'",
    )
    .bind(live)
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::Corrupt(format!("{live} has no primary key").into()))
}

/// The columns of `table`'s primary key, in key order.
pub(crate) async fn key_columns(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
          WHERE i.indrelid = to_regclass($1) AND i.indisprimary
          ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .map_err(unavailable)
}

/// Runs one statement of DDL (or a session setting) on `conn`.
pub(crate) async fn execute(conn: &mut PgConnection, statement: &str) -> Result<(), StoreError> {
    sqlx::query(statement)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(unavailable)
}
